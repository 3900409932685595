import type { MetaLeg } from "../webrtc/meta-leg.js";

/**
 * Ends a call whose Meta leg stopped receiving RTP. werift reaches `failed` only after ~30 s of
 * consent expiry, and Meta's DTX still sends a packet every few hundred ms, so a long silence on
 * the wire means the consumer is gone.
 */
export function watchMetaMedia(leg: MetaLeg, timeoutMs: number, onTimeout: (detail: string) => void): () => void {
  const timer = setInterval(() => {
    const s = leg.stats();
    const last = s.lastPacketInAt ?? s.connectedAt ?? Date.now();
    if (Date.now() - last > timeoutMs) onTimeout(`no RTP from Meta for ${timeoutMs} ms`);
  }, Math.min(5_000, timeoutMs));
  timer.unref();
  return () => clearInterval(timer);
}
