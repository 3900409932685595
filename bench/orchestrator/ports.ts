import dgram from "node:dgram";
import net from "node:net";
import { autoMediaWorkers } from "../../gateway/config/config.js";
import { MIN_PORTS_PER_WORKER } from "../../gateway/workers/worker-share.js";
import type { Plan } from "./plan.js";

/** A TCP port free on 127.0.0.1 right now (the kernel picks it; a race with others is possible but rare). */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both unless told otherwise). */
export async function freeUdpPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freeTcpPort();
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket("udp4");
      s.once("error", () => resolve(false));
      s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error("no free UDP port on 127.0.0.1");
}

/** The gateways' media ports: above rtpengine's (10000–19999), below the kernel's ephemeral range (32768 on). */
const GATEWAY_RTP_MIN = 20000;
const GATEWAY_RTP_MAX = 32767;
/**
 * Ports a worker's call may hold: the worker's range is halved, one half for ICE toward Meta (a
 * port per call), the other for RTP/RTCP pairs toward the PBX (two per call), so four per call.
 */
const PORTS_PER_CALL = 4;
/** Calls go to the least loaded worker; room for an uneven spread and ports not yet released. */
const SPREAD_MARGIN = 1.25;

/** The media worker threads each gateway runs: MEDIA_WORKERS as the gateway resolves it. */
export function mediaWorkerThreads(plan: Pick<Plan, "mediaWorkers">): number {
  return plan.mediaWorkers === "auto" ? autoMediaWorkers() : plan.mediaWorkers;
}

/**
 * Each gateway's RTP_PORT_MIN/MAX: an even share of the gateways' port block. Throws when a
 * worker's slice (the gateway splits its range evenly over its workers) would hold fewer ports
 * than its share of the plan's largest load needs.
 */
export function gatewayRtpRanges(plan: Pick<Plan, "gateways" | "mediaWorkers" | "steps" | "setupUnderLoad">): [number, number][] {
  const workers = mediaWorkerThreads(plan);
  const span = Math.floor((GATEWAY_RTP_MAX - GATEWAY_RTP_MIN + 1) / plan.gateways);
  const maxCalls = Math.max(...plan.steps, plan.setupUnderLoad.liveCalls + plan.setupUnderLoad.burstCalls);
  const perWorker = Math.floor(span / workers);
  const needed = Math.max(MIN_PORTS_PER_WORKER, PORTS_PER_CALL * Math.ceil((SPREAD_MARGIN * maxCalls) / (plan.gateways * workers)));
  if (perWorker < needed) {
    throw new Error(
      `${plan.gateways} gateway(s) × ${workers} media workers leave ${perWorker} RTP ports per worker in ${GATEWAY_RTP_MIN}–${GATEWAY_RTP_MAX}; ${maxCalls} calls need ${needed}: fewer --gateways or --media-workers`,
    );
  }
  return Array.from({ length: plan.gateways }, (_, i) => [GATEWAY_RTP_MIN + i * span, GATEWAY_RTP_MIN + (i + 1) * span - 1]);
}
