import { DrachtioProcess, findDrachtio, type DrachtioLocation, type DrachtioTls } from "../../scripts/peers/drachtio.js";
import { freePort } from "./sipp.js";

/**
 * A real drachtio-server for tests: the build in ../shared/tools/drachtio-server/ (or DRACHTIO_BIN)
 * started on free ports, or the running one DRACHTIO_HOST names (DRACHTIO_PORT, DRACHTIO_SECRET).
 */

export type DrachtioAvailability = DrachtioLocation;

export function drachtioAvailability(env: NodeJS.ProcessEnv = process.env): DrachtioAvailability {
  return findDrachtio(env);
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
  /** Whether this process started it (and can kill and restart it). */
  readonly local: boolean;
  /** Its SIP-over-TLS port, when it was started with a TLS listener. */
  readonly tlsPort: number | undefined;
  /** Its log (local servers only). */
  log(): string;
  /** SIGKILL: the control connection drops at once, the way a crash does. */
  kill(): Promise<void>;
  /** Starts it again on the same ports after kill(). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

class LocalDrachtio implements DrachtioServer {
  readonly local = true;
  constructor(private readonly p: DrachtioProcess) {}
  get host(): string {
    return this.p.host;
  }
  get port(): number {
    return this.p.port;
  }
  get secret(): string {
    return this.p.secret;
  }
  get tlsPort(): number | undefined {
    return this.p.tls?.port;
  }
  log(): string {
    return this.p.log();
  }
  kill(): Promise<void> {
    return this.p.kill();
  }
  restart(): Promise<void> {
    return this.p.restart();
  }
  stop(): Promise<void> {
    return this.p.stop();
  }
}

class ExternalDrachtio implements DrachtioServer {
  readonly local = false;
  readonly tlsPort = undefined;
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

/**
 * Starts one (or hands out the external one); throws with the reason when there is none. With
 * `tls`, it also listens for SIP over TLS with that certificate (PEM files; port 0 picks one).
 */
export async function startDrachtio(o: { tls?: Omit<DrachtioTls, "port"> & { port?: number } } = {}): Promise<DrachtioServer> {
  const where = drachtioAvailability();
  if (where.kind === "none") throw new Error(where.reason);
  if (where.kind === "external") {
    if (o.tls) throw new Error("a TLS listener needs a drachtio-server the tests start (DRACHTIO_HOST names one whose configuration is its own)");
    return new ExternalDrachtio(where.host, where.port, where.secret);
  }
  const taken = new Set<number>();
  const free = async (): Promise<number> => {
    let p = await freePort();
    while (taken.has(p)) p = await freePort();
    taken.add(p);
    return p;
  };
  const sipPort = await free();
  const port = await free();
  const tls = o.tls && { ...o.tls, port: o.tls.port || (await free()) };
  return new LocalDrachtio(await DrachtioProcess.start({ bin: where.bin, port, sipPort, tls }));
}

/** A SIP backend a gateway-level test runs on, and why it is skipped here when it is. */
export interface GatewayBackend {
  name: "embedded" | "drachtio";
  skipReason: string | undefined;
}

/**
 * Both SIP backends for tests that run one scenario on each (startHarness takes the name as
 * `sipBackend`). The drachtio half is skipped only outside CI when no drachtio-server is at hand.
 */
export function gatewayBackends(env: NodeJS.ProcessEnv = process.env): readonly GatewayBackend[] {
  const where = drachtioAvailability(env);
  const drachtioSkip = where.kind === "none" && !drachtioRequired(env) ? where.reason : undefined;
  if (drachtioSkip) process.stdout.write(`drachtio half skipped: ${drachtioSkip}\n`);
  return [
    { name: "embedded", skipReason: undefined },
    { name: "drachtio", skipReason: drachtioSkip },
  ];
}
