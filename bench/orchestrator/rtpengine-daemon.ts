import { spawnSync } from "node:child_process";
import { NgClient } from "../rtpengine/ng-client.js";
import type { ManagedProcess, ProcessGroup } from "./processes.js";
import { freeUdpPort } from "./ports.js";

export interface RtpengineInstance {
  process: ManagedProcess;
  ngPort: number;
  version: string;
}

/** rtpengine's version string, or undefined when it is not installed. */
export function rtpengineVersion(): string | undefined {
  const r = spawnSync("rtpengine", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return undefined;
  return /Version:\s*(\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? "unknown";
}

/**
 * rtpengine in userspace only (no kernel table), on loopback, with no config file so a system
 * config cannot change what is measured.
 */
export async function startRtpengine(group: ProcessGroup, portRange: [number, number]): Promise<RtpengineInstance> {
  const version = rtpengineVersion();
  if (!version) throw new Error("rtpengine is not installed (Debian package rtpengine-daemon)");
  const ngPort = await freeUdpPort();
  const proc = group.spawn("rtpengine", "rtpengine", [
    "--config-file=none",
    "--table=-1",
    "--interface=127.0.0.1",
    `--listen-ng=127.0.0.1:${ngPort}`,
    "--foreground",
    "--log-stderr",
    "--log-level=4",
    `--port-min=${portRange[0]}`,
    `--port-max=${portRange[1]}`,
    "--delete-delay=0",
    "--timeout=60",
  ]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`rtpengine exited at start: ${proc.tail.join(" | ")}`);
    const ng = await NgClient.connect("127.0.0.1", ngPort);
    const ok = await ng.request("ping", {}, 1000).then(() => true, () => false);
    ng.close();
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`rtpengine did not answer NG ping within 10 s: ${proc.tail.join(" | ")}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { process: proc, ngPort, version };
}
