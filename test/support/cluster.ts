import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { TEST_APP_SECRET, TEST_PAGE_ID, TEST_PAGE_TOKEN, TEST_VERIFY_TOKEN, waitFor, type LogLine } from "./harness.js";

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

  /** What a failed test prints of this process: its state and its last lines at `level` or above. */
  report(count = 40, levels: readonly string[] = ["warn", "error", "fatal"]): string {
    const kept = this.lines.filter((l) => levels.includes(l.level)).slice(-count);
    const head = `--- ${this.name} (http ${this.httpPort}, sip ${this.sipPort}, ${this.alive ? "running" : `exited ${this.child.exitCode ?? this.child.signalCode}`}, ${this.lines.length} lines) ---`;
    return [head, ...kept.map((l) => JSON.stringify(l).slice(0, 600))].join("\n");
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

  /** `/readyz`'s body: why the instance is not ready, when it is not. */
  async readyzText(): Promise<string> {
    return (await fetch(`${this.url}/readyz`)).text();
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

/**
 * Meta's Graph API behind a slow link: every request goes to `upstream` as it is, except that the
 * answer to one chosen request can be kept until the test lets it go. Meta sends its webhooks for a
 * call right after answering, so a kept answer lets them overtake it, as they can on the Internet.
 */
export class GraphHoldingProxy {
  private readonly server: Server;
  private pending: { matches: (body: string) => boolean; onHeld: () => void; released: Promise<void> } | undefined;

  constructor(upstream: string) {
    const target = new URL(upstream);
    const base = target.pathname.replace(/\/+$/, "");
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const out = request({ host: target.hostname, port: target.port, method: req.method, path: base + (req.url ?? "/"), headers: req.headers }, (r) => {
          const parts: Buffer[] = [];
          r.on("data", (c: Buffer) => parts.push(c));
          r.on("end", () => {
            const send = (): void => void res.writeHead(r.statusCode ?? 502, r.headers).end(Buffer.concat(parts));
            const hold = this.pending;
            if (!hold?.matches(body.toString("utf8"))) return send();
            this.pending = undefined;
            hold.onHeld();
            void hold.released.then(send);
          });
        });
        out.on("error", () => res.writeHead(502).end());
        out.end(body);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Keeps Graph's answer to the next request whose body `matches`; `held` resolves once it is kept. */
  holdNext(matches: (body: string) => boolean): { held: Promise<void>; release: () => void } {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const held = new Promise<void>((onHeld) => (this.pending = { matches, onHeld, released }));
    return { held, release };
  }

  async close(): Promise<void> {
    this.pending = undefined;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** What every member of a test cluster on loopback is given, beside its Meta settings. */
/**
 * A Messenger gateway on loopback: the simulator's Graph API and test Page, HTTP on `httpPort`,
 * media in `rtp`, a PBX at `pbxPort`, and SIP on `sipPort` (left out for drachtio-server, which
 * owns the SIP port).
 */
export function loopbackGatewayEnv(o: { graphUrl: string; httpPort: number; rtp: [number, number]; pbxPort: number; sipPort?: number }): Record<string, string> {
  return {
    META_APP_SECRET: TEST_APP_SECRET,
    META_VERIFY_TOKEN: TEST_VERIFY_TOKEN,
    META_PAGE_ID: TEST_PAGE_ID,
    META_PAGE_ACCESS_TOKEN: TEST_PAGE_TOKEN,
    META_GRAPH_URL: o.graphUrl,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(o.httpPort),
    PUBLIC_IP: "127.0.0.1",
    MEDIA_BIND_IP: "127.0.0.1",
    RTP_PORT_MIN: String(o.rtp[0]),
    RTP_PORT_MAX: String(o.rtp[1]),
    ...(o.sipPort !== undefined ? { SIP_LISTEN: `127.0.0.1:${o.sipPort}`, SIP_ALLOW_FROM: "127.0.0.1" } : {}),
    SIP_TARGET: `sip:pbx@127.0.0.1:${o.pbxPort}`,
    CALL_METRICS: "off",
    LOG_LEVEL: "info",
  };
}

export function clusterMemberEnv(o: {
  index: number;
  httpPort: number;
  sipPort: number;
  rtpBase: number;
  pbxPort: number;
  redisUrl: string;
  secret: string;
  leaseMs: number;
  keyPrefix: string;
}): Record<string, string> {
  const rtpMin = o.rtpBase + o.index * 600;
  return {
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(o.httpPort),
    PUBLIC_IP: "127.0.0.1",
    MEDIA_BIND_IP: "127.0.0.1",
    RTP_PORT_MIN: String(rtpMin),
    RTP_PORT_MAX: String(rtpMin + 599),
    SIP_LISTEN: `127.0.0.1:${o.sipPort}`,
    SIP_TARGET: `sip:pbx@127.0.0.1:${o.pbxPort}`,
    SIP_ALLOW_FROM: "127.0.0.1",
    CALL_METRICS: "off",
    LOG_LEVEL: "info",
    REDIS_URL: o.redisUrl,
    CLUSTER_SECRET: o.secret,
    CLUSTER_INSTANCE_ID: `gw-${o.index}`,
    CLUSTER_LEASE_MS: String(o.leaseMs),
    REDIS_KEY_PREFIX: o.keyPrefix,
  };
}

/** One of the cluster's counters (the first group of `metric` in /metrics) summed over `gateways`. */
export async function clusterCounter(gateways: readonly GatewayProcess[], metric: RegExp): Promise<number> {
  let total = 0;
  for (const g of gateways) total += Number(metric.exec(await (await fetch(`${g.url}/metrics`)).text())?.[1] ?? 0);
  return total;
}

/** Waits for every member to start and reach Redis. */
export async function clusterUp(gateways: readonly GatewayProcess[]): Promise<void> {
  await Promise.all(gateways.map((g) => g.started()));
  await waitFor(() => gateways.every((g) => g.find("Redis reachable: taking calls").length > 0), 10_000, "every instance to reach Redis");
}

/** Kills every member still running (SIGKILL) and waits for them to exit. */
export async function killCluster(gateways: readonly GatewayProcess[]): Promise<void> {
  for (const g of gateways) g.kill("SIGKILL");
  await Promise.all(gateways.map((g) => g.exited));
}
