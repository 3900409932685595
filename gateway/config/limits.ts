import { DEFAULT_SIP_MESSAGE_LIMITS, type SipMessageLimits } from "../../sip/index.js";

/**
 * Every bound the gateway puts on what arrives from outside (webhooks, SIP, the SDP either side
 * sends), in one place. Some are settings; the others are far above anything Meta or a PBX sends
 * and are fixed, but every refusal names its bound either way.
 */
export interface Limits {
  webhook: {
    /** One delivery's body; more is answered 413 without being read. */
    maxBodyBytes: number;
    /** Nesting of objects and arrays in a delivery; deeper is answered 400 before parsing. */
    maxJsonDepth: number;
  };
  /** Call ids, PSIDs, Page ids and enumerated values such as a terminate status. */
  maxIdLength: number;
  sdp: { maxBytes: number; maxLines: number };
  sip: SipMessageLimits & {
    /** New INVITEs per second from one source address; 0 = no bound. */
    callsPerSecond: number;
  };
}

/** The limits an operator may change, as configuration keys. */
export const LIMIT_KEYS = [
  "WEBHOOK_MAX_BODY_BYTES",
  "SIP_MAX_MESSAGE_BYTES",
  "SIP_MAX_HEADERS",
  "SIP_MAX_HEADER_BYTES",
  "SIP_MAX_CALLS_PER_SECOND",
] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];

/** Names of the fixed bounds, as refusals and log lines call them. */
export type FixedLimit = "WEBHOOK_MAX_JSON_DEPTH" | "MAX_ID_LENGTH" | "SDP_MAX_BYTES" | "SDP_MAX_LINES";
export type LimitName = LimitKey | FixedLimit;

export const DEFAULT_LIMITS: Readonly<Limits> = {
  // Meta batches up to 1000 updates in one POST; a few MB is far beyond any real delivery.
  webhook: { maxBodyBytes: 4 * 1024 * 1024, maxJsonDepth: 32 },
  // Messenger call ids are `c_` and 19 digits, PSIDs 16–17 digits; WhatsApp's ids run to ~80.
  maxIdLength: 128,
  // A browser's video offer with every codec and RTX is ~12 KB and ~250 lines.
  sdp: { maxBytes: 32 * 1024, maxLines: 1000 },
  sip: { ...DEFAULT_SIP_MESSAGE_LIMITS, callsPerSecond: 20 },
};

/** Meta documents these shapes; anything else is not from Meta's Messenger or WhatsApp platform. */
export const ID_PATTERNS = {
  callId: /^c_[A-Za-z0-9_-]+$/,
  psid: /^\d+$/,
  pageId: /^\d+$/,
  /** WhatsApp call ids: `wacid.` and a base64 tail. */
  waCallId: /^wacid\.[A-Za-z0-9_+/=.-]+$/,
  /** Phone-number ids and WABA ids. */
  waBusinessId: /^\d+$/,
  /** A consumer's WhatsApp number: digits, country code first, no `+`. */
  waPhone: /^\d{5,20}$/,
  /** A business-scoped user id (BSUID), e.g. `US.13491208655302741918`. */
  waUserId: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
} as const;
export type IdKind = keyof typeof ID_PATTERNS;

/** Input over a bound. `limit` is the setting or fixed bound that refused it. */
export class LimitExceededError extends Error {
  override readonly name = "LimitExceededError";
  constructor(
    readonly limit: LimitName,
    readonly max: number,
    detail: string,
  ) {
    super(`${detail} (${limit} is ${max})`);
  }
}

/**
 * Reads the limit settings through the configuration's validating integer reader, so a bad value
 * is reported like any other setting.
 */
export function readLimits(int: (key: LimitKey, fallback: number, min: number, max: number) => number): Limits {
  const d = DEFAULT_LIMITS;
  return {
    webhook: { maxBodyBytes: int("WEBHOOK_MAX_BODY_BYTES", d.webhook.maxBodyBytes, 1024, 64 * 1024 * 1024), maxJsonDepth: d.webhook.maxJsonDepth },
    maxIdLength: d.maxIdLength,
    sdp: { ...d.sdp },
    sip: {
      // UDP carries at most 65,507 bytes; a larger bound only matters over TCP.
      maxMessageBytes: int("SIP_MAX_MESSAGE_BYTES", d.sip.maxMessageBytes, 1024, 1024 * 1024),
      maxHeaders: int("SIP_MAX_HEADERS", d.sip.maxHeaders, 10, 1000),
      maxHeaderBytes: int("SIP_MAX_HEADER_BYTES", d.sip.maxHeaderBytes, 256, 65_535),
      callsPerSecond: int("SIP_MAX_CALLS_PER_SECOND", d.sip.callsPerSecond, 0, 100_000),
    },
  };
}

/**
 * True when `text` (JSON or not) nests objects and arrays deeper than `max`. A single linear scan
 * with no recursion, so it is safe on input that would overflow the stack of a recursive walk.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Throws LimitExceededError when an id from outside is longer than the bound. */
export function checkIdLength(kind: string, id: string, maxLength: number): void {
  if (id.length > maxLength) throw new LimitExceededError("MAX_ID_LENGTH", maxLength, `${kind} is ${id.length} characters long`);
}

/** Which SDP bound `sdp` breaks, if any. */
export function sdpOverLimit(sdp: string, limits: Limits["sdp"]): LimitExceededError | undefined {
  // Every character is at least one byte; the exact count is needed only near the bound.
  const bytes = sdp.length > limits.maxBytes || sdp.length * 3 <= limits.maxBytes ? sdp.length : Buffer.byteLength(sdp, "utf8");
  if (bytes > limits.maxBytes) return new LimitExceededError("SDP_MAX_BYTES", limits.maxBytes, `SDP of over ${limits.maxBytes} bytes`);
  let lines = 1;
  for (let i = sdp.indexOf("\n"); i >= 0 && i < sdp.length - 1; i = sdp.indexOf("\n", i + 1)) {
    if (++lines > limits.maxLines) return new LimitExceededError("SDP_MAX_LINES", limits.maxLines, `SDP of more than ${limits.maxLines} lines`);
  }
  return undefined;
}
