import sip from "sip";
import { checkCallerHeaders, escapeDisplayName, STACK_HEADERS } from "../caller-input.js";
import { randomToken } from "../random-token.js";
import { SipArgumentError } from "../errors.js";
import { SUPPORTED_OPTION_TAGS } from "../option-tags.js";

/**
 * Helpers over npm `sip`'s message objects. The library reads and writes messages as latin1
 * strings (one char per byte, Content-Length = string length), so every text we put on the wire
 * is converted from UTF-8 here, and every text we hand up is converted back.
 */

export type SipMessage = sip.Message;
export type SipUri = sip.Uri;
export type Via = sip.Via;

/** Headers of a received message that passed `isValidMessage`. */
export interface ReceivedHeaders {
  via: sip.Via[];
  to: sip.NameAddr;
  from: sip.NameAddr;
  "call-id": string;
  cseq: sip.CSeq;
  contact?: sip.NameAddr[] | "*" | string;
  "record-route"?: sip.NameAddr<sip.Uri | undefined>[] | string;
  "content-type"?: string;
  "www-authenticate"?: Record<string, string>[];
  "proxy-authenticate"?: Record<string, string>[];
  [name: string]: unknown;
}

export interface SipRequest extends SipMessage {
  method: string;
  uri: string;
  headers: ReceivedHeaders;
}

export interface SipResponse extends SipMessage {
  status: number;
  reason: string;
  headers: ReceivedHeaders;
}

/** Where a message came from. */
export interface RemoteInfo {
  protocol: "UDP" | "TCP" | "TLS";
  address: string;
  port: number;
}

export const ALLOWED_METHODS = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY";
/*
 * npm sip writes a header key as given with each word capitalized, so headers whose usual
 * spelling has more capitals (Min-SE, RSeq, RAck) are set under that spelling; received headers
 * are always keyed in lower case.
 */

/** Our Supported header: the extensions of SUPPORTED_OPTION_TAGS. */
export const SUPPORTED = SUPPORTED_OPTION_TAGS.join(", ");
export const MAX_FORWARDS = 70;

export function toWire(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

export function fromWire(text: string | undefined): string {
  return text === undefined ? "" : Buffer.from(text, "latin1").toString("utf8");
}

/** RFC 3261 §8.1.1.7: branches start with the magic cookie. */
export function newBranch(): string {
  return `z9hG4bK${randomToken(10)}`;
}

/** Structural check of what the parser returned; messages failing it are dropped. */
export function isValidMessage(m: SipMessage | undefined): m is SipRequest | SipResponse {
  if (!m || typeof m !== "object" || !m.headers) return false;
  const h = m.headers;
  const isRequest = typeof m.method === "string" && typeof m.uri === "string";
  const isResponse = typeof m.status === "number" && m.status >= 100 && m.status <= 699;
  if (isRequest === isResponse) return false;
  if (!Array.isArray(h.via) || h.via.length === 0 || !h.via.every((v) => v && typeof v === "object" && v.params && typeof v.host === "string")) return false;
  if (typeof h["call-id"] !== "string" || h["call-id"] === "") return false;
  if (!isNameAddr(h.to) || !isNameAddr(h.from)) return false;
  const cseq = h.cseq;
  if (!cseq || typeof cseq !== "object" || !Number.isInteger(cseq.seq) || typeof cseq.method !== "string") return false;
  if (isResponse && typeof m.reason !== "string") m.reason = "";
  return true;
}

function isNameAddr(v: unknown): v is sip.NameAddr {
  return !!v && typeof v === "object" && typeof (v as sip.NameAddr).uri === "string" && typeof (v as sip.NameAddr).params === "object";
}

export function isRequest(m: SipRequest | SipResponse): m is SipRequest {
  return typeof m.method === "string";
}

export function tagOf(addr: sip.NameAddr | string | undefined): string | undefined {
  if (!addr || typeof addr === "string") return undefined;
  const tag = addr.params.tag;
  return typeof tag === "string" && tag !== "" ? tag : undefined;
}

/** Compact forms npm `sip` does not expand itself (RFC 3515, 3892, 4028, 6665). */
const COMPACT_FORMS: Readonly<Record<string, string>> = {
  "session-expires": "x",
  "refer-to": "r",
  "referred-by": "b",
  event: "o",
};

/** A header's text (for headers the parser keeps as strings), by lower-case name or its compact form. */
export function headerText(m: SipMessage, name: string): string | undefined {
  const lower = name.toLowerCase();
  const compact = COMPACT_FORMS[lower];
  const v = m.headers[lower] ?? (compact === undefined ? undefined : m.headers[compact]);
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  // npm sip parses Refer-To into a name-addr; write it back as it came.
  if (lower === "refer-to" && isNameAddr(v)) return stringifyNameAddr(v);
  // npm sip parses credentials and challenges into objects; the first one, as text again.
  if (Array.isArray(v) && AUTH_HEADERS.has(name.toLowerCase())) {
    const first: unknown = v[0];
    return first && typeof first === "object" ? sip.stringifyAuthHeader(first as Record<string, string | undefined>) : undefined;
  }
  return undefined;
}

const AUTH_HEADERS = new Set(["authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate"]);

/** The first Contact URI of a message, or undefined. */
export function contactUri(m: SipMessage): string | undefined {
  const c = m.headers.contact;
  if (!Array.isArray(c) || c.length === 0) return undefined;
  const uri = c[0]?.uri;
  return typeof uri === "string" && sip.parseUri(uri) ? uri : undefined;
}

/** Record-Route entries as `<uri;params>` strings in message order; unparseable ones dropped. */
export function recordRoutes(m: SipMessage): string[] {
  const rr = m.headers["record-route"];
  if (!Array.isArray(rr)) return [];
  const out: string[] = [];
  for (const entry of rr) {
    if (!entry || !entry.uri) continue;
    out.push(`<${sip.stringifyUri(entry.uri)}>${stringifyParams(entry.params)}`);
  }
  return out;
}

export function stringifyParams(params: sip.Params | undefined): string {
  if (!params) return "";
  let s = "";
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    s += v === null ? `;${k}` : `;${k}=${v}`;
  }
  return s;
}

/** name-addr back to wire text (latin1 kept as is). */
export function stringifyNameAddr(a: sip.NameAddr): string {
  return `${a.name ? `${a.name} ` : ""}<${a.uri}>${stringifyParams(a.params)}`;
}

/** Display name as a quoted-string on the wire (RFC 3261 §25.1), UTF-8 encoded. */
export function quoteDisplayName(name: string): string {
  return `"${toWire(escapeDisplayName(name))}"`;
}

/** A received display name back to Unicode. */
export function readDisplayName(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let s = raw.trim();
  if (s.startsWith('"') && s.endsWith('"') && s.length >= 2) s = s.slice(1, -1).replace(/\\(.)/g, "$1");
  return fromWire(s);
}

/** Headers this stack sets on a call's requests (with RFC 4028's and RFC 3262's); a caller may not replace them. */
const RESERVED_HEADERS = new Set([...STACK_HEADERS, "supported", "k", "session-expires", "x", "min-se", "rseq", "rack"]);

/** Validates caller-supplied extra headers; returns them with wire-encoded values. */
export function checkExtraHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  return checkCallerHeaders(headers, RESERVED_HEADERS, toWire);
}

/** Parses a SIP URI or throws SipArgumentError. */
export function checkSipUri(uri: string, options: { tls?: boolean } = {}): SipUri {
  const parsed = typeof uri === "string" && !/[\s<>"]/.test(uri) ? sip.parseUri(uri) : undefined;
  if (!parsed || (parsed.schema !== "sip" && parsed.schema !== "sips")) throw new SipArgumentError(`invalid SIP URI ${JSON.stringify(uri)}`);
  if (parsed.schema === "sips" && !options.tls) throw new SipArgumentError(`sips: URIs need TLS, which is not enabled: ${uri}`);
  return parsed;
}

/**
 * The transport a URI asks for: its transport parameter, TLS for `sips:` (RFC 3261 §26.2.2; a
 * `sips:` URI with `;transport=tcp` still means TLS over it), undefined when it names none.
 */
export function transportOfUri(uri: SipUri): "UDP" | "TCP" | "TLS" | undefined {
  if (uri.schema === "sips") return "TLS";
  const t = uri.params.transport;
  if (t === undefined || t === null) return undefined;
  const upper = t.toUpperCase();
  return upper === "UDP" || upper === "TCP" || upper === "TLS" ? upper : undefined;
}

/** The URI inside the first entry of a Route header text (`<sip:a;lr>, <sip:b>`). */
export function firstRouteUri(route: string): string | undefined {
  const m = /^\s*(?:"[^"]*"\s*)?<([^>]+)>/.exec(route);
  return m?.[1];
}
