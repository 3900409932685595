import { randomInt } from "node:crypto";
import {
  attributes,
  bundleMids,
  effectiveAttribute,
  fingerprints,
  firstUdpCandidate,
  hasFlag,
  mediaMid,
  parseSdp,
  rtpMaps,
  serializeSdp,
  withoutAttributes,
  type SdpDocument,
  type SdpMediaSection,
} from "./sdp-text.js";

/** WhatsApp's audio mid: non-numeric, to be echoed exactly (meta-calling-api.md §5.3). */
export const WA_AUDIO_MID = "audio";
export const WA_OPUS_PAYLOAD_TYPE = 111;
/** WhatsApp's user offer fmtp (§5.4, §5.7). */
export const WA_OPUS_FMTP = "minptime=10;useinbandfec=1";
/** WhatsApp takes DTMF only as telephone-event/8000, on 126 in its offers (§5.4). */
export const WA_TELEPHONE_EVENT_PAYLOAD_TYPE = 126;
/** The only SDES suite the simulator offers and accepts. */
export const WA_SDES_SUITE = "AES_CM_128_HMAC_SHA1_80";
/** Bounds on SDP text from the business, as Graph bounds request bodies. */
export const MAX_SDP_LENGTH = 16_384;

export type SrtpKeyExchange = "DTLS" | "SDES";

/**
 * Rewrites werift's SDP into the shape of WhatsApp's edge SDP: session `a=ice-lite`, the BUNDLE
 * group and mid as werift negotiated them, the host candidate's address in `m=`/`c=`, candidates with
 * Meta's `network-cost 50`, WhatsApp's Opus fmtp, `a=ice-options:trickle` on answers (§5.1; there is
 * no trickle channel all the same), and no rtcp-rsize or extmaps (none appear in the WhatsApp samples).
 */
export function shapeWhatsAppSdp(weriftSdp: string, role: "offer" | "answer"): string {
  const doc = parseSdp(weriftSdp);
  const session = withoutAttributes(doc.session, "ice-lite", "extmap-allow-mixed");
  const insertAt = session.findIndex((line) => line.startsWith("a="));
  session.splice(insertAt >= 0 ? insertAt : session.length, 0, "a=ice-lite");
  const media = doc.media.map((section): SdpMediaSection => {
    const host = firstUdpCandidate(section);
    let lines = withoutAttributes(section.lines, "ice-lite", "ice-options", "rtcp-rsize", "extmap");
    if (host && section.port !== 0) lines = lines.map((line) => (line.startsWith("c=") ? `c=IN IP4 ${host.address}` : line));
    lines = lines.map((line) => {
      if (line.startsWith(`a=fmtp:${WA_OPUS_PAYLOAD_TYPE} `)) return `a=fmtp:${WA_OPUS_PAYLOAD_TYPE} ${WA_OPUS_FMTP}`;
      if (line.startsWith("a=candidate:") && !line.includes(" network-cost ")) return line.replace(/( generation \d+)/, "$1 network-cost 50");
      return line;
    });
    if (role === "answer") {
      const pwd = lines.findIndex((line) => line.startsWith("a=ice-pwd:"));
      lines.splice(pwd >= 0 ? pwd + 1 : lines.length, 0, "a=ice-options:trickle");
    }
    return { ...section, port: host && section.port !== 0 ? host.port : section.port, lines };
  });
  return serializeSdp({ session, media });
}

/** One `a=crypto` line: tag, suite and the inline key||salt. */
export interface SdesCrypto {
  tag: number;
  suite: string;
  /** 16-byte master key followed by the 14-byte salt. */
  keySalt: Buffer;
}

export function cryptoLine(crypto: SdesCrypto): string {
  return `a=crypto:${crypto.tag} ${crypto.suite} inline:${crypto.keySalt.toString("base64")}`;
}

/** Every well-formed `a=crypto` line of a section (unknown suites included, so callers can say why none fits). */
export function parseCryptoLines(section: SdpMediaSection): SdesCrypto[] {
  const out: SdesCrypto[] = [];
  for (const value of attributes(section.lines, "crypto")) {
    const match = /^(\d{1,9}) ([A-Z0-9_]{1,64}) inline:([A-Za-z0-9+/=]{1,128})(?:\|\S*)*(?: .*)?$/.exec(value.trim());
    if (!match) continue;
    out.push({ tag: Number(match[1]), suite: match[2] ?? "", keySalt: Buffer.from(match[3] ?? "", "base64") });
  }
  return out;
}

/** The SDES offer or answer of WhatsApp's edge: RTP/SAVP, no ICE, no DTLS, keys in `a=crypto`. */
export function sdesSdp(args: { port: number; crypto: SdesCrypto; ssrc: number; mid: string; sessionId?: number }): string {
  const lines = [
    "v=0",
    `o=- ${args.sessionId ?? randomInt(1, 2 ** 31)} 2 IN IP4 127.0.0.1`,
    "s=-",
    "t=0 0",
    `m=audio ${args.port} RTP/SAVP ${WA_OPUS_PAYLOAD_TYPE} ${WA_TELEPHONE_EVENT_PAYLOAD_TYPE}`,
    "c=IN IP4 127.0.0.1",
    `a=mid:${args.mid}`,
    "a=sendrecv",
    "a=rtcp-mux",
    cryptoLine(args.crypto),
    `a=rtpmap:${WA_OPUS_PAYLOAD_TYPE} opus/48000/2`,
    `a=fmtp:${WA_OPUS_PAYLOAD_TYPE} ${WA_OPUS_FMTP}`,
    `a=rtpmap:${WA_TELEPHONE_EVENT_PAYLOAD_TYPE} telephone-event/8000`,
    `a=fmtp:${WA_TELEPHONE_EVENT_PAYLOAD_TYPE} 0-15`,
    `a=ssrc:${args.ssrc} cname:whatsapp`,
  ];
  return `${lines.join("\r\n")}\r\n`;
}

/** The first audio section that is not rejected, or undefined. */
export function liveAudio(doc: SdpDocument): SdpMediaSection | undefined {
  return doc.media.find((m) => m.kind === "audio" && m.port !== 0);
}

function hasOpus(section: SdpMediaSection): boolean {
  return rtpMaps(section).some((r) => r.encoding.toLowerCase() === "opus" && r.clockRate === 48000);
}

function commonChecks(sdp: string): { doc: SdpDocument; audio: SdpMediaSection } | string {
  if (sdp.length > MAX_SDP_LENGTH) return `SDP longer than ${MAX_SDP_LENGTH} characters`;
  if (!sdp.startsWith("v=0")) return "SDP must start with v=0";
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(sdp)) return "SDP contains control characters";
  const doc = parseSdp(sdp);
  const badPort = doc.media.find((m) => !Number.isInteger(m.port) || m.port < 0 || m.port > 65535);
  if (badPort) return `m=${badPort.kind.slice(0, 20)} port out of range`;
  const audio = liveAudio(doc);
  if (!audio) return "an m=audio section with a non-zero port is required";
  if (!hasOpus(audio)) return "the audio section must list opus/48000";
  return { doc, audio };
}

function dtlsChecks(doc: SdpDocument, audio: SdpMediaSection, requireCandidates: boolean): string | undefined {
  if (!audio.proto.includes("UDP/TLS/RTP/SAVPF")) return `audio proto must be UDP/TLS/RTP/SAVPF with DTLS key exchange, got ${audio.proto}`;
  const prints = fingerprints([...doc.session, ...audio.lines]);
  if (prints.length === 0) return "no a=fingerprint line";
  const other = prints.find((f) => f.algorithm !== "sha-256");
  if (other) return `only sha-256 DTLS fingerprints are supported, found ${other.algorithm}`;
  const malformed = prints.find((f) => !/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/.test(f.value));
  if (malformed) return `malformed a=fingerprint value ${malformed.value.slice(0, 40)}`;
  if (!effectiveAttribute(doc, audio, "ice-ufrag") || !effectiveAttribute(doc, audio, "ice-pwd")) return "missing a=ice-ufrag/a=ice-pwd";
  const badCandidate = attributes(audio.lines, "candidate").find((c) => !wellFormedCandidate(c));
  if (badCandidate !== undefined) return `malformed a=candidate:${badCandidate.slice(0, 80)}`;
  if (!hasFlag(audio.lines, "rtcp-mux")) return "a=rtcp-mux is required";
  if (requireCandidates && attributes(audio.lines, "candidate").length === 0) {
    return "no a=candidate lines (signalling is non-trickle: every candidate must be in the SDP)";
  }
  return undefined;
}

/** RFC 8839 candidate-attribute: foundation, component, transport, priority, address, port, typ and type. */
function wellFormedCandidate(value: string): boolean {
  const match = /^\S{1,32} (\d{1,3}) (udp|tcp) (\d{1,10}) (\S{1,255}) (\d{1,5}) typ (host|srflx|prflx|relay)(?: .*)?$/i.exec(value.trim());
  if (!match) return false;
  const port = Number(match[5]);
  return port >= 0 && port <= 65535 && Number(match[3]) <= 0xffffffff;
}

function sdesChecks(audio: SdpMediaSection): string | undefined {
  if (audio.proto !== "RTP/SAVP") return `audio proto must be RTP/SAVP with SDES key exchange, got ${audio.proto}`;
  const usable = parseCryptoLines(audio).filter((c) => c.suite === WA_SDES_SUITE && c.keySalt.length === 30);
  if (usable.length === 0) return `an a=crypto line with ${WA_SDES_SUITE} and a 30-byte inline key is required`;
  return undefined;
}

/**
 * The business's answer to WhatsApp's offer (pre_accept/accept): a problem description, or undefined when
 * Meta would take it. DTLS: sha-256 only, the offer's mid echoed, `a=setup:active` (passive is reported to
 * fail, §5.2), no ice-lite (the business must be the full, controlling agent, §8). SDES: RTP/SAVP and a key.
 */
export function answerProblem(sdp: string, mode: SrtpKeyExchange, rules: { requireCandidates: boolean }): string | undefined {
  const base = commonChecks(sdp);
  if (typeof base === "string") return base;
  const { doc, audio } = base;
  const mid = mediaMid(audio);
  if (mid !== WA_AUDIO_MID) return `the answer must echo a=mid:${WA_AUDIO_MID}, got ${mid === undefined ? "no mid" : `a=mid:${mid.slice(0, 40)}`}`;
  if (mode === "SDES") return sdesChecks(audio);
  if (!bundleMids(doc).includes(WA_AUDIO_MID)) return `a=group:BUNDLE must include ${WA_AUDIO_MID}`;
  if (hasFlag(doc.session, "ice-lite") || hasFlag(audio.lines, "ice-lite")) return "the business must be a full ICE agent: a=ice-lite is not allowed";
  const setup = effectiveAttribute(doc, audio, "setup");
  if (setup !== "active") return `the answer must use a=setup:active (got ${setup === undefined ? "none" : `a=setup:${setup.slice(0, 20)}`})`;
  return dtlsChecks(doc, audio, rules.requireCandidates);
}

/** The business's offer on connect: same checks as an answer but any mid, and a setup Meta can answer active to. */
export function offerProblem(sdp: string, mode: SrtpKeyExchange, rules: { requireCandidates: boolean }): string | undefined {
  const base = commonChecks(sdp);
  if (typeof base === "string") return base;
  const { doc, audio } = base;
  const mid = mediaMid(audio);
  if (mid === undefined) return "the audio section needs an a=mid";
  if (mode === "SDES") return sdesChecks(audio);
  if (!bundleMids(doc).includes(mid)) return `mid ${mid.slice(0, 40)} is not in an a=group:BUNDLE`;
  const setup = effectiveAttribute(doc, audio, "setup");
  if (setup !== "actpass" && setup !== "passive") {
    return `an offer must use a=setup:actpass (got ${setup === undefined ? "none" : `a=setup:${setup.slice(0, 20)}`}); Meta answers active`;
  }
  return dtlsChecks(doc, audio, rules.requireCandidates);
}

/** Payload types the peer's SDP gives Opus and telephone-event (it picks the numbers). */
export function audioPayloadTypes(sdp: string): { opus: number[]; telephoneEvent: number[] } {
  const audio = liveAudio(parseSdp(sdp));
  const maps = audio ? rtpMaps(audio) : [];
  return {
    opus: maps.filter((m) => m.encoding.toLowerCase() === "opus").map((m) => m.payloadType),
    telephoneEvent: maps.filter((m) => m.encoding.toLowerCase() === "telephone-event" && m.clockRate === 8000).map((m) => m.payloadType),
  };
}

/** The address an SDES peer announced (`c=` and `m=` port), for the record; media goes to the first packet's source. */
export function announcedAddress(sdp: string): { address: string; port: number } | undefined {
  const doc = parseSdp(sdp);
  const audio = liveAudio(doc);
  if (!audio) return undefined;
  const line = audio.lines.find((l) => l.startsWith("c=")) ?? doc.session.find((l) => l.startsWith("c="));
  const address = line?.split(" ")[2];
  return address ? { address, port: audio.port } : undefined;
}
