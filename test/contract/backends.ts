import { DrachtioSipSignaling } from "../../sip/drachtio/drachtio-signaling.js";
import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import type { SipSignaling } from "../../sip/signaling.js";
import { drachtioAvailability, drachtioRequired, startDrachtio, type DrachtioServer } from "../support/drachtio.js";

/**
 * The SIP backends the contract suites run against. Each gives a started SipSignaling and the
 * address SIP peers must send to; the suites see nothing else of it.
 */
export interface BackendRig {
  sig: SipSignaling;
  /** host:port a peer sends SIP to. */
  sipTarget: string;
  /** Calls the backend still tracks (none once every call has ended). */
  activeCalls(): number;
  /** The drachtio-server behind a drachtio rig. */
  server?: DrachtioServer;
  stop(): Promise<void>;
}

export interface Backend {
  name: "embedded" | "drachtio";
  /** Why this backend's half is skipped here, when it is. */
  skipReason: string | undefined;
  start(): Promise<BackendRig>;
  /** Settings that point a gateway at this backend (for the gateway-level contract tests). */
  gatewayEnv(server: DrachtioServer | undefined): Record<string, string>;
}

const embedded: Backend = {
  name: "embedded",
  skipReason: undefined,
  async start() {
    const sig = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, userAgent: "gw-contract/1" });
    await sig.start();
    return { sig, sipTarget: `127.0.0.1:${sig.localAddress!.port}`, activeCalls: () => sig.activeCalls, stop: () => sig.stop() };
  },
  gatewayEnv: () => ({ SIP_BACKEND: "embedded", SIP_LISTEN: "127.0.0.1:0" }),
};

function drachtioSkipReason(): string | undefined {
  const where = drachtioAvailability();
  if (where.kind !== "none") return undefined;
  // In CI the drachtio half must run: no skipping, the suite fails on the missing server.
  return drachtioRequired() ? undefined : where.reason;
}

const drachtio: Backend = {
  name: "drachtio",
  skipReason: drachtioSkipReason(),
  async start() {
    const server = await startDrachtio();
    const sig = new DrachtioSipSignaling({ host: server.host, port: server.port, secret: server.secret, userAgent: "gw-contract/1", reconnectMaxDelayMs: 500 });
    await sig.start();
    if (!sig.ready) throw new Error(`no connection to drachtio-server at ${server.host}:${server.port}:\n${server.log().slice(-2000)}`);
    return {
      sig,
      server,
      sipTarget: `${sig.localAddress!.address}:${sig.localAddress!.port}`,
      activeCalls: () => sig.activeCalls,
      stop: async () => {
        await sig.stop();
        await server.stop();
      },
    };
  },
  gatewayEnv: (server) => {
    if (!server) throw new Error("the drachtio backend needs its server");
    return { SIP_BACKEND: "drachtio", DRACHTIO_HOST: server.host, DRACHTIO_PORT: String(server.port), DRACHTIO_SECRET: server.secret };
  },
};

export const BACKENDS: readonly Backend[] = [embedded, drachtio];

let announced = false;

/** One clear line when the drachtio half cannot run here (never in CI, where it must). */
export function announceSkips(): void {
  if (announced) return;
  announced = true;
  for (const b of BACKENDS) {
    if (b.skipReason) process.stdout.write(`SIP contract: ${b.name} backend skipped: ${b.skipReason}\n`);
  }
}

/** The describe title, saying why when the half is skipped. */
export function suiteTitle(what: string, b: Backend): string {
  return b.skipReason ? `${what} [${b.name}] (skipped: ${b.skipReason})` : `${what} [${b.name}]`;
}
