import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { heapAfterGc, inspectorUrl } from "../../bench/orchestrator/heap.js";
import { readUdpTable } from "../../bench/orchestrator/proc-stats.js";

/** The repository root, whether this file runs from the sources (vitest) or from dist/ (npm run fuzz). */
export const PROJECT_ROOT = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = resolve(here, "..", "..");
  return existsSync(join(up, "package.json")) ? up : resolve(up, "..");
})();

const GATEWAY_MAIN = join(PROJECT_ROOT, "dist", "gateway", "main.js");

/**
 * Builds dist/ when a source the gateway runs from is newer than the last build. FUZZ_SKIP_BUILD=1
 * runs whatever dist/ holds (a tree mid-edit elsewhere may not type-check).
 */
export function ensureBuilt(): void {
  if (process.env.FUZZ_SKIP_BUILD === "1" && existsSync(GATEWAY_MAIN)) return;
  const built = existsSync(GATEWAY_MAIN) ? statSync(GATEWAY_MAIN).mtimeMs : 0;
  let newest = 0;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const dir of ["gateway", "sip", "transcode"]) walk(join(PROJECT_ROOT, dir));
  if (newest > built) execFileSync("npm", ["run", "build", "--silent"], { cwd: PROJECT_ROOT, stdio: "inherit" });
}

export function freeTcpPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolvePort(port));
    });
  });
}

/** A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both). */
export async function freeSipPort(): Promise<number> {
  for (let attempt = 0; attempt < 30; attempt++) {
    const port = await freeTcpPort();
    const ok = await new Promise<boolean>((resolveOk) => {
      const s = dgram.createSocket("udp4");
      s.once("error", () => resolveOk(false));
      s.bind(port, "127.0.0.1", () => s.close(() => resolveOk(true)));
    });
    if (ok) return port;
  }
  throw new Error("no port free for UDP and TCP on 127.0.0.1");
}

/** setpriv's --pdeathsig has the kernel kill the gateway if this process dies first, SIGKILL included. */
const SETPRIV = spawnSync("setpriv", ["--help"], { encoding: "utf8" }).stdout?.includes("--pdeathsig") ? "setpriv" : undefined;

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** What the gateway wrote, kept as counters and a short tail so a long run stays small. */
export class GatewayLog {
  readonly tail: string[] = [];
  /** Lines from the process-level last-resort handlers: each one is an exception no call caught. */
  readonly uncaught: string[] = [];
  readonly errors = new Map<string, number>();
  /** Calls the gateway has written its end record for, by call id: when, and the outcome it gave. */
  readonly ended = new Map<string, { at: number; outcome: string }>();
  private readonly watchers = new Set<{ test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  private partial = "";

  push(chunk: string): void {
    const text = this.partial + chunk;
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) this.line(line);
  }

  private line(raw: string): void {
    if (!raw.trim()) return;
    this.tail.push(raw.length > 2000 ? `${raw.slice(0, 2000)}…` : raw);
    if (this.tail.length > 300) this.tail.shift();
    let l: LogLine;
    try {
      l = JSON.parse(raw) as LogLine;
    } catch {
      return;
    }
    if (/uncaught exception|unhandled rejection|not attributed/i.test(l.msg)) {
      if (this.uncaught.length < 50) this.uncaught.push(raw.slice(0, 4000));
    }
    if (l.level >= 50) this.errors.set(l.msg, (this.errors.get(l.msg) ?? 0) + 1);
    if (l.msg === "call ended" && typeof l.callId === "string") {
      this.ended.set(l.callId, { at: performance.now(), outcome: String(l.outcome) });
      if (this.ended.size > 50_000) this.ended.delete(this.ended.keys().next().value!);
    }
    for (const w of [...this.watchers]) {
      if (w.test(l)) {
        this.watchers.delete(w);
        w.resolve(l);
      }
    }
  }

  /** Resolves with the next line that passes `test`, or undefined after `timeoutMs`. */
  waitFor(test: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine | undefined> {
    return new Promise((resolveLine) => {
      const w = {
        test,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolveLine(l);
        },
      };
      const timer = setTimeout(() => {
        this.watchers.delete(w);
        resolveLine(undefined);
      }, timeoutMs);
      this.watchers.add(w);
    });
  }
}

export interface ResourceSample {
  fds: number;
  /** What each descriptor is (`socket:[inode]`, a path, `pipe:[…]`), TCP sockets resolved to their addresses. */
  fdTargets: string[];
  /** Local ports of the UDP sockets the process holds, sorted. */
  udpPorts: number[];
  /** Child processes by pid, with their command names. */
  children: Array<{ pid: number; comm: string }>;
  /** Heap in use after a full collection, MB (V8 inspector). */
  heapMB: number;
}

export interface GatewaySpawnOptions {
  graphUrl: string;
  sipTarget: string;
  rtpRange: [number, number];
  env?: Record<string, string>;
  /** Shown in error messages. */
  name: string;
}

/** The built gateway (`node dist/gateway/main.js`) as its own process, with the V8 inspector on loopback. */
export class GatewayProcess {
  readonly log = new GatewayLog();
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;
  private stderr = "";

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly httpPort: number,
    readonly sipPort: number,
  ) {
    let markExited: () => void = () => undefined;
    this.exited = new Promise<void>((r) => (markExited = r));
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (d: string) => this.log.push(d));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      this.stderr = (this.stderr + d).slice(-20_000);
    });
    child.once("exit", (code, signal) => {
      this.exit = { code, signal };
      markExited();
    });
  }

  static async start(o: GatewaySpawnOptions): Promise<GatewayProcess> {
    const httpPort = await freeTcpPort();
    const sipPort = await freeSipPort();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      META_APP_SECRET: FUZZ_META.appSecret,
      META_VERIFY_TOKEN: FUZZ_META.verifyToken,
      META_PAGE_ID: FUZZ_META.pageId,
      META_PAGE_ACCESS_TOKEN: FUZZ_META.pageAccessToken,
      META_GRAPH_URL: o.graphUrl,
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(httpPort),
      SIP_LISTEN: `127.0.0.1:${sipPort}`,
      SIP_TARGET: o.sipTarget,
      PUBLIC_IP: "127.0.0.1",
      MEDIA_BIND_IP: "127.0.0.1",
      RTP_PORT_MIN: String(o.rtpRange[0]),
      RTP_PORT_MAX: String(o.rtpRange[1]),
      LOG_LEVEL: "info",
      ...o.env,
    };
    const args = ["--inspect=127.0.0.1:0", GATEWAY_MAIN];
    const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", process.execPath, ...args]] : [process.execPath, args];
    const child = spawn(cmd, argv, { cwd: PROJECT_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    const g = new GatewayProcess(o.name, child, httpPort, sipPort);
    const started = await g.log.waitFor((l) => l.msg === "gateway started", 20_000);
    if (!started) {
      child.kill("SIGKILL");
      throw new Error(`${o.name}: the gateway did not start: ${g.stderr.slice(-2000)} ${g.log.tail.slice(-10).join("\n")}`);
    }
    return g;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  get webhookUrl(): string {
    return `http://127.0.0.1:${this.httpPort}/webhooks/meta`;
  }

  get sipAddress(): { address: string; port: number } {
    return { address: "127.0.0.1", port: this.sipPort };
  }

  get inspectorUrl(): string | undefined {
    return inspectorUrl(this.stderr.split("\n"));
  }

  /** What the process wrote to stderr last (Node's own fatal errors land there). */
  get stderrTail(): string {
    return this.stderr.slice(-4000);
  }

  /** Calls the gateway reports in progress (Prometheus), NaN when it does not answer. */
  async activeCalls(): Promise<number> {
    const text = await this.metricsText();
    return Number(/^gateway_calls_active(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text)?.[1] ?? NaN);
  }

  async metricsText(): Promise<string> {
    return (await this.get("/metrics", 5000)).body;
  }

  async healthy(timeoutMs = 5000): Promise<boolean> {
    return (await this.get("/healthz", timeoutMs)).status === 200;
  }

  async readyStatus(): Promise<number> {
    return (await this.get("/readyz", 5000)).status;
  }

  /**
   * One GET on a connection of its own, closed after the answer: a pooled keep-alive connection
   * would show up in the process's descriptor count as if the gateway had leaked it.
   */
  private get(path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
    return new Promise((resolveGet) => {
      const req = http.get({ host: "127.0.0.1", port: this.httpPort, path, agent: false, headers: { connection: "close" } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolveGet({ status: res.statusCode ?? 0, body }));
        res.on("error", () => resolveGet({ status: 0, body: "" }));
      });
      req.setTimeout(timeoutMs, () => req.destroy());
      req.on("error", () => resolveGet({ status: 0, body: "" }));
    });
  }

  /** Descriptors, UDP ports and children from /proc; heap after a full collection over the inspector. */
  async sample(withHeap = true): Promise<ResourceSample> {
    const base = this.sampleProc();
    const url = this.inspectorUrl;
    const heapMB = withHeap && url ? await heapAfterGc(url) : NaN;
    return { ...base, heapMB };
  }

  sampleProc(): Omit<ResourceSample, "heapMB"> {
    const pid = this.pid;
    const fdNames = readdirSync(`/proc/${pid}/fd`);
    const udp = readUdpTable();
    const tcp = readTcpTable();
    const udpPorts: number[] = [];
    const fdTargets: string[] = [];
    for (const fd of fdNames) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const entry = inode ? udp.get(inode) : undefined;
      if (entry) udpPorts.push(entry.localPort);
      fdTargets.push(inode && tcp.has(inode) ? `tcp ${tcp.get(inode)}` : entry ? `udp :${entry.localPort}` : target.replace(/\[\d+\]$/, ""));
    }
    return { fds: fdNames.length, fdTargets: fdTargets.sort(), udpPorts: udpPorts.sort((a, b) => a - b), children: childrenOf(pid) };
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `graceMs`). */
  async stop(signal: NodeJS.Signals = "SIGINT", graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.alive) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exit!;
  }
}

/** Direct children of a process (every thread's list), with their command names. */
export function childrenOf(pid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    let list = "";
    try {
      list = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8");
    } catch {
      continue;
    }
    for (const c of list.trim().split(/\s+/).filter(Boolean)) {
      let comm = "?";
      try {
        comm = readFileSync(`/proc/${c}/comm`, "utf8").trim();
      } catch {
        // gone meanwhile
      }
      out.push({ pid: Number(c), comm });
    }
  }
  return out;
}

/** The Page and app the fuzz rigs agree on. */
export const FUZZ_META = {
  pageId: "100000000000555",
  appSecret: "fuzz-app-secret-5f1b0c",
  pageAccessToken: "fuzz-page-token",
  verifyToken: "fuzz-verify-token",
} as const;

const TCP_STATES: Record<string, string> = { "01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN", "07": "CLOSE", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "09": "LAST_ACK" };

/** /proc/net/tcp by socket inode: `local → remote STATE` (loopback IPv4 only matters here). */
function readTcpTable(): Map<string, string> {
  const table = new Map<string, string>();
  const port = (hex: string | undefined): number => parseInt((hex ?? "").split(":")[1] ?? "0", 16);
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    table.set(f[9]!, `:${port(f[1])} → :${port(f[2])} ${TCP_STATES[f[3] ?? ""] ?? f[3]}`);
  }
  return table;
}
