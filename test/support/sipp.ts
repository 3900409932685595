import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
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
  const read = (f: string): string => (existsSync(f) ? readFileSync(f, "utf8") : "");
  const launch = (): { child: ChildProcess; output: () => string; exited: Promise<void> } => {
    const child = spawn("sipp", args, { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString("utf8")).slice(-20000)));
    child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString("utf8")).slice(-20000)));
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    return { child, output: () => output, exited };
  };
  let attempt = launch();
  let killed = false;
  let settled = false;
  let resolveDone!: (r: SippResult) => void;
  const done = new Promise<SippResult>((r) => (resolveDone = r));
  const settle = (): void => {
    if (settled) return;
    settled = true;
    const { child } = attempt;
    resolveDone({ code: child.exitCode, signal: child.signalCode, output: attempt.output(), messages: read(files.messages), errors: read(files.errors), logs: read(files.logs) });
    rmSync(work, { recursive: true, force: true });
  };
  const ready = (async () => {
    const isTcp = (o.transport ?? "u1") === "t1";
    let binds = 0;
    for (let i = 0; i < 150; i++) {
      const { child } = attempt;
      if (child.exitCode !== null || child.signalCode !== null) {
        const output = attempt.output();
        // A port found free can be taken by another program before SIPp binds it: say who holds
        // it, and start again a few times before failing the test.
        if (!killed && /Unable to bind .*errno = 98/.test(output) && ++binds <= 5) {
          process.stderr.write(`sipp could not bind ${address}:${o.port}; starting it again${portHolders(o.port)}\n`);
          await new Promise((r) => setTimeout(r, 200));
          if (!killed) attempt = launch();
          continue;
        }
        settle();
        throw new Error(`sipp exited early (${child.exitCode ?? child.signalCode}): ${output.slice(-2000)}${portHolders(o.port)}`);
      }
      if (child.pid !== undefined && ownsPort(child.pid, o.port, isTcp)) {
        void attempt.exited.then(settle);
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    void attempt.exited.then(settle);
    throw new Error("sipp did not bind its port in 3 s");
  })();
  const proc: SippProcess = {
    get child() {
      return attempt.child;
    },
    ready,
    done,
    kill: async () => {
      killed = true;
      const { child, exited } = attempt;
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      settle();
      running.delete(proc);
    },
  };
  running.add(proc);
  void done.then(() => running.delete(proc));
  return proc;
}

/**
 * Whether process `pid` holds a socket bound to local `port` (Linux /proc): a busy port alone
 * could be another program's.
 */
function ownsPort(pid: number, port: number, tcp: boolean): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set<string>();
  for (const table of tcp ? ["tcp", "tcp6"] : ["udp", "udp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[1]!.endsWith(hex)) inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? "");
    } catch {
      return false;
    }
  });
}

/** Who holds a port SIPp could not bind, for the error message. */
function portHolders(port: number): string {
  const r = spawnSync("ss", ["-uatnpH", `( sport = :${port} or sport = :${port + 1} or sport = :${port + 2} )`], { encoding: "utf8" });
  return `\n--- sockets on ${port}..${port + 2} ---\n${r.error ? String(r.error) : r.stdout || "(none)"}`;
}

/**
 * A PBX that answers up to `calls` calls and echoes their audio (cluster-pbx.xml with -rtp_echo),
 * bound and ready; the gateway hangs up.
 */
export async function startEchoPbx(port: number, calls: number, timeoutS = 60): Promise<SippProcess> {
  const pbx = startSipp({ scenario: "cluster-pbx.xml", port, calls, timeoutS, extraArgs: ["-rtp_echo"] });
  await pbx.ready;
  return pbx;
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
