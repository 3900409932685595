import { Writable } from "node:stream";
import { loadConfig, type GatewayConfig } from "../../gateway/config/config.js";
import { Gateway } from "../../gateway/gateway.js";
import { createLogger } from "../../gateway/log.js";
import { MetaSimulator, type MetaSimulatorOptions } from "../../sim/index.js";
import { startDrachtio, type DrachtioServer } from "./drachtio.js";

export const TEST_APP_SECRET = "test-app-secret-0123456789";
export const TEST_VERIFY_TOKEN = "test-verify-token";
export const TEST_PAGE_ID = "1029384756";
export const TEST_PAGE_TOKEN = "EAAtestpagetoken";

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

/** Collects the gateway's JSON log lines so tests can assert on what it said. */
export class LogCapture extends Writable {
  readonly lines: LogLine[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line.trim()) this.lines.push(JSON.parse(line) as LogLine);
    }
    cb();
  }
  find(msg: string | RegExp): LogLine[] {
    return this.lines.filter((l) => (typeof msg === "string" ? l.msg === msg : msg.test(l.msg)));
  }
}

export interface Harness {
  sim: MetaSimulator;
  gateway: Gateway;
  config: GatewayConfig;
  logs: LogCapture;
  webhookUrl: string;
  /** The drachtio-server behind the gateway, with the drachtio backend. */
  drachtio: DrachtioServer | undefined;
  stop(): Promise<void>;
}

/**
 * The settings that put a gateway on the drachtio backend, with a drachtio-server started for it
 * (or the one DRACHTIO_HOST names). Used when a test asks for it, or for every harness when the
 * tests run with SIP_BACKEND=drachtio in the environment.
 */
async function drachtioBackend(): Promise<{ env: Record<string, string>; server: DrachtioServer }> {
  const server = await startDrachtio();
  return {
    server,
    env: { SIP_BACKEND: "drachtio", SIP_LISTEN: "", DRACHTIO_HOST: server.host, DRACHTIO_PORT: String(server.port), DRACHTIO_SECRET: server.secret },
  };
}

/** The real gateway in this process, wired to a Meta simulator on loopback. */
export async function startHarness(
  opts: { env?: Record<string, string>; sim?: Partial<MetaSimulatorOptions>; sipBackend?: "embedded" | "drachtio" } = {},
): Promise<Harness> {
  const backend = opts.sipBackend ?? (process.env.SIP_BACKEND === "drachtio" ? "drachtio" : "embedded");
  // A test that names its own drachtio-server (DRACHTIO_HOST in env) gets no second one.
  const drachtio = backend === "drachtio" && opts.env?.DRACHTIO_HOST === undefined ? await drachtioBackend() : undefined;
  const sim = await MetaSimulator.start({
    appSecret: TEST_APP_SECRET,
    pageId: TEST_PAGE_ID,
    pageAccessToken: TEST_PAGE_TOKEN,
    ...opts.sim,
  });
  const config = loadConfig({
    META_APP_SECRET: TEST_APP_SECRET,
    META_VERIFY_TOKEN: TEST_VERIFY_TOKEN,
    META_PAGE_ID: TEST_PAGE_ID,
    META_PAGE_ACCESS_TOKEN: TEST_PAGE_TOKEN,
    META_GRAPH_URL: sim.graphUrl,
    META_GRAPH_TIMEOUT_MS: "3000",
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "0",
    PUBLIC_IP: "127.0.0.1",
    MEDIA_BIND_IP: "127.0.0.1",
    RTP_PORT_MIN: "42000",
    RTP_PORT_MAX: "42999",
    SIP_TARGET: "echo",
    SIP_LISTEN: "127.0.0.1:0",
    LOG_LEVEL: "debug",
    ...(backend === "drachtio" ? { SIP_BACKEND: "drachtio", SIP_LISTEN: "" } : {}),
    ...drachtio?.env,
    ...opts.env,
  });
  const logs = new LogCapture();
  const gateway = new Gateway(config, createLogger(config.logLevel, logs));
  await gateway.start();
  const webhookUrl = `http://127.0.0.1:${gateway.httpAddress.port}/webhooks/meta`;
  sim.setWebhookUrl(webhookUrl);
  return {
    sim,
    gateway,
    config,
    logs,
    webhookUrl,
    drachtio: drachtio?.server,
    async stop() {
      await gateway.stop(0);
      await sim.stop();
      await drachtio?.server.stop();
    },
  };
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Graph API requests the simulator received for one action (and call). */
export function graphRequests(sim: MetaSimulator, action?: string, callId?: string): MetaSimulator["requests"][number][] {
  return sim.requests.filter((r) => {
    if (action === undefined) return r.action === "connect";
    if (r.action !== action) return false;
    if (callId === undefined) return true;
    const body = r.body as { call_id?: unknown } | undefined;
    return body?.call_id === callId;
  });
}

export function requestSdp(record: MetaSimulator["requests"][number]): string | undefined {
  const body = record.body as { session?: { sdp?: unknown } } | undefined;
  return typeof body?.session?.sdp === "string" ? body.session.sdp : undefined;
}
