import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export type SignatureFailure = "missing" | "malformed" | "mismatch";

export type SignatureCheck = { ok: true } | { ok: false; reason: SignatureFailure };

export type ChallengeCheck = { ok: true; challenge: string } | { ok: false };

const SIGNATURE_PREFIX = "sha256=";
const HEX_BODY = /^(?:[0-9a-fA-F]{2})+$/;

/**
 * Checks Meta's `X-Hub-Signature-256` header against the raw request bytes.
 * Meta signs the bytes it sent (with unicode escaped as `\uXXXX`), so the body
 * must never be re-serialised from parsed JSON before this check.
 */
export function verifySignature(rawBody: Buffer, header: string | undefined, appSecret: string): SignatureCheck {
  // An empty key would make every signature computable by anyone.
  if (appSecret.length === 0) throw new RangeError("appSecret must not be empty");

  const value = header?.trim();
  if (value === undefined || value.length === 0) return { ok: false, reason: "missing" };
  if (!value.startsWith(SIGNATURE_PREFIX)) return { ok: false, reason: "malformed" };

  const hex = value.slice(SIGNATURE_PREFIX.length);
  if (!HEX_BODY.test(hex)) return { ok: false, reason: "malformed" };

  const received = Buffer.from(hex, "hex");
  const expected = createHmac("sha256", appSecret).update(rawBody).digest();
  // timingSafeEqual throws on unequal lengths; a digest of the wrong size cannot match anyway.
  if (received.length !== expected.length) return { ok: false, reason: "mismatch" };
  return timingSafeEqual(received, expected) ? { ok: true } : { ok: false, reason: "mismatch" };
}

/**
 * The GET subscription handshake: answer with `hub.challenge` only when the mode is
 * `subscribe` and the verify token matches.
 */
export function verifyChallenge(query: URLSearchParams, verifyToken: string): ChallengeCheck {
  if (verifyToken.length === 0) throw new RangeError("verifyToken must not be empty");

  const mode = query.get("hub.mode");
  const token = query.get("hub.verify_token");
  const challenge = query.get("hub.challenge");
  if (mode !== "subscribe" || token === null || challenge === null || challenge.length === 0) return { ok: false };
  return constantTimeStringEqual(token, verifyToken) ? { ok: true, challenge } : { ok: false };
}

/** Compares fixed-size digests so neither the content nor the length of the secret leaks through timing. */
function constantTimeStringEqual(a: string, b: string): boolean {
  const da = createHash("sha256").update(a, "utf8").digest();
  const db = createHash("sha256").update(b, "utf8").digest();
  return timingSafeEqual(da, db);
}
