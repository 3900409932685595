import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

/**
 * A running Debian kamailio on a configuration file in its own temporary folder: started and
 * waited for, its output kept for tests to read, frozen and thawed, stopped and cleaned up.
 */
export class KamailioProcess {
  private output = "";

  protected constructor(
    private readonly proc: ChildProcess,
    private readonly dir: string,
  ) {
    const keep = (d: Buffer): void => {
      this.output = (this.output + d.toString("utf8")).slice(-200_000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
  }

  /** Runs kamailio on `dir`/kamailio.cfg and resolves once its children are listening. */
  protected static async launch<T extends KamailioProcess>(dir: string, make: (proc: ChildProcess, dir: string) => T): Promise<T> {
    const proc = spawn("kamailio", ["-f", join(dir, "kamailio.cfg"), "-DD", "-E", "-n", "2", "-Y", join(dir, "run")], { stdio: ["ignore", "pipe", "pipe"] });
    const kam = make(proc, dir);
    const until = Date.now() + 8000;
    while (!/listening on|Listening on/.test(kam.output)) {
      if (proc.exitCode !== null) throw new Error(`kamailio exited (${proc.exitCode}):\n${kam.output.slice(-3000)}`);
      if (Date.now() > until) throw new Error(`kamailio did not start:\n${kam.output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // It prints its listeners before its children are up.
    await new Promise((r) => setTimeout(r, 300));
    return kam;
  }

  get log(): string {
    return this.output;
  }

  /** Freezes kamailio and its children (SIGSTOP): connections stay open and nothing answers. */
  pause(): void {
    for (const pid of this.pids()) process.kill(pid, "SIGSTOP");
  }

  resume(): void {
    for (const pid of this.pids()) process.kill(pid, "SIGCONT");
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The main process and every process it forked. */
  private pids(): number[] {
    const main = this.proc.pid;
    if (main === undefined) return [];
    const children = new Map<number, number[]>();
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      } catch {
        continue;
      }
      // "pid (comm) state ppid …": comm may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    }
    const out = [main];
    for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
    return out;
  }
}
