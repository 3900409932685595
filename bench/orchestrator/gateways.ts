import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SystemDelays } from "../phases/density.js";
import type { ProcessProbeReport, WindowProbeReports } from "../probe/probe-report.js";
import { inspectorUrl } from "./heap.js";
import { InspectorClient } from "./inspector.js";
import type { ManagedProcess, ProcessGroup } from "./processes.js";
import { freeTcpPort, freeUdpPort } from "./ports.js";

const GATEWAY_MAIN = fileURLToPath(new URL("../../gateway/main.js", import.meta.url));
/** Loaded into every gateway: event-loop stall attribution, driven over the inspector (stall-probe.ts). */
const PROBE_SETTLE_MS = 1000;
const STALL_PROBE = new URL("../probe/stall-probe.js", import.meta.url).href;

/** The Page and app every bench process agrees on. */
export const BENCH_META = {
  pageId: "100000000000777",
  appSecret: "bench-app-secret",
  pageAccessToken: "bench-page-token",
  verifyToken: "bench-verify-token",
  graphVersion: "v26.0",
} as const;

export interface GatewayInstance {
  index: number;
  process: ManagedProcess;
  httpPort: number;
  sipPort: number;
  webhookUrl: string;
  rtpRange: [number, number];
  /** The V8 inspector on 127.0.0.1, for heap figures after a full collection. */
  inspectorUrl: string | undefined;
}

export interface GatewayStartOptions {
  index: number;
  graphUrl: string;
  /** The load generator's SIP UAS (the "PBX"). */
  pbxSipPort: number;
  rtpRange: [number, number];
  /** Directory for `node --cpu-prof` output; no profiling when undefined. */
  profileDir?: string;
  /** Extra Node flags for the gateway process (e.g. --max-semi-space-size=32). */
  nodeArgs?: string[];
  /** MEDIA_WORKERS: media worker threads, `auto` for one per core. */
  mediaWorkers: number | "auto";
  /** OVERLOAD_LOOP_DELAY_MS (0: off). */
  overloadLoopDelayMs: number;
}

/** Starts `node dist/gateway/main.js` configured by environment, and waits for /healthz. */
export async function startGateway(group: ProcessGroup, o: GatewayStartOptions): Promise<GatewayInstance> {
  const httpPort = await freeTcpPort();
  const sipPort = await freeUdpPort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    META_APP_SECRET: BENCH_META.appSecret,
    META_VERIFY_TOKEN: BENCH_META.verifyToken,
    META_PAGE_ID: BENCH_META.pageId,
    META_PAGE_ACCESS_TOKEN: BENCH_META.pageAccessToken,
    META_GRAPH_URL: o.graphUrl,
    META_GRAPH_VERSION: BENCH_META.graphVersion,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(httpPort),
    SIP_LISTEN: `127.0.0.1:${sipPort}`,
    SIP_TRANSPORTS: "udp",
    SIP_TARGET: `sip:agent@127.0.0.1:${o.pbxSipPort}`,
    RTP_PORT_MIN: String(o.rtpRange[0]),
    RTP_PORT_MAX: String(o.rtpRange[1]),
    MEDIA_WORKERS: String(o.mediaWorkers),
    PUBLIC_IP: "127.0.0.1",
    MEDIA_BIND_IP: "127.0.0.1",
    MAX_CONCURRENT_CALLS: "5000",
    OVERLOAD_LOOP_DELAY_MS: String(o.overloadLoopDelayMs),
    // BENCH_GATEWAY_LOG_LEVEL=info (with BENCH_LOG_DIR) keeps the calls' set-up steps in the logs.
    LOG_LEVEL: process.env.BENCH_GATEWAY_LOG_LEVEL ?? "warn",
    DRAIN_SECONDS: "0",
  };
  // Profiled, every thread writes its own profile (Node's default names carry the thread id; a fixed
  // --cpu-prof-name has each thread overwrite the last one's file). Node writes none for a worker
  // thread while the inspector is open, and the stall probes it drives are off in a profiled run.
  const nodeArgs = o.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${join(o.profileDir, `gateway-${o.index}`)}`] : ["--inspect=127.0.0.1:0"];
  const proc = group.spawn(`gateway-${o.index}`, process.execPath, [...(o.nodeArgs ?? []), ...nodeArgs, `--import=${STALL_PROBE}`, GATEWAY_MAIN], { env });
  const webhookUrl = `http://127.0.0.1:${httpPort}/webhooks/meta`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`gateway-${o.index} exited at start: ${proc.tail.join(" | ")}`);
    const ok = await fetch(`http://127.0.0.1:${httpPort}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`gateway-${o.index} not healthy within 15 s: ${proc.tail.join(" | ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { index: o.index, process: proc, httpPort, sipPort, webhookUrl, rtpRange: o.rtpRange, inspectorUrl: inspectorUrl(proc.tail) };
}

/** A metric's first sample in a Prometheus exposition, NaN when it is absent. */
function metricValue(text: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text)?.[1] ?? NaN);
}

/** A few figures from the gateway's Prometheus endpoint. */
export async function scrapeGateway(g: GatewayInstance): Promise<{ activeCalls: number; heapUsedMB: number }> {
  const text = await fetch(`http://127.0.0.1:${g.httpPort}/metrics`).then((r) => r.text());
  return { activeCalls: metricValue(text, "gateway_calls_active"), heapUsedMB: metricValue(text, "gateway_process_nodejs_heap_size_used_bytes") / 2 ** 20 };
}

/**
 * From one scrape of each gateway, the worst gateway's: the longest event-loop delay since the
 * previous scrape (prom-client's default metrics measure it with perf_hooks and start afresh on
 * every scrape), and the admission measure of the last second (`gateway_media_loop_delay_seconds`).
 * One scrape, not one a second: a scrape gathers every media worker's registry (about 10 ms of
 * CPU), which would weigh on what the window measures.
 */
export async function gatewaysDelays(gateways: GatewayInstance[]): Promise<SystemDelays> {
  const each = await Promise.all(
    gateways.map(async (g) => {
      const text = await fetch(`http://127.0.0.1:${g.httpPort}/metrics`).then((r) => r.text());
      return {
        loopMaxMs: metricValue(text, "gateway_process_nodejs_eventloop_lag_max_seconds") * 1000,
        mediaLoopLateMs: metricValue(text, "gateway_media_loop_delay_seconds") * 1000,
      };
    }),
  );
  return { loopMaxMs: Math.max(...each.map((e) => e.loopMaxMs)), mediaLoopLateMs: Math.max(...each.map((e) => e.mediaLoopLateMs)) };
}

/** Waits until every gateway reports no active call. */
export async function waitGatewaysIdle(gateways: GatewayInstance[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const active = await Promise.all(gateways.map((g) => scrapeGateway(g).then((s) => s.activeCalls, () => NaN)));
    if (active.every((n) => n === 0)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

/**
 * Starts the stall probe in every gateway for one window (CPU sampling every `sampleIntervalUs`,
 * 0 for none) and returns the function that stops it and collects the reports: one per thread
 * (the main thread's probe gathers its media workers'), named `gwN thread` when there are several
 * gateways.
 */
export async function startStallProbes(gateways: GatewayInstance[], sampleIntervalUs: number): Promise<() => Promise<WindowProbeReports>> {
  const clients = await Promise.all(gateways.map((g) => (g.inspectorUrl ? InspectorClient.connect(g.inspectorUrl) : Promise.reject(new Error(`gateway-${g.index}: no inspector`)))));
  try {
    await Promise.all(clients.map((c) => c.evaluate(`globalThis.__benchStallProbe.start(${sampleIntervalUs})`)));
    // Let the backlog of packets that queued up while the profiler started drain, then count from zero.
    await new Promise((r) => setTimeout(r, PROBE_SETTLE_MS));
    await Promise.all(clients.map((c) => c.evaluate("globalThis.__benchStallProbe.mark()")));
  } catch (err) {
    for (const c of clients) c.close();
    throw err;
  }
  return async () => {
    try {
      const texts = await Promise.all(clients.map((c) => c.evaluate<string>("globalThis.__benchStallProbe.stop()", 30_000)));
      const name = (process: number, thread: string): string => (gateways.length > 1 ? `gw${process} ${thread}` : thread);
      const out: WindowProbeReports = { reports: [], missing: [] };
      for (const [i, text] of texts.entries()) {
        const p = JSON.parse(text) as ProcessProbeReport;
        for (const r of p.threads) out.reports.push({ ...r, thread: name(i, r.thread), process: i });
        for (const m of p.missing) out.missing.push(name(i, m));
      }
      return out;
    } finally {
      for (const c of clients) c.close();
    }
  };
}
