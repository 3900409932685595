import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "x-gateway-cluster-signature";
export const TIMESTAMP_HEADER = "x-gateway-cluster-timestamp";
/** A forwarded delivery older (or newer) than this is refused: a captured request cannot be replayed later. */
export const MAX_SKEW_MS = 60_000;

/** `sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>` with the cluster secret. */
export function signForward(secret: string, timestampMs: number, body: string | Buffer): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestampMs}.`).update(body).digest("hex")}`;
}

export type ForwardCheck = { ok: true } | { ok: false; reason: "missing" | "stale" | "mismatch" };

export function verifyForward(secret: string, body: Buffer, timestamp: string | undefined, signature: string | undefined, nowMs: number): ForwardCheck {
  if (!timestamp || !signature || !/^\d{1,16}$/.test(timestamp)) return { ok: false, reason: "missing" };
  const ts = Number(timestamp);
  if (Math.abs(nowMs - ts) > MAX_SKEW_MS) return { ok: false, reason: "stale" };
  const expected = Buffer.from(signForward(secret, ts, body));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: "mismatch" };
  return { ok: true };
}
