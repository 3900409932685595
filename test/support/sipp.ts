import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Runs real SIPp processes for the SIP integration tests and makes sure none outlives them. */

export const SIPP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../sipp");

let sippFound: boolean | undefined;

/**
 * Fails (never skips) when SIPp is missing: these tests exist to talk to a real peer. Call it in
 * beforeEach or in the test: a throwing beforeAll would make vitest report the tests as skipped.
 */
export function requireSipp(): void {
  if (sippFound === undefined) {
    const r = spawnSync("sipp", ["-v"], { encoding: "utf8" });
    sippFound = !r.error && /SIPp v\d/.test(`${r.stdout}${r.stderr}`);
  }
  if (!sippFound) {
    throw new Error("sipp is not on PATH: install Debian's sip-tester (scripts/setup.sh does); the SIP integration tests need it");
  }
}

/**
 * A random port in 20000–31999 (below the kernel's ephemeral range, where the stacks under test
 * get their port-0 sockets) that is free for UDP and TCP, with the next two free for SIPp's
 * control and media sockets.
 */
export async function freePort(address = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + 8 * Math.floor(Math.random() * 1500);
    // Free now is not free later: a port handed out is not handed out again, even before its
    // process listens on it.
    if (handedOut.has(port)) continue;
    if ((await udpFree(address, port)) && (await tcpFree(address, port)) && (await udpFree(address, port + 1)) && (await udpFree(address, port + 2))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("no free port found");
}

/** Ports freePort returned in this test file (each file runs in a process of its own). */
const handedOut = new Set<number>();

function udpFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    s.once("error", () => resolve(false));
    s.bind(port, address, () => s.close(() => resolve(true)));
  });
}

function tcpFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, address, () => srv.close(() => resolve(true)));
  });
}

export interface SippOptions {
  scenario: string;
  port: number;
  address?: string;
  transport?: "u1" | "t1";
  /** host:port to call (UAC scenarios). */
  remote?: string;
  /** -s user part of the Request-URI (UAC scenarios). */
  service?: string;
  calls?: number;
  timeoutS?: number;
  extraArgs?: string[];
  /**
   * Replaces `{{name}}` in the scenario before SIPp reads it: for what SIPp checks at load time
   * (a response's status code cannot be a -key keyword).
   */
  vars?: Record<string, string>;
}

export interface SippResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  messages: string;
  errors: string;
  logs: string;
}

export interface SippProcess {
  readonly child: ChildProcess;
  /** Resolves when SIPp's signalling socket is bound. */
  ready: Promise<void>;
  done: Promise<SippResult>;
  kill(): Promise<void>;
}

const running = new Set<SippProcess>();

export function startSipp(o: SippOptions): SippProcess {
  const work = mkdtempSync(join(tmpdir(), "sipp-"));
  const address = o.address ?? "127.0.0.1";
  const files = { messages: join(work, "messages.log"), errors: join(work, "errors.log"), logs: join(work, "logs.log") };
  let scenario = resolve(SIPP_DIR, o.scenario);
  if (o.vars) {
    let text = readFileSync(scenario, "utf8");
    for (const [k, v] of Object.entries(o.vars)) text = text.split(`{{${k}}}`).join(v);
    scenario = join(work, "scenario.xml");
    writeFileSync(scenario, text);
  }
  const args = [
    ...(o.remote ? [o.remote] : []),
    "-sf",
    scenario,
    "-i",
    address,
    "-p",
    String(o.port),
    "-t",
    o.transport ?? "u1",
    "-m",
    String(o.calls ?? 1),
    "-nostdin",
    "-timeout",
    `${o.timeoutS ?? 30}s`,
    "-timeout_error",
    "-mp",
    String(o.port + 2),
    "-cp",
    String(o.port + 1),
    "-trace_msg",
    "-message_file",
    files.messages,
    "-trace_err",
    "-error_file",
    files.errors,
    "-trace_logs",
    "-log_file",
    files.logs,
    ...(o.service ? ["-s", o.service] : []),
    ...(o.extraArgs ?? []),
  ];
  const child = spawn("sipp", args, { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString("utf8")).slice(-20000)));
  child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString("utf8")).slice(-20000)));
  const read = (f: string): string => (existsSync(f) ? readFileSync(f, "utf8") : "");
  const done = new Promise<SippResult>((resolveDone) => {
    child.once("exit", (code, signal) => {
      const result = { code, signal, output, messages: read(files.messages), errors: read(files.errors), logs: read(files.logs) };
      rmSync(work, { recursive: true, force: true });
      resolveDone(result);
    });
  });
  const ready = (async () => {
    const isTcp = (o.transport ?? "u1") === "t1";
    for (let i = 0; i < 150; i++) {
      if (child.exitCode !== null) throw new Error(`sipp exited early (${child.exitCode}): ${output.slice(-2000)}`);
      const free = isTcp ? await tcpFree(address, o.port) : await udpFree(address, o.port);
      if (!free) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("sipp did not bind its port in 3 s");
  })();
  const proc: SippProcess = {
    child,
    ready,
    done,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await done;
      running.delete(proc);
    },
  };
  running.add(proc);
  void done.then(() => running.delete(proc));
  return proc;
}

/** Kills every SIPp still running (for afterEach/afterAll). */
export async function killAllSipp(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}

/** Waits for SIPp to finish, killing it after `ms`. */
export async function finish(p: SippProcess, ms = 15000): Promise<SippResult> {
  const timer = setTimeout(() => void p.kill(), ms);
  try {
    return await p.done;
  } finally {
    clearTimeout(timer);
  }
}

/** A readable summary for assertion messages. */
export function describe(r: SippResult): string {
  return `sipp exit ${r.code ?? r.signal}\n--- errors ---\n${r.errors.slice(-3000)}\n--- messages ---\n${r.messages.slice(-6000)}\n--- output ---\n${r.output.slice(-1500)}`;
}
