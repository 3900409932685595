import { SdpNegotiationError, SdpParseError } from "./errors.js";
import { parseCryptoAttribute, type SdesCrypto } from "./srtp/sdes.js";

/**
 * SIP-side SDP: the RTP/AVP (or SDES-keyed RTP/SAVP) offers and answers we exchange with the PBX
 * (G.711 audio, RFC 4733 telephone-events, optional H.264 video), and reading what the PBX sends back.
 * Pure functions over text; no sockets, no SIP.
 */

export type MediaDirection = "sendrecv" | "sendonly" | "recvonly" | "inactive";
export type G711Codec = "PCMU" | "PCMA";

const STATIC_PAYLOAD_TYPES: Readonly<Record<number, { encodingName: string; clockRate: number }>> = {
  0: { encodingName: "PCMU", clockRate: 8000 },
  8: { encodingName: "PCMA", clockRate: 8000 },
};
const G711_STATIC_PT: Readonly<Record<G711Codec, number>> = { PCMU: 0, PCMA: 8 };
const DIRECTIONS: ReadonlySet<string> = new Set(["sendrecv", "sendonly", "recvonly", "inactive"]);

// ---------------------------------------------------------------------------------------------
// Parsing

export interface SdpRtpMap {
  payloadType: number;
  encodingName: string;
  clockRate: number;
  channels?: number;
}

export interface SdpAttribute {
  name: string;
  value: string | undefined;
}

export interface SdpMediaSection {
  kind: string;
  port: number;
  protocol: string;
  /** The m= line's format list as written. */
  formats: string[];
  /** Format list as RTP payload types (empty for non-RTP media), in the order the sender prefers. */
  payloadTypes: number[];
  rtpmaps: SdpRtpMap[];
  fmtps: Map<number, string>;
  /** c= of the section, else the session's. */
  connectionAddress: string | undefined;
  /** a=sendrecv/… of the section, else the session's, else sendrecv. */
  direction: MediaDirection;
  ptime: number | undefined;
  /** RFC 3605 a=rtcp, when present. */
  rtcp: { port: number; address: string | undefined } | undefined;
  attributes: SdpAttribute[];
}

export interface SdpSessionDescription {
  origin: { username: string; sessionId: string; sessionVersion: string; address: string } | undefined;
  connectionAddress: string | undefined;
  media: SdpMediaSection[];
}

/** Reads SDP text; throws SdpParseError with the line number on anything malformed. */
export function parseSdp(text: string): SdpSessionDescription {
  if (typeof text !== "string" || text.trim() === "") throw new SdpParseError("empty SDP");
  const lines = text.split(/\r?\n/);
  const session: SdpSessionDescription = { origin: undefined, connectionAddress: undefined, media: [] };
  let sessionDirection: MediaDirection | undefined;
  let current: (SdpMediaSection & { explicitDirection?: MediaDirection; ownConnection?: string }) | undefined;
  const sections: (SdpMediaSection & { explicitDirection?: MediaDirection; ownConnection?: string })[] = [];
  let sawVersion = false;

  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trimEnd();
    if (line === "") return;
    const m = /^([a-z])=(.*)$/.exec(line);
    if (!m) throw new SdpParseError(`not an SDP line: ${JSON.stringify(line.slice(0, 60))}`, lineNo);
    const type = m[1] as string;
    const value = m[2] as string;
    if (!sawVersion) {
      if (type !== "v" || value.trim() !== "0") throw new SdpParseError("SDP must start with v=0", lineNo);
      sawVersion = true;
      return;
    }
    switch (type) {
      case "o": {
        const f = value.trim().split(/\s+/);
        if (f.length < 6) throw new SdpParseError("o= needs 6 fields", lineNo);
        session.origin = { username: f[0] as string, sessionId: f[1] as string, sessionVersion: f[2] as string, address: f[5] as string };
        break;
      }
      case "c": {
        const address = parseConnection(value, lineNo);
        if (current) current.ownConnection = address;
        else session.connectionAddress = address;
        break;
      }
      case "m": {
        const f = value.trim().split(/\s+/);
        if (f.length < 3) throw new SdpParseError("m= needs media, port and protocol", lineNo);
        const portMatch = /^(\d+)(?:\/\d+)?$/.exec(f[1] as string);
        const port = portMatch ? Number(portMatch[1]) : NaN;
        if (!Number.isInteger(port) || port > 65535) throw new SdpParseError(`bad m= port ${JSON.stringify(f[1])}`, lineNo);
        const protocol = f[2] as string;
        const formats = f.slice(3);
        const isRtp = /RTP\//i.test(protocol);
        const payloadTypes: number[] = [];
        if (isRtp) {
          for (const fmt of formats) {
            const pt = Number(fmt);
            if (!/^\d+$/.test(fmt) || pt > 127) throw new SdpParseError(`bad payload type ${JSON.stringify(fmt)}`, lineNo);
            payloadTypes.push(pt);
          }
        }
        current = {
          kind: f[0] as string,
          port,
          protocol,
          formats,
          payloadTypes,
          rtpmaps: [],
          fmtps: new Map(),
          connectionAddress: undefined,
          direction: "sendrecv",
          ptime: undefined,
          rtcp: undefined,
          attributes: [],
        };
        sections.push(current);
        break;
      }
      case "a": {
        const colon = value.indexOf(":");
        const name = colon < 0 ? value : value.slice(0, colon);
        const attrValue = colon < 0 ? undefined : value.slice(colon + 1);
        if (DIRECTIONS.has(name)) {
          if (current) current.explicitDirection = name as MediaDirection;
          else sessionDirection = name as MediaDirection;
          break;
        }
        if (!current) break;
        current.attributes.push({ name, value: attrValue });
        if (name === "rtpmap") current.rtpmaps.push(parseRtpMap(attrValue ?? "", lineNo));
        else if (name === "fmtp") {
          const fm = /^(\d+)\s+(.*)$/.exec(attrValue ?? "");
          if (!fm) throw new SdpParseError("bad a=fmtp", lineNo);
          current.fmtps.set(Number(fm[1]), (fm[2] as string).trim());
        } else if (name === "ptime") {
          const p = Number(attrValue);
          if (!(p > 0)) throw new SdpParseError("bad a=ptime", lineNo);
          current.ptime = p;
        } else if (name === "rtcp") {
          const rm = /^(\d+)(?:\s+IN\s+IP[46]\s+(\S+))?/.exec((attrValue ?? "").trim());
          if (!rm || Number(rm[1]) > 65535) throw new SdpParseError("bad a=rtcp", lineNo);
          current.rtcp = { port: Number(rm[1]), address: rm[2] };
        }
        break;
      }
      default:
        // s=, t=, b=, i=, u=, e=, p=, z=, k=, r= carry nothing we act on.
        break;
    }
  });
  if (!sawVersion) throw new SdpParseError("empty SDP");

  for (const s of sections) {
    const { explicitDirection, ownConnection, ...section } = s;
    section.connectionAddress = ownConnection ?? session.connectionAddress;
    section.direction = explicitDirection ?? sessionDirection ?? "sendrecv";
    session.media.push(section);
  }
  return session;
}

function parseConnection(value: string, lineNo: number): string {
  const f = value.trim().split(/\s+/);
  if (f.length < 3 || f[0] !== "IN" || !/^IP[46]$/.test(f[1] as string)) throw new SdpParseError("bad c= line", lineNo);
  // Multicast TTL/count suffixes (addr/ttl) are not part of the address.
  return (f[2] as string).split("/")[0] as string;
}

function parseRtpMap(value: string, lineNo: number): SdpRtpMap {
  const m = /^(\d+)\s+([^/\s]+)\/(\d+)(?:\/(\d+))?/.exec(value.trim());
  if (!m) throw new SdpParseError("bad a=rtpmap", lineNo);
  const map: SdpRtpMap = { payloadType: Number(m[1]), encodingName: m[2] as string, clockRate: Number(m[3]) };
  if (m[4] !== undefined) map.channels = Number(m[4]);
  return map;
}

/** The encoding a payload type stands for in a section (rtpmap first, then the static table). */
export function encodingOf(section: SdpMediaSection, payloadType: number): { encodingName: string; clockRate: number } | undefined {
  const map = section.rtpmaps.find((r) => r.payloadType === payloadType);
  if (map) return { encodingName: map.encodingName, clockRate: map.clockRate };
  return STATIC_PAYLOAD_TYPES[payloadType];
}

// ---------------------------------------------------------------------------------------------
// Reading the PBX's media

export interface RemoteAudio {
  codec: G711Codec;
  payloadType: number;
  clockRate: number;
  /** Where to send RTP (until symmetric-RTP latching learns the real source). */
  address: string;
  port: number;
  rtcpAddress: string;
  rtcpPort: number;
  /** RFC 4733 payload type at 8000 Hz, when offered. */
  telephoneEventPayloadType: number | undefined;
  ptime: number;
  /** As written by the PBX. */
  direction: MediaDirection;
  /** The PBX does not want our audio: sendonly/inactive, or the RFC 2543 c=0.0.0.0 hold. */
  onHold: boolean;
  /** Index of the m-line in the SDP (needed to answer in the same order). */
  mediaIndex: number;
  /** The m-line's transport (RTP/AVP, RTP/SAVP, …) and its readable SDES crypto lines. */
  security: RemoteSecurity;
}

export interface RemoteSecurity {
  protocol: string;
  /** RTP/SAVP or RTP/SAVPF: the peer will not take plain RTP on this stream. */
  secureProfile: boolean;
  /** `a=crypto` lines in the peer's order; unreadable ones are left out. */
  crypto: SdesCrypto[];
}

/** How our m-line is carried: its transport, and the `a=crypto` values (RFC 4568) it offers or accepts. */
export interface MediaSecurity {
  protocol: "RTP/AVP" | "RTP/SAVP";
  crypto: string[];
}

export interface RemoteVideo {
  address: string;
  port: number;
  payloadTypes: number[];
  /** The first H.264 payload type in the PBX's order, with its fmtp. */
  h264: { payloadType: number; fmtp: string | undefined } | undefined;
  /** RTCP feedback the PBX takes on its H.264 (RFC 4585 / RFC 5104 `a=rtcp-fb`, for that PT or `*`). */
  feedback: VideoFeedback;
  direction: MediaDirection;
  mediaIndex: number;
  security: RemoteSecurity;
}

export interface VideoFeedback {
  pli: boolean;
  fir: boolean;
  tmmbr: boolean;
  remb: boolean;
}

export interface RemoteMedia {
  audio: RemoteAudio;
  /** Present when the PBX has an active (port ≠ 0) video m-line. */
  video: RemoteVideo | undefined;
}

/**
 * What the PBX's offer or answer means for our media: the audio codec is the first of the PBX's
 * formats that is G.711 (its order is its preference, and in an answer its choice).
 * Throws SdpParseError for malformed text, SdpNegotiationError when there is no usable audio.
 */
export function readRemoteMedia(sdp: string | SdpSessionDescription): RemoteMedia {
  const parsed = typeof sdp === "string" ? parseSdp(sdp) : sdp;
  const audioIndex = parsed.media.findIndex((m) => m.kind === "audio" && m.port !== 0);
  if (audioIndex < 0) throw new SdpNegotiationError("no active audio m-line");
  const audio = parsed.media[audioIndex] as SdpMediaSection;
  if (!RTP_PROFILES.test(audio.protocol)) throw new SdpNegotiationError(`audio transport ${audio.protocol} is not RTP or SRTP`);
  let chosen: { codec: G711Codec; payloadType: number } | undefined;
  let telephoneEventPayloadType: number | undefined;
  for (const pt of audio.payloadTypes) {
    const enc = encodingOf(audio, pt);
    if (!enc) continue;
    const name = enc.encodingName.toUpperCase();
    if (!chosen && (name === "PCMU" || name === "PCMA") && enc.clockRate === 8000) chosen = { codec: name, payloadType: pt };
    if (telephoneEventPayloadType === undefined && name === "TELEPHONE-EVENT" && enc.clockRate === 8000) telephoneEventPayloadType = pt;
  }
  if (!chosen) throw new SdpNegotiationError(`no PCMU/PCMA in audio formats ${audio.payloadTypes.join(" ")}`);
  const address = audio.connectionAddress;
  if (!address) throw new SdpNegotiationError("audio has no connection address (no c= line)");
  const held = address === "0.0.0.0" || address === "::";

  let video: RemoteVideo | undefined;
  const videoIndex = parsed.media.findIndex((m) => m.kind === "video" && m.port !== 0);
  if (videoIndex >= 0) {
    const v = parsed.media[videoIndex] as SdpMediaSection;
    const h264Pt = v.payloadTypes.find((pt) => encodingOf(v, pt)?.encodingName.toUpperCase() === "H264");
    video = {
      address: v.connectionAddress ?? address,
      port: v.port,
      payloadTypes: v.payloadTypes,
      h264: h264Pt === undefined ? undefined : { payloadType: h264Pt, fmtp: v.fmtps.get(h264Pt) },
      feedback: readVideoFeedback(v, h264Pt),
      direction: v.direction,
      mediaIndex: videoIndex,
      security: readSecurity(v),
    };
  }

  return {
    audio: {
      codec: chosen.codec,
      payloadType: chosen.payloadType,
      clockRate: 8000,
      address,
      port: audio.port,
      rtcpAddress: audio.rtcp?.address ?? address,
      rtcpPort: audio.rtcp?.port ?? audio.port + 1,
      telephoneEventPayloadType,
      ptime: audio.ptime ?? 20,
      direction: audio.direction,
      onHold: held || audio.direction === "sendonly" || audio.direction === "inactive",
      mediaIndex: audioIndex,
      security: readSecurity(audio),
    },
    video,
  };
}

/** RTP over UDP, plain (RFC 3551, RFC 4585) or secure (RFC 3711 §12, RFC 5124); DTLS-SRTP is not SDES. */
const RTP_PROFILES = /^RTP\/S?AVPF?$/i;

/** An m-line's transport and its readable `a=crypto` lines (RFC 4568). */
export function readSecurity(section: SdpMediaSection): RemoteSecurity {
  const crypto: SdesCrypto[] = [];
  for (const a of section.attributes) {
    if (a.name !== "crypto" || a.value === undefined) continue;
    try {
      crypto.push(parseCryptoAttribute(a.value));
    } catch {
      // One unreadable line does not spoil the others (RFC 4568 §7.1.2: use the ones understood).
    }
  }
  return { protocol: section.protocol, secureProfile: /^RTP\/SAVPF?$/i.test(section.protocol), crypto };
}

function readVideoFeedback(section: SdpMediaSection, payloadType: number | undefined): VideoFeedback {
  const fb: VideoFeedback = { pli: false, fir: false, tmmbr: false, remb: false };
  for (const a of section.attributes) {
    if (a.name !== "rtcp-fb" || a.value === undefined) continue;
    const [pt, type, param] = a.value.trim().toLowerCase().split(/\s+/);
    if (pt !== "*" && Number(pt) !== payloadType) continue;
    if (type === "nack" && param === "pli") fb.pli = true;
    else if (type === "ccm" && param === "fir") fb.fir = true;
    else if (type === "ccm" && param === "tmmbr") fb.tmmbr = true;
    else if (type === "goog-remb") fb.remb = true;
  }
  return fb;
}

// ---------------------------------------------------------------------------------------------
// Building ours

export interface LocalVideoOptions {
  port: number;
  rtcpPort?: number;
  payloadType?: number;
  /** Default 42e01f (constrained baseline 3.1), what SIP video phones decode. */
  profileLevelId?: string;
  packetizationMode?: 0 | 1;
  direction?: MediaDirection;
  /** Default plain RTP/AVP. */
  security?: MediaSecurity;
}

export interface LocalSdpOptions {
  /** Address for c= and o= (the RTP endpoint's bind or public address). */
  mediaAddress: string;
  audioPort: number;
  /** Default audioPort + 1. */
  rtcpPort?: number;
  /** Default ['PCMU', 'PCMA']. */
  audioCodecs?: G711Codec[];
  /** Payload type for telephone-event/8000; default 101, `false` to leave it out. */
  telephoneEventPayloadType?: number | false;
  /** Default 20. */
  ptime?: number;
  /** Default sendrecv. */
  direction?: MediaDirection;
  /** o= session id; keep it for the whole call. Default: a random number. */
  sessionId?: string;
  /** o= version; increment it whenever the SDP changes (RFC 3264 §8). Default 1. */
  sessionVersion?: number;
  video?: LocalVideoOptions;
  /** Default plain RTP/AVP. */
  audioSecurity?: MediaSecurity;
}

/** Our offer to the PBX. */
export function buildOffer(o: LocalSdpOptions): string {
  const lines = sessionHeader(o);
  lines.push(...audioSection(o, o.audioCodecs ?? ["PCMU", "PCMA"], o.telephoneEventPayloadType ?? 101, o.direction ?? "sendrecv"));
  if (o.video) lines.push(...videoSection(o.video, o.video.payloadType ?? 96, undefined, o.video.direction ?? "sendrecv"));
  return lines.join("\r\n") + "\r\n";
}

/**
 * Our answer to the PBX's offer: the same m-lines in the same order (RFC 3264 §6), audio with the
 * codec the PBX prefers among ours and its telephone-event payload type, video accepted only
 * when we have a video port and the PBX offers H.264, every other m-line refused with port 0.
 */
export function buildAnswer(offer: string | SdpSessionDescription, o: LocalSdpOptions): string {
  const parsed = typeof offer === "string" ? parseSdp(offer) : offer;
  const remote = readRemoteMedia(parsed);
  const ours = o.audioCodecs ?? ["PCMU", "PCMA"];
  const audioSectionOffered = parsed.media[remote.audio.mediaIndex] as SdpMediaSection;
  let codec: { codec: G711Codec; payloadType: number } | undefined;
  for (const pt of audioSectionOffered.payloadTypes) {
    const name = encodingOf(audioSectionOffered, pt)?.encodingName.toUpperCase();
    if ((name === "PCMU" || name === "PCMA") && ours.includes(name)) {
      codec = { codec: name, payloadType: pt };
      break;
    }
  }
  if (!codec) throw new SdpNegotiationError(`offer has none of our audio codecs (${ours.join(", ")})`);
  const te = o.telephoneEventPayloadType === false ? undefined : remote.audio.telephoneEventPayloadType;

  const lines = sessionHeader(o);
  parsed.media.forEach((section, index) => {
    if (index === remote.audio.mediaIndex) {
      const direction = o.direction ?? answerDirection(remote.audio.direction);
      lines.push(...audioSection(o, [codec.codec], te === undefined ? false : te, direction, codec.payloadType));
    } else if (remote.video && index === remote.video.mediaIndex && o.video && remote.video.h264) {
      const h264 = remote.video.h264;
      lines.push(...videoSection(o.video, h264.payloadType, h264.fmtp, o.video.direction ?? answerDirection(remote.video.direction)));
    } else {
      lines.push(`m=${section.kind} 0 ${section.protocol} ${section.formats.length ? section.formats.join(" ") : "0"}`);
    }
  });
  return lines.join("\r\n") + "\r\n";
}

/** The direction that mirrors the offerer's (RFC 3264 §6.1). */
export function answerDirection(offered: MediaDirection): MediaDirection {
  switch (offered) {
    case "sendonly":
      return "recvonly";
    case "recvonly":
      return "sendonly";
    case "inactive":
      return "inactive";
    default:
      return "sendrecv";
  }
}

function sessionHeader(o: LocalSdpOptions): string[] {
  const family = o.mediaAddress.includes(":") ? "IP6" : "IP4";
  const sessionId = o.sessionId ?? String(Math.floor(Math.random() * 2 ** 31));
  return ["v=0", `o=- ${sessionId} ${o.sessionVersion ?? 1} IN ${family} ${o.mediaAddress}`, "s=-", `c=IN ${family} ${o.mediaAddress}`, "t=0 0"];
}

function audioSection(o: LocalSdpOptions, codecs: G711Codec[], te: number | false, direction: MediaDirection, payloadTypeOverride?: number): string[] {
  const pts = codecs.map((c) => (payloadTypeOverride !== undefined && codecs.length === 1 ? payloadTypeOverride : G711_STATIC_PT[c]));
  const formats = te === false ? pts : [...pts, te];
  const lines = [`m=audio ${o.audioPort} ${o.audioSecurity?.protocol ?? "RTP/AVP"} ${formats.join(" ")}`];
  codecs.forEach((c, i) => lines.push(`a=rtpmap:${pts[i]} ${c}/8000`));
  if (te !== false) lines.push(`a=rtpmap:${te} telephone-event/8000`, `a=fmtp:${te} 0-16`);
  lines.push(`a=ptime:${o.ptime ?? 20}`, `a=rtcp:${o.rtcpPort ?? o.audioPort + 1}`, `a=${direction}`);
  for (const c of o.audioSecurity?.crypto ?? []) lines.push(`a=crypto:${c}`);
  return lines;
}

function videoSection(v: LocalVideoOptions, pt: number, remoteFmtp: string | undefined, direction: MediaDirection): string[] {
  const fmtp = remoteFmtp ?? `profile-level-id=${v.profileLevelId ?? "42e01f"};packetization-mode=${v.packetizationMode ?? 1}`;
  const crypto = v.port === 0 ? [] : (v.security?.crypto ?? []).map((c) => `a=crypto:${c}`);
  return [
    `m=video ${v.port} ${v.security?.protocol ?? "RTP/AVP"} ${pt}`,
    `a=rtpmap:${pt} H264/90000`,
    `a=fmtp:${pt} ${fmtp}`,
    `a=rtcp:${v.rtcpPort ?? v.port + 1}`,
    `a=rtcp-fb:${pt} nack pli`,
    `a=rtcp-fb:${pt} ccm fir`,
    `a=rtcp-fb:${pt} ccm tmmbr`,
    `a=${direction}`,
    ...crypto,
  ];
}
