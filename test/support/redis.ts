import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { Socket } from "node:net";
import { freePort } from "./sipp.js";

/** Fails (never skips) when redis-server is missing: the multi-instance tests exist to use a real one. */
export function requireRedis(): void {
  const r = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (r.error || !/Redis server v=\d/.test(r.stdout)) {
    throw new Error("redis-server is not on PATH: install Debian's redis-server (scripts/setup.sh does); the cluster tests need it");
  }
}

/**
 * A free TCP port below the kernel's ephemeral range (freePort's): a port the kernel hands out
 * can be taken as the source port of some outgoing connection before the server listens on it.
 */
export function freeTcpPort(): Promise<number> {
  return freePort();
}

/**
 * A real redis-server on a free loopback port, keeping nothing on disk, that a test can stop and
 * start again on the same port (a restart loses every key, as a Redis without persistence does).
 */
export class RedisServer {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    requireRedis();
    const server = new RedisServer(await freeTcpPort());
    await server.resume();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts (again) on the same port and waits until it answers PING. */
  async resume(): Promise<void> {
    if (this.running) return;
    const child = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    this.child = child;
    let err = "";
    child.stderr?.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const until = Date.now() + 5000;
    while (!(await this.pings())) {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${err}`);
      if (Date.now() > until) throw new Error("redis-server did not answer PING within 5 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Kills it (SIGKILL: nothing is saved, connections drop at once). */
  async halt(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  }

  async stop(): Promise<void> {
    await this.halt();
    this.child = undefined;
  }

  private pings(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = new Socket();
      const done = (ok: boolean): void => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(500, () => done(false));
      s.once("error", () => done(false));
      s.connect(this.port, "127.0.0.1", () => s.write("PING\r\n"));
      s.once("data", (d) => done(d.toString().startsWith("+PONG")));
    });
  }
}
