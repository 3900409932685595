import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { waitFor, type LogLine } from "./harness.js";

export { RandomBalancer } from "../../bench/cluster/balancer.js";

const ROOT = new URL("../..", import.meta.url).pathname;

let built = false;

/** The gateway as operators run it (dist/), built once per test run. */
export function buildGatewayOnce(): void {
  if (built) return;
  execFileSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
  built = true;
}

/** One gateway process, its JSON log lines kept for assertions. */
export class GatewayProcess {
  readonly lines: LogLine[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly httpPort: number,
    readonly sipPort: number,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, ["dist/gateway/main.js"], { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    let partial = "";
    this.child.stdout!.on("data", (d: Buffer) => {
      const text = partial + d.toString("utf8");
      const parts = text.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        if (!line.trim()) continue;
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // Not a log line (a stray write): nothing to assert on.
        }
      }
    });
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  find(msg: string, where: (l: LogLine) => boolean = () => true): LogLine[] {
    return this.lines.filter((l) => l.msg === msg && where(l));
  }

  async started(): Promise<void> {
    await waitFor(() => this.find("gateway started").length > 0 || !this.alive, 20_000, `${this.name} to start`);
    if (!this.alive) throw new Error(`${this.name} exited at start`);
  }

  async readyz(): Promise<number> {
    return (await fetch(`${this.url}/readyz`)).status;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }
}

/** Distinct SIP dialogs (Call-IDs) per X-Meta-Call-Id among the INVITEs a SIPp PBX received. */
export function invitesPerCall(sippMessages: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const block of sippMessages.split(/\n(?=INVITE sip:)/)) {
    if (!block.startsWith("INVITE sip:")) continue;
    const metaCall = /^X-Meta-Call-Id:\s*(\S+)/im.exec(block)?.[1];
    const sipCall = /^Call-ID:\s*(\S+)/im.exec(block)?.[1];
    if (!metaCall || !sipCall) continue;
    const set = out.get(metaCall) ?? new Set<string>();
    set.add(sipCall);
    out.set(metaCall, set);
  }
  return out;
}
