import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";

/** Last lines a child wrote, kept for the error report. */
const TAIL_LINES = 60;

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Last lines of stdout/stderr. */
  tail: string[];
  exited: Promise<number | null>;
}

/**
 * setpriv's --pdeathsig makes the kernel kill a child when the orchestrator dies by any means,
 * SIGKILL included, so no gateway or rtpengine outlives a crashed bench.
 */
const SETPRIV = spawnSync("setpriv", ["--help"], { encoding: "utf8" }).stdout?.includes("--pdeathsig") ? "setpriv" : undefined;

/** `BENCH_LOG_DIR=dir`: every child's whole output also goes to `dir/<name>.log` (e.g. with --trace-gc). */
const LOG_DIR = process.env.BENCH_LOG_DIR;

/** Every child the bench starts; all of them are ended on exit, on signals and on errors. */
export class ProcessGroup {
  private readonly children = new Set<ManagedProcess>();

  spawn(name: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; ipc?: boolean } = {}): ManagedProcess {
    const stdio: StdioOptions = options.ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"];
    const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", command, ...args]] : [command, args];
    const child = spawn(cmd, argv, { stdio, env: options.env ?? process.env });
    if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
    const tail: string[] = [];
    const keep = (chunk: Buffer): void => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() === "") continue;
        tail.push(line.length > 4000 ? `${line.slice(0, 4000)}…` : line);
        if (tail.length > TAIL_LINES) tail.shift();
      }
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    if (LOG_DIR) {
      const file = createWriteStream(join(LOG_DIR, `${name}.log`), { flags: "a" });
      child.stdout?.pipe(file, { end: false });
      child.stderr?.pipe(file, { end: false });
      child.once("exit", () => file.end());
    }
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const managed: ManagedProcess = { name, child, pid: child.pid, tail, exited };
    this.children.add(managed);
    void exited.then(() => this.children.delete(managed));
    return managed;
  }

  /** Asks a child to stop with `signal`, then SIGKILLs it after `graceMs`. */
  async stop(p: ManagedProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.child.kill(signal);
    const timer = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
    await p.exited;
    clearTimeout(timer);
  }

  async stopAll(signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
    await Promise.all([...this.children].map((p) => this.stop(p, signal, graceMs)));
  }

  /** Last resort from a synchronous exit path. */
  killAllNow(): void {
    for (const p of this.children) {
      try {
        p.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }

  get alive(): ManagedProcess[] {
    return [...this.children];
  }
}
