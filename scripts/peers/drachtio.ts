import { spawn, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * drachtio-server as a local peer for the demo and the tests: the Debian 12 build in
 * ../shared/tools/drachtio-server/ next to the repository (or DRACHTIO_BIN: its run.sh, or the
 * drachtio binary itself), on 127.0.0.1, or one already running that DRACHTIO_HOST names.
 */

/** The secret in the shared build's configuration file. */
export const SHARED_DRACHTIO_SECRET = "cymru";

/** The repository root, from the source tree or from dist/. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && /"name":\s*"meta-sip-gateway"/.test(readFileSync(pkg, "utf8"))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), "../..");
}

export const DEFAULT_DRACHTIO_RUN = resolve(repoRoot(), "../shared/tools/drachtio-server/run.sh");

export type DrachtioLocation =
  | { kind: "local"; bin: string }
  | { kind: "external"; host: string; port: number; secret: string }
  | { kind: "none"; reason: string };

function executable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where a drachtio-server comes from here, or why there is none. */
export function findDrachtio(env: NodeJS.ProcessEnv = process.env): DrachtioLocation {
  if (env.DRACHTIO_HOST) {
    return { kind: "external", host: env.DRACHTIO_HOST, port: Number(env.DRACHTIO_PORT ?? "9022"), secret: env.DRACHTIO_SECRET ?? SHARED_DRACHTIO_SECRET };
  }
  const bin = env.DRACHTIO_BIN ?? DEFAULT_DRACHTIO_RUN;
  if (executable(bin)) return { kind: "local", bin };
  return { kind: "none", reason: `no drachtio-server at ${bin} (set DRACHTIO_BIN, or DRACHTIO_HOST for a running one)` };
}

/**
 * A TLS listener for drachtio-server: it terminates SIP over TLS itself, from a `sips:` contact
 * with `transport=tls` and PEM files (the same as `<tls>` with `<key-file>`, `<cert-file>` and
 * `<chain-file>` in its configuration file).
 */
export interface DrachtioTls {
  port: number;
  certFile: string;
  keyFile: string;
  /** The CA chain sent after the certificate; default the certificate file itself. */
  chainFile?: string;
}

/** The command-line options that add a TLS listener (they take precedence over the file's). */
export function drachtioTlsArgs(tls: DrachtioTls, host = "127.0.0.1"): string[] {
  return [
    "--contact",
    `sips:${host}:${tls.port};transport=tls`,
    "--key-file",
    tls.keyFile,
    "--cert-file",
    tls.certFile,
    "--chain-file",
    tls.chainFile ?? tls.certFile,
  ];
}

/** A drachtio-server process this one started, on 127.0.0.1. */
export class DrachtioProcess {
  readonly host = "127.0.0.1";
  readonly secret = SHARED_DRACHTIO_SECRET;
  private child: ChildProcess | undefined;
  private output = "";
  private readonly workDir = mkdtempSync(join(tmpdir(), "drachtio-"));

  private constructor(
    private readonly bin: string,
    /** Control port (drachtio-srf connects here). */
    readonly port: number,
    /** SIP port, UDP and TCP. */
    readonly sipPort: number,
    private readonly logLevel: string,
    /** SIP over TLS, when it was given a listener for it. */
    readonly tls: DrachtioTls | undefined,
  ) {}

  /** Starts it and resolves once its control port accepts connections. */
  static async start(o: { bin: string; port: number; sipPort: number; logLevel?: string; tls?: DrachtioTls }): Promise<DrachtioProcess> {
    const p = new DrachtioProcess(o.bin, o.port, o.sipPort, o.logLevel ?? "info", o.tls);
    await p.launch();
    return p;
  }

  /** Its stderr (where it logs), the last 200 kB. */
  log(): string {
    return this.output;
  }

  async launch(): Promise<void> {
    let argv: string[];
    if (this.bin.endsWith(".sh")) {
      argv = [String(this.sipPort), String(this.port), "-l", this.logLevel];
    } else {
      // The binary itself: a configuration like the shared one.
      const conf = join(this.workDir, "drachtio.conf.xml");
      writeFileSync(
        conf,
        `<drachtio><admin port="${this.port}" secret="${this.secret}">127.0.0.1</admin>` +
          `<sip><contacts><contact>sip:127.0.0.1:${this.sipPort};transport=udp,tcp</contact></contacts></sip>` +
          `<logging><console/><sofia-loglevel>1</sofia-loglevel><loglevel>info</loglevel></logging></drachtio>`,
      );
      argv = ["-f", conf, "--contact", `sip:127.0.0.1:${this.sipPort};transport=udp,tcp`, "--port", String(this.port), "-l", this.logLevel];
    }
    if (this.tls) argv.push(...drachtioTlsArgs(this.tls, this.host));
    const child = spawn(this.bin, argv, { stdio: ["ignore", "pipe", "pipe"] });
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
    // A paused process would only take the signal once continued.
    child.kill("SIGCONT");
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(timer);
  }

  /** SIGKILL: the control connection drops at once, as in a crash. */
  kill(): Promise<void> {
    return this.end("SIGKILL");
  }

  /** SIGSTOP: it hangs with its sockets open, as a wedged process does. */
  pause(): void {
    this.child?.kill("SIGSTOP");
  }

  /** SIGCONT after pause(). */
  resume(): void {
    this.child?.kill("SIGCONT");
  }

  /** Starts it again on the same ports. */
  async restart(): Promise<void> {
    await this.end("SIGKILL");
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.end("SIGTERM");
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** A port free for TCP and UDP on 127.0.0.1, chosen by the kernel. */
export async function freeTcpUdpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket("udp4");
      s.once("error", () => resolve(false));
      s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error("no port free for both TCP and UDP");
}

export function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
