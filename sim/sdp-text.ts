/**
 * Line-level SDP reading and writing. The simulator keeps its own minimal SDP model instead of
 * sharing one with the gateway, so a misreading on one side is not mirrored on the other.
 */

export type SdpDirection = "sendrecv" | "sendonly" | "recvonly" | "inactive";

const DIRECTIONS: readonly SdpDirection[] = ["sendrecv", "sendonly", "recvonly", "inactive"];

export interface SdpMediaSection {
  kind: string;
  port: number;
  proto: string;
  formats: string[];
  /** Every line after the `m=` line, without line endings. */
  lines: string[];
}

export interface SdpDocument {
  /** Session-level lines (v=, o=, s=, t=, session a= lines), without line endings. */
  session: string[];
  media: SdpMediaSection[];
}

export interface RtpMap {
  payloadType: number;
  /** Encoding name as written, e.g. `opus`. */
  encoding: string;
  clockRate: number;
  channels: number | undefined;
}

export function parseSdp(text: string): SdpDocument {
  const doc: SdpDocument = { session: [], media: [] };
  let current: SdpMediaSection | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (line.length === 0) continue;
    if (line.startsWith("m=")) {
      const [kind = "", port = "0", proto = "", ...formats] = line.slice(2).split(" ");
      current = { kind, port: Number.parseInt(port, 10), proto, formats, lines: [] };
      doc.media.push(current);
    } else if (current) {
      current.lines.push(line);
    } else {
      doc.session.push(line);
    }
  }
  return doc;
}

export function serializeSdp(doc: SdpDocument): string {
  const lines = [...doc.session];
  for (const m of doc.media) {
    lines.push(`m=${m.kind} ${m.port} ${m.proto} ${m.formats.join(" ")}`, ...m.lines);
  }
  return `${lines.join("\r\n")}\r\n`;
}

/** Values of `a=<name>:<value>` lines (an `a=<name>` flag yields an empty string). */
export function attributes(lines: readonly string[], name: string): string[] {
  const out: string[] = [];
  const prefix = `a=${name}`;
  for (const line of lines) {
    if (line === prefix) out.push("");
    else if (line.startsWith(`${prefix}:`)) out.push(line.slice(prefix.length + 1));
  }
  return out;
}

export function attribute(lines: readonly string[], name: string): string | undefined {
  return attributes(lines, name)[0];
}

export function hasFlag(lines: readonly string[], name: string): boolean {
  return lines.includes(`a=${name}`);
}

export function withoutAttributes(lines: readonly string[], ...names: string[]): string[] {
  return lines.filter((line) => !names.some((name) => line === `a=${name}` || line.startsWith(`a=${name}:`)));
}

export function mediaMid(section: SdpMediaSection): string | undefined {
  return attribute(section.lines, "mid");
}

export function mediaDirection(section: SdpMediaSection): SdpDirection {
  return DIRECTIONS.find((d) => hasFlag(section.lines, d)) ?? "sendrecv";
}

export function setDirection(lines: readonly string[], direction: SdpDirection): string[] {
  const rest = lines.filter((line) => !DIRECTIONS.some((d) => line === `a=${d}`));
  const midIndex = rest.findIndex((line) => line.startsWith("a=mid:"));
  rest.splice(midIndex >= 0 ? midIndex : rest.length, 0, `a=${direction}`);
  return rest;
}

/** What the other side of an offer direction answers when it accepts everything it can. */
export function mirrorDirection(direction: SdpDirection): SdpDirection {
  switch (direction) {
    case "sendonly":
      return "recvonly";
    case "recvonly":
      return "sendonly";
    default:
      return direction;
  }
}

export function canSend(direction: SdpDirection): boolean {
  return direction === "sendrecv" || direction === "sendonly";
}

export function canReceive(direction: SdpDirection): boolean {
  return direction === "sendrecv" || direction === "recvonly";
}

/** The BUNDLE group's mids in order, or an empty list when there is no group. */
export function bundleMids(doc: SdpDocument): string[] {
  const group = attributes(doc.session, "group").find((g) => g.startsWith("BUNDLE"));
  return group ? group.split(" ").slice(1).filter((m) => m.length > 0) : [];
}

export function rtpMaps(section: SdpMediaSection): RtpMap[] {
  const out: RtpMap[] = [];
  for (const value of attributes(section.lines, "rtpmap")) {
    const match = /^(\d+) ([^/]+)\/(\d+)(?:\/(\d+))?$/.exec(value.trim());
    if (!match) continue;
    out.push({
      payloadType: Number(match[1]),
      encoding: match[2] ?? "",
      clockRate: Number(match[3]),
      channels: match[4] === undefined ? undefined : Number(match[4]),
    });
  }
  return out;
}

/** Lines that describe one payload type (`a=rtpmap`, `a=fmtp`, `a=rtcp-fb`). */
export function payloadLines(section: SdpMediaSection, payloadType: number): string[] {
  return section.lines.filter((line) =>
    ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"].some((p) => line.startsWith(`${p}${payloadType} `)),
  );
}

export interface Fingerprint {
  algorithm: string;
  value: string;
}

export function fingerprints(lines: readonly string[]): Fingerprint[] {
  return attributes(lines, "fingerprint").map((v) => {
    const [algorithm = "", value = ""] = v.trim().split(/\s+/);
    return { algorithm: algorithm.toLowerCase(), value };
  });
}

/** An attribute from the media section, falling back to the session level (where e.g. ice-ufrag may live). */
export function effectiveAttribute(doc: SdpDocument, section: SdpMediaSection, name: string): string | undefined {
  return attribute(section.lines, name) ?? attribute(doc.session, name);
}

export interface HostCandidate {
  address: string;
  port: number;
}

/** The first UDP candidate of a section, used to fill in `m=` port and `c=` like a non-trickle endpoint. */
export function firstUdpCandidate(section: SdpMediaSection): HostCandidate | undefined {
  for (const value of attributes(section.lines, "candidate")) {
    const parts = value.split(" ");
    if ((parts[2] ?? "").toLowerCase() !== "udp") continue;
    const port = Number(parts[5]);
    if (parts[4] && Number.isInteger(port)) return { address: parts[4], port };
  }
  return undefined;
}
