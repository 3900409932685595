import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { waitFor, type LogLine } from "./harness.js";

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

/**
 * A webhook load balancer for tests: every request goes to an instance chosen at random, and on
 * to another one when that one refuses the connection (as a balancer's health checks would).
 */
export class RandomBalancer {
  readonly hits = new Map<string, number>();
  private readonly server: Server;
  private port = 0;

  constructor(private readonly upstreams: () => readonly { name: string; httpPort: number }[]) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const order = [...this.upstreams()].sort(() => Math.random() - 0.5);
        const attempt = (i: number): void => {
          const up = order[i];
          if (!up) {
            res.writeHead(502).end();
            return;
          }
          const out = request({ host: "127.0.0.1", port: up.httpPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
            this.hits.set(up.name, (this.hits.get(up.name) ?? 0) + 1);
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          });
          out.on("error", () => attempt(i + 1));
          out.end(Buffer.concat(chunks));
        };
        attempt(0);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}/webhooks/meta`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
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
