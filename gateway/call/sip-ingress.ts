import { BlockList, isIP } from "node:net";
import type { DigestVerifier } from "../../sip/index.js";
import { DEFAULT_LIMITS, ID_PATTERNS, sdpOverLimit, type Limits } from "../config/limits.js";
import { READ_HEADERS } from "./read-headers.js";

/**
 * Why an agent's INVITE is refused before anything reaches Meta. `challenge` marks a 401 that asks
 * for credentials (the usual first answer to a phone), as opposed to a refusal. `limit` names the
 * bound a refusal enforces, when it is one.
 */
export type IngressRefusal = {
  status: number;
  reason: string;
  detail: string;
  headers?: Record<string, string | readonly string[]>;
  challenge?: boolean;
  limit?: string;
};

export interface IngressDecision {
  /** The consumer as dialled: a PSID, or a WhatsApp number (`+` and digits) or user id. */
  psid: string;
  /** Set when the dialled consumer is on WhatsApp. */
  whatsapp?: { phone?: string; userId?: string };
}

export interface SipIngressOptions {
  /** New INVITEs per second from one source address; 0 = no bound. */
  callsPerSecond?: number;
  maxIdLength?: number;
  sdp?: Limits["sdp"];
  now?: () => number;
  /** WhatsApp numbers are configured: `+` numbers and user ids are WhatsApp consumers. */
  whatsApp?: boolean;
}

/** Sources remembered by the rate bound; past this, the ones idle longest are forgotten. */
const MAX_TRACKED_SOURCES = 4096;

/**
 * Who may make the gateway call consumers, and whom they call. Pure apart from the clock: the
 * call manager asks it about each INVITE before any Graph API request is made.
 */
export class SipIngressPolicy {
  private readonly allowed = new BlockList();
  private readonly empty: boolean;
  private readonly rate: SourceRate | undefined;
  private readonly maxIdLength: number;
  private readonly sdpLimits: Limits["sdp"];
  private readonly whatsApp: boolean;

  constructor(
    allowFrom: string[],
    private readonly psidHeader: string | undefined,
    /** When set, agents authenticate with SIP digest after passing the source allowlist. */
    private readonly digest?: DigestVerifier,
    options: SipIngressOptions = {},
  ) {
    for (const entry of allowFrom) {
      const [addr, bits] = entry.split("/") as [string, string | undefined];
      const type = isIP(addr) === 6 ? "ipv6" : "ipv4";
      if (bits === undefined) this.allowed.addAddress(addr, type);
      else this.allowed.addSubnet(addr, Number(bits), type);
    }
    this.empty = allowFrom.length === 0;
    const perSecond = options.callsPerSecond ?? DEFAULT_LIMITS.sip.callsPerSecond;
    this.rate = perSecond > 0 ? new SourceRate(perSecond, options.now ?? Date.now) : undefined;
    this.maxIdLength = options.maxIdLength ?? DEFAULT_LIMITS.maxIdLength;
    this.sdpLimits = options.sdp ?? DEFAULT_LIMITS.sdp;
    this.whatsApp = options.whatsApp ?? false;
  }

  /** Whether agents' INVITEs from this address are taken (SIP_ALLOW_FROM). */
  allowsSource(address: string): boolean {
    const a = address.replace(/^::ffff:/, "");
    return !this.empty && this.allowed.check(a, isIP(a) === 6 ? "ipv6" : "ipv4");
  }

  /** The consumer to call, or why the INVITE is refused. */
  check(invite: {
    source: { address: string };
    requestUri: string;
    header(name: string): string | undefined;
    remoteSdp?: string | undefined;
  }): IngressDecision | IngressRefusal {
    const address = invite.source.address.replace(/^::ffff:/, "");
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (this.empty || !this.allowed.check(address, family)) {
      return { status: 403, reason: "Forbidden", detail: `source ${address} is not in SIP_ALLOW_FROM` };
    }
    // Before the digest check, so a source guessing passwords is slowed down too.
    if (this.rate && !this.rate.take(address)) return rateRefusal(address, this.rate.perSecond);
    if (this.digest) {
      const verdict = this.digest.verify(invite.header(READ_HEADERS.authorization), "INVITE", invite.requestUri);
      if (!verdict.ok) {
        return {
          status: 401,
          reason: "Unauthorized",
          detail: verdict.reason,
          headers: { "WWW-Authenticate": this.digest.challenges(verdict.stale) },
          challenge: verdict.reason === "no credentials" || verdict.stale,
        };
      }
    }
    const where = this.psidHeader ? `header ${this.psidHeader}` : "Request-URI user part";
    const given = this.psidHeader ? { text: invite.header(this.psidHeader)?.trim() } : userPart(invite.requestUri);
    if (given.malformed) {
      return { status: 404, reason: "Not A Messenger Consumer", detail: `the ${where} is not valid percent-encoded UTF-8` };
    }
    const raw = given.text;
    if (raw === undefined || raw === "") {
      return { status: 404, reason: "No Consumer Given", detail: `no consumer PSID in the ${where}` };
    }
    if (raw.length > this.maxIdLength) {
      return {
        status: 404,
        reason: "Not A Messenger Consumer",
        detail: `the ${where} is ${raw.length} characters long (MAX_ID_LENGTH is ${this.maxIdLength})`,
        limit: "MAX_ID_LENGTH",
      };
    }
    const consumer = this.whatsApp ? whatsAppConsumer(raw) : undefined;
    // Meta's PSIDs are long decimal numbers; a short number is an extension dialled by mistake.
    if (!consumer && (raw.length < 5 || !ID_PATTERNS.psid.test(raw))) {
      const what = this.whatsApp ? "a page-scoped id, a +number or a WhatsApp user id" : "a page-scoped id";
      return { status: 404, reason: "Not A Messenger Consumer", detail: `${JSON.stringify(raw)} is not ${what}` };
    }
    const sdp = invite.remoteSdp;
    const over = sdp === undefined ? undefined : sdpOverLimit(sdp, this.sdpLimits);
    if (over) return { status: 488, reason: "SDP Too Large", detail: over.message, limit: over.limit };
    return consumer ? { psid: raw, whatsapp: consumer } : { psid: raw };
  }
}

/** The decoded user part; `malformed` when its percent-encoding does not decode (`%E0%A4%A`). */
function userPart(uri: string): { text?: string | undefined; malformed?: true } {
  const m = /^sips?:([^@;]+)@/i.exec(uri);
  if (!m) return {};
  try {
    return { text: decodeURIComponent(m[1]!) };
  } catch {
    return { malformed: true };
  }
}

/** The answer to a source over SIP_MAX_CALLS_PER_SECOND. */
export function rateRefusal(address: string, perSecond: number): IngressRefusal {
  // RFC 3261 §21.4.18: 480 may carry Retry-After. Not 503: a proxy in front would turn it
  // into a 500 toward the phone (§16.7) or try elsewhere.
  return {
    status: 480,
    reason: "Call Rate Limit Exceeded",
    detail: `source ${address} sent more INVITEs than SIP_MAX_CALLS_PER_SECOND (${perSecond})`,
    headers: { "Retry-After": "1" },
    limit: "SIP_MAX_CALLS_PER_SECOND",
  };
}

/**
 * A token bucket per source address: `perSecond` INVITEs at once, refilled at `perSecond` a
 * second. Memory is bounded by forgetting the sources idle longest.
 */
export class SourceRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(source: string): boolean {
    const now = this.now();
    const bucket = this.buckets.get(source);
    let tokens = this.perSecond;
    if (bucket) {
      tokens = Math.min(this.perSecond, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
      // Re-inserted so the map's order is last-use order.
      this.buckets.delete(source);
    }
    const allowed = tokens >= 1;
    this.buckets.set(source, { tokens: allowed ? tokens - 1 : tokens, at: now });
    while (this.buckets.size > MAX_TRACKED_SOURCES) {
      const oldest = this.buckets.keys().next();
      if (oldest.done === true) break;
      this.buckets.delete(oldest.value);
    }
    return allowed;
  }
}

/**
 * A WhatsApp consumer as an agent dials them: `+` and the number with its country code, or a
 * business-scoped user id (`CC.digits`). A bare number stays a Messenger PSID.
 */
export function whatsAppConsumer(dialled: string): { phone?: string; userId?: string } | undefined {
  if (/^\+\d{5,20}$/.test(dialled)) return { phone: dialled.slice(1) };
  if (/^[A-Za-z]{2}\.[A-Za-z0-9._-]+$/.test(dialled) && ID_PATTERNS.waUserId.test(dialled)) return { userId: dialled };
  return undefined;
}
