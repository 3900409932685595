import type { GatewayConfig } from "../config/config.js";

/** Fewest media ports a worker is given: ICE and RTP pairs each need a few. */
export const MIN_PORTS_PER_WORKER = 16;

/** How many workers the port range allows, at most the configured number. */
export function workerCount(config: GatewayConfig): number {
  const ports = config.media.rtpPortMax - config.media.rtpPortMin + 1;
  return Math.max(1, Math.min(config.media.workers, Math.floor(ports / MIN_PORTS_PER_WORKER)));
}

/**
 * Worker `index`'s configuration: its own slice of the media port range (so no two threads probe
 * the same ports), no per-source INVITE rate of its own and no cluster of its own (the owner
 * applies SIP_MAX_CALLS_PER_SECOND, MAX_CONCURRENT_CALLS and the cluster's verdict to the whole
 * process, and is the instance other machines see).
 */
export function workerConfig(config: GatewayConfig, index: number, count: number): GatewayConfig {
  const { rtpPortMin, rtpPortMax } = config.media;
  const span = Math.floor((rtpPortMax - rtpPortMin + 1) / count);
  const min = rtpPortMin + index * span;
  const max = index === count - 1 ? rtpPortMax : min + span - 1;
  return {
    ...config,
    media: { ...config.media, rtpPortMin: min, rtpPortMax: max, workers: 1 },
    limits: { ...config.limits, sip: { ...config.limits.sip, callsPerSecond: 0 } },
    cluster: undefined,
  };
}
