/**
 * Just enough SIP text handling for the peers the fuzz suite plays (a PBX, an agent phone, a raw
 * sender). Deliberately independent of sip/: a parsing mistake shared with the gateway would hide
 * exactly the bugs the suite looks for.
 */

export interface SipText {
  /** `INVITE sip:x@y SIP/2.0` or `SIP/2.0 200 OK`. */
  startLine: string;
  headers: Array<[string, string]>;
  body: string;
}

export interface ParsedSip {
  request: boolean;
  method: string | undefined;
  uri: string | undefined;
  status: number | undefined;
  reason: string | undefined;
  headers: Map<string, string[]>;
  body: string;
  raw: string;
}

const COMPACT: Record<string, string> = {
  v: "via",
  f: "from",
  t: "to",
  i: "call-id",
  m: "contact",
  l: "content-length",
  c: "content-type",
  k: "supported",
  s: "subject",
};

/** Serializes with CRLF line ends and a Content-Length that matches the body (unless one is given). */
export function sipText(m: SipText): string {
  const headers = m.headers.some(([k]) => k.toLowerCase() === "content-length")
    ? m.headers
    : [...m.headers, ["Content-Length", String(Buffer.byteLength(m.body, "latin1"))] as [string, string]];
  return `${m.startLine}\r\n${headers.map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n${m.body}`;
}

/** Parses one complete message (UDP datagram or framed TCP message); undefined when it is not SIP. */
export function parseSip(raw: string): ParsedSip | undefined {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const lines = raw.slice(0, end).split("\r\n");
  const start = lines.shift() ?? "";
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    let name = line.slice(0, colon).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    const list = headers.get(name) ?? [];
    list.push(line.slice(colon + 1).trim());
    headers.set(name, list);
  }
  const body = raw.slice(end + 4);
  const response = /^SIP\/2\.0 (\d{3})(?: (.*))?$/.exec(start);
  if (response) {
    return { request: false, method: undefined, uri: undefined, status: Number(response[1]), reason: response[2], headers, body, raw };
  }
  const request = /^([A-Za-z]+) (\S+) SIP\/2\.0$/.exec(start);
  if (!request) return undefined;
  return { request: true, method: request[1], uri: request[2], status: undefined, reason: undefined, headers, body, raw };
}

export function header(m: ParsedSip, name: string): string | undefined {
  return m.headers.get(name.toLowerCase())?.[0];
}

export function headers(m: ParsedSip, name: string): string[] {
  return m.headers.get(name.toLowerCase()) ?? [];
}

/** The `tag` parameter of a From or To value. */
export function tagOf(value: string | undefined): string | undefined {
  return value ? /;\s*tag=([^;\s>]+)/i.exec(value)?.[1] : undefined;
}

/** The URI inside `<...>` of a Contact/From/To value, or the value itself. */
export function uriOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const angle = /<([^>]*)>/.exec(value);
  return angle ? angle[1] : value.split(";")[0]?.trim();
}

/** `(method, seq)` of a CSeq value. */
export function cseqOf(m: ParsedSip): { seq: number; method: string } | undefined {
  const v = header(m, "cseq");
  const parts = v ? /^(\d+)\s+([A-Za-z]+)/.exec(v) : null;
  return parts ? { seq: Number(parts[1]), method: parts[2]!.toUpperCase() } : undefined;
}

/** Host and port a SIP URI points at (default 5060). */
export function hostPortOf(uri: string): { host: string; port: number } | undefined {
  const m = /^sips?:(?:[^@]*@)?([^:;>]+)(?::(\d+))?/i.exec(uri);
  return m ? { host: m[1]!, port: m[2] ? Number(m[2]) : 5060 } : undefined;
}

/** A response to a request, copying what RFC 3261 §8.2.6.2 says to copy. */
export function responseTo(req: ParsedSip, status: number, reason: string, extra: Array<[string, string]> = [], body = "", toTag?: string): string {
  const to = header(req, "to") ?? "";
  const heads: Array<[string, string]> = [
    ...headers(req, "via").map((v) => ["Via", v] as [string, string]),
    ["From", header(req, "from") ?? ""],
    ["To", toTag && !tagOf(to) ? `${to};tag=${toTag}` : to],
    ["Call-ID", header(req, "call-id") ?? ""],
    ["CSeq", header(req, "cseq") ?? ""],
    ...extra,
  ];
  return sipText({ startLine: `SIP/2.0 ${status} ${reason}`, headers: heads, body });
}

let branchSeq = 0;
export function newBranch(): string {
  return `z9hG4bK-fz${process.pid.toString(36)}${(++branchSeq).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

export function newTag(): string {
  return Math.random().toString(36).slice(2, 12);
}

/** Ports of the `m=` lines of an SDP body, by media kind (first of each kind). */
export function sdpPorts(sdp: string): { audio?: number; video?: number } {
  const out: { audio?: number; video?: number } = {};
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^m=(audio|video) (\d+) /.exec(line);
    if (m && out[m[1] as "audio" | "video"] === undefined) out[m[1] as "audio" | "video"] = Number(m[2]);
  }
  return out;
}
