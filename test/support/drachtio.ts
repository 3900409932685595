import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./sipp.js";

/**
 * A real drachtio-server for tests: the Debian 12 build in ../shared/tools/drachtio-server/ (or
 * DRACHTIO_BIN: its run.sh, or the drachtio binary itself), started on free ports on 127.0.0.1;
 * or, with DRACHTIO_HOST set, one already running elsewhere (DRACHTIO_PORT, DRACHTIO_SECRET).
 */

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DEFAULT_DRACHTIO_RUN = resolve(REPO_ROOT, "../shared/tools/drachtio-server/run.sh");
/** The secret of the shared build's configuration file. */
const SHARED_SECRET = "cymru";

export type DrachtioAvailability = { kind: "local"; bin: string } | { kind: "external"; host: string; port: number; secret: string } | { kind: "none"; reason: string };

function executable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where a drachtio-server for the tests comes from, or why there is none. */
export function drachtioAvailability(env: NodeJS.ProcessEnv = process.env): DrachtioAvailability {
  if (env.DRACHTIO_HOST) {
    return { kind: "external", host: env.DRACHTIO_HOST, port: Number(env.DRACHTIO_PORT ?? "9022"), secret: env.DRACHTIO_SECRET ?? SHARED_SECRET };
  }
  const bin = env.DRACHTIO_BIN ?? DEFAULT_DRACHTIO_RUN;
  if (executable(bin)) return { kind: "local", bin };
  return { kind: "none", reason: `no drachtio-server at ${bin} (set DRACHTIO_BIN, or DRACHTIO_HOST for a running one)` };
}

/**
 * Whether a missing drachtio-server fails the run instead of skipping the drachtio half: in CI
 * (CI set, as .ci/run does) it must really run.
 */
export function drachtioRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI !== undefined && env.CI !== "" && env.CI !== "0" && env.CI !== "false";
}

export interface DrachtioServer {
  readonly host: string;
  /** Control port (drachtio-srf connects here). */
  readonly port: number;
  readonly secret: string;
  /** SIP port (UDP and TCP) on 127.0.0.1; undefined for an external server. */
  readonly sipPort: number | undefined;
  /** Whether this process started it (and can kill and restart it). */
  readonly local: boolean;
  /** Its stderr, the last 200 kB (local servers only). */
  log(): string;
  /** SIGKILL: the control connection drops at once, the way a crash does. */
  kill(): Promise<void>;
  /** Starts it again on the same ports after kill(). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

class LocalDrachtio implements DrachtioServer {
  readonly host = "127.0.0.1";
  readonly secret = SHARED_SECRET;
  readonly local = true;
  private child: ChildProcess | undefined;
  private output = "";
  private readonly workDir: string;

  constructor(
    private readonly bin: string,
    readonly port: number,
    readonly sipPort: number,
  ) {
    this.workDir = mkdtempSync(join(tmpdir(), "drachtio-"));
  }

  log(): string {
    return this.output;
  }

  async launch(): Promise<void> {
    const args = [String(this.sipPort), String(this.port), "-l", "info"];
    let command = this.bin;
    let argv = args;
    if (!this.bin.endsWith(".sh")) {
      // The binary itself: give it a configuration like the shared one.
      const conf = join(this.workDir, "drachtio.conf.xml");
      writeFileSync(
        conf,
        `<drachtio><admin port="${this.port}" secret="${this.secret}">127.0.0.1</admin>` +
          `<sip><contacts><contact>sip:127.0.0.1:${this.sipPort};transport=udp,tcp</contact></contacts></sip>` +
          `<logging><console/><sofia-loglevel>1</sofia-loglevel><loglevel>info</loglevel></logging></drachtio>`,
      );
      command = this.bin;
      argv = ["-f", conf, "--contact", `sip:127.0.0.1:${this.sipPort};transport=udp,tcp`, "--port", String(this.port), "-l", "info"];
    }
    const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const keep = (d: Buffer): void => {
      this.output = (this.output + d.toString("utf8")).slice(-200_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    // Its exit status does not tell a taken port from a clean stop: only the control port does.
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`drachtio-server exited at start-up (${child.exitCode ?? child.signalCode}):\n${this.output.slice(-3000)}`);
      }
      if (await accepts(this.host, this.port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill("SIGKILL");
    throw new Error(`drachtio-server did not open its control port ${this.port} within 5 s:\n${this.output.slice(-3000)}`);
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(timer);
  }

  kill(): Promise<void> {
    return this.end("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.end("SIGKILL");
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.end("SIGTERM");
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

class ExternalDrachtio implements DrachtioServer {
  readonly sipPort = undefined;
  readonly local = false;
  constructor(
    readonly host: string,
    readonly port: number,
    readonly secret: string,
  ) {}
  log(): string {
    return "";
  }
  kill(): Promise<void> {
    return Promise.reject(new Error("an external drachtio-server (DRACHTIO_HOST) cannot be killed by the tests"));
  }
  restart(): Promise<void> {
    return this.kill();
  }
  async stop(): Promise<void> {}
}

const started = new Set<DrachtioServer>();

/** Starts one (or hands out the external one); throws with the reason when there is none. */
export async function startDrachtio(): Promise<DrachtioServer> {
  const where = drachtioAvailability();
  if (where.kind === "none") throw new Error(where.reason);
  if (where.kind === "external") return new ExternalDrachtio(where.host, where.port, where.secret);
  const sipPort = await freePort();
  let adminPort = await freePort();
  while (adminPort === sipPort) adminPort = await freePort();
  const server = new LocalDrachtio(where.bin, adminPort, sipPort);
  await server.launch();
  started.add(server);
  return server;
}

/** Stops every server started here (for afterAll). */
export async function stopAllDrachtio(): Promise<void> {
  await Promise.all([...started].map((s) => s.stop()));
  started.clear();
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
