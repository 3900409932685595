import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";

/**
 * Ends a call whose Meta leg stopped receiving RTP, or never started to, counted from when the
 * watch began. werift reaches `failed` only after ~30 s of consent expiry, and Meta's DTX still
 * sends a packet every few hundred ms, so a long silence on the wire means the consumer is gone.
 */
export function watchMetaMedia(leg: MetaMediaLeg, timeoutMs: number, onTimeout: (detail: string) => void): () => void {
  const since = Date.now();
  const timer = setInterval(() => {
    const last = Math.max(leg.stats().lastPacketInAt ?? 0, since);
    if (Date.now() - last > timeoutMs) onTimeout(`no RTP from Meta for ${timeoutMs} ms`);
  }, Math.min(1_000, timeoutMs));
  timer.unref();
  return () => clearInterval(timer);
}
