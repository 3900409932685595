import { checkCallerHeaders, escapeDisplayName, STACK_HEADERS } from "../caller-input.js";
import { SipArgumentError } from "../errors.js";
import type { SipParty } from "../signaling.js";
import { authorizationHeader, readChallenge, type DigestChallenge } from "../embedded/digest.js";
import { parseDigestParams } from "../digest-verifier.js";

/**
 * Text-level helpers for the drachtio backend. drachtio-srf hands messages over as UTF-8 strings
 * (its framing counts bytes), so no re-encoding is needed; what it does not give is one value per
 * header line, which digest challenges need.
 */

export const ALLOWED_METHODS = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";

/**
 * Every value of a header in a raw message, one per line (continuation lines joined). drachtio-srf
 * joins repeated headers with commas, which cannot be split back for challenges whose parameters
 * hold commas themselves.
 */
export function headerValues(raw: string, name: string): string[] {
  const head = raw.split("\r\n\r\n", 1)[0] ?? "";
  const lines = head.split(/\r\n(?![ \t])/).slice(1);
  const wanted = name.toLowerCase();
  const out: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    if (line.slice(0, colon).trim().toLowerCase() !== wanted) continue;
    out.push(line.slice(colon + 1).replace(/\r\n[ \t]+/g, " ").trim());
  }
  return out;
}

/**
 * Several values of one header as the single string drachtio-srf takes: it writes a value
 * verbatim, so the further lines carry their own name.
 */
export function joinHeaderLines(name: string, value: string | readonly string[]): string {
  return typeof value === "string" ? value : value.join(`\r\n${name}: `);
}

/** A name-addr (`"Name" <sip:user@host>;tag=x`) as the port reports parties. */
export function readParty(text: string | undefined): SipParty {
  const raw = (text ?? "").trim();
  let displayName: string | undefined;
  let uri: string;
  const angle = /^(?:("(?:[^"\\]|\\.)*")|([^<]*?))\s*<([^>]*)>/.exec(raw);
  if (angle) {
    const quoted = angle[1];
    const token = angle[2]?.trim();
    displayName = quoted !== undefined ? quoted.slice(1, -1).replace(/\\(.)/g, "$1") : token || undefined;
    uri = angle[3] ?? "";
  } else {
    uri = raw.split(";")[0]?.trim() ?? "";
  }
  const user = /^sips?:([^@;]+)@/i.exec(uri)?.[1];
  return { uri, user, displayName };
}

/** Headers drachtio-server or this backend sets; a caller may not replace them. */
const RESERVED_HEADERS = new Set(STACK_HEADERS);

export function checkExtraHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  return checkCallerHeaders(headers, RESERVED_HEADERS);
}

/**
 * A `sip:` or `sips:` URI with a host. TLS toward the PBX (`sips:`, `;transport=tls`) is
 * drachtio-server's: it needs a `sips:…;transport=tls` contact and a certificate in its own
 * configuration, and a call to such a target fails at drachtio-server without them.
 */
export function checkSipUri(uri: string): { user: string | undefined; hostport: string } {
  const m = typeof uri === "string" ? /^sips?:(?:([^@\s<>"]+)@)?([^;?\s<>"@]+)(?:[;?][^\s<>"]*)?$/i.exec(uri) : null;
  if (!m || !m[2]) throw new SipArgumentError(`invalid SIP URI ${JSON.stringify(uri)}`);
  return { user: m[1], hostport: m[2] };
}

/**
 * Our Contact for answering a `sip:` request that arrived over TLS: drachtio-server would write
 * its `sips:` TLS contact, which binds the caller to `sips:` for the whole dialog (RFC 3261
 * §12.1.1 asks that only for `sips:` requests) and which phones without `sips:` support refuse.
 * Undefined when drachtio-server's own Contact is right (UDP, TCP, a `sips:` request).
 */
export function tlsContactFor(req: { protocol: string; uri: string; receivedOn?: string }): string | undefined {
  if (req.protocol.toLowerCase() !== "tls" || !/^sip:/i.test(req.uri)) return undefined;
  const hostport = req.receivedOn ?? "";
  if (!/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(hostport)) return undefined;
  return `<sip:${hostport};transport=tls>`;
}

/** Display name as a quoted-string (RFC 3261 §25.1). */
export function quoteDisplayName(name: string): string {
  return `"${escapeDisplayName(name)}"`;
}

/**
 * Answers the digest challenges of one 401/407, the way the embedded backend does: of one
 * realm's challenges (one per algorithm, preferred first, RFC 8760) the topmost we support, MD5
 * or SHA-256. drachtio-srf's own digest client knows MD5 only and reads only the first challenge.
 */
export class DigestAnswers {
  private readonly answered = new Map<string, string>();

  constructor(private readonly credentials: { username: string; password: string } | undefined) {}

  /**
   * The Authorization (401) or Proxy-Authorization (407) header values for `method` on `uri`, or
   * undefined when there is nothing new to answer (no credentials, no usable challenge, or the same
   * nonce refused again: a wrong password).
   */
  answer(res: { status: number; raw: string }, method: string, uri: string): { header: string; value: string } | undefined {
    if (!this.credentials) return undefined;
    const values: string[] = [];
    for (const { key, challenge } of topChallenges(res)) {
      if (this.answered.get(key) === challenge.nonce && !challenge.stale) continue;
      this.answered.set(key, challenge.nonce);
      values.push(authorizationHeader(challenge, this.credentials, method, uri));
    }
    if (values.length === 0) return undefined;
    const header = res.status === 407 ? "Proxy-Authorization" : "Authorization";
    return { header, value: joinHeaderLines(header, values) };
  }
}

/**
 * A registration's digest state: the challenges met so far, answered again on every later REGISTER
 * of the binding with the nonce count going up (RFC 2617 §3.2.2), so a refresh needs no new 401.
 * A challenge is taken once: the same nonce refused again (not `stale=true`) means a wrong password.
 */
export class StandingDigest {
  private readonly challenges = new Map<string, { challenge: DigestChallenge; proxy: boolean; nonceCount: number; answered: boolean }>();

  constructor(private readonly credentials: { username: string; password: string } | undefined) {}

  /** Takes a 401/407's challenges; true when the request should go again answering them. */
  accept(res: { status: number; raw: string }): boolean {
    if (!this.credentials) return false;
    let usable = false;
    for (const { key, challenge } of topChallenges(res)) {
      const known = this.challenges.get(key);
      if (known?.answered && known.challenge.nonce === challenge.nonce && !challenge.stale) continue;
      this.challenges.set(key, { challenge, proxy: res.status === 407, nonceCount: 0, answered: false });
      usable = true;
    }
    return usable;
  }

  /** Authorization / Proxy-Authorization headers answering every challenge taken so far. */
  headers(method: string, uri: string): Record<string, string> {
    if (!this.credentials) return {};
    const www: string[] = [];
    const proxy: string[] = [];
    for (const entry of this.challenges.values()) {
      entry.nonceCount++;
      entry.answered = true;
      (entry.proxy ? proxy : www).push(authorizationHeader(entry.challenge, this.credentials, method, uri, entry.nonceCount));
    }
    const out: Record<string, string> = {};
    if (www.length) out.Authorization = joinHeaderLines("Authorization", www);
    if (proxy.length) out["Proxy-Authorization"] = joinHeaderLines("Proxy-Authorization", proxy);
    return out;
  }
}

/**
 * A 401's or 407's challenges we can answer, one per realm: of one realm's (one per algorithm,
 * preferred first, RFC 8760 §2.3) the topmost we support. `key` tells a proxy's realm from a
 * registrar's or UAS's of the same name.
 */
function topChallenges(res: { status: number; raw: string }): { key: string; challenge: DigestChallenge }[] {
  const proxy = res.status === 407;
  const out = new Map<string, DigestChallenge>();
  for (const text of headerValues(res.raw, proxy ? "proxy-authenticate" : "www-authenticate")) {
    for (const one of splitChallenges(text)) {
      const challenge = parseChallenge(one);
      const key = challenge && `${proxy ? "p" : "w"}:${challenge.realm}`;
      if (key && !out.has(key)) out.set(key, challenge);
    }
  }
  return [...out].map(([key, challenge]) => ({ key, challenge }));
}

/** A header line may carry several challenges (`Digest a=1, b=2, Digest a=3`). */
function splitChallenges(text: string): string[] {
  return text.split(/,\s*(?=digest\s)/i);
}

function parseChallenge(text: string): DigestChallenge | undefined {
  const params = parseDigestParams(text);
  return params ? readChallenge({ scheme: "Digest", ...params }) : undefined;
}
