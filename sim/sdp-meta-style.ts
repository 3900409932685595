import { randomInt } from "node:crypto";
import {
  attributes,
  bundleMids,
  canSend,
  effectiveAttribute,
  firstUdpCandidate,
  mediaDirection,
  mediaMid,
  mirrorDirection,
  parseSdp,
  payloadLines,
  rtpMaps,
  serializeSdp,
  setDirection,
  withoutAttributes,
  type SdpDocument,
  type SdpMediaSection,
} from "./sdp-text.js";

/** Meta's Opus parameters on Messenger (appendix SDP samples). */
export const META_OPUS_FMTP = "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=10;usedtx=1;useinbandfec=1";
export const META_OPUS_PAYLOAD_TYPE = 111;

/**
 * Rewrites werift's SDP into the shape of Meta's edge SDP: session-level `a=ice-lite`,
 * `a=ice-options:fb-force-5245`, the real host address in `m=`/`c=` instead of 9/0.0.0.0,
 * and Meta's Opus fmtp. Transport parameters, ssrcs and msids are left exactly as werift
 * negotiated them, so the consumer's peer connection still matches what the gateway reads.
 */
function shapeLikeMeta(doc: SdpDocument, sessionExtras: readonly string[], mediaExtras: readonly string[]): SdpDocument {
  const session = withoutAttributes(doc.session, "ice-lite", "x-fb-feature");
  const insertAt = session.findIndex((line) => line.startsWith("a="));
  session.splice(insertAt >= 0 ? insertAt : session.length, 0, "a=ice-lite", ...sessionExtras);

  const media = doc.media.map((section): SdpMediaSection => {
    const host = firstUdpCandidate(section);
    let lines = withoutAttributes(section.lines, "ice-lite", "ice-options", "x-google-flag", "rtcp-rsize");
    if (host && section.port !== 0) {
      lines = lines.map((line) => (line.startsWith("c=") ? `c=IN IP4 ${host.address}` : line));
    }
    lines = lines.map((line) =>
      line.startsWith(`a=fmtp:${META_OPUS_PAYLOAD_TYPE} `) ? `a=fmtp:${META_OPUS_PAYLOAD_TYPE} ${META_OPUS_FMTP}` : line,
    );
    const pwdIndex = lines.findIndex((line) => line.startsWith("a=ice-pwd:"));
    lines.splice(pwdIndex >= 0 ? pwdIndex + 1 : lines.length, 0, "a=ice-options:fb-force-5245");
    const muxIndex = lines.indexOf("a=rtcp-mux");
    if (mediaExtras.includes("a=rtcp-rsize")) lines.splice(muxIndex >= 0 ? muxIndex + 1 : lines.length, 0, "a=rtcp-rsize");
    lines.push(...mediaExtras.filter((l) => l !== "a=rtcp-rsize"));
    return { ...section, port: host && section.port !== 0 ? host.port : section.port, lines };
  });
  return { session, media };
}

/** Meta's answer to the business offer on accept/connect. */
export function shapeMetaAnswer(weriftAnswer: string): string {
  return serializeSdp(shapeLikeMeta(parseSdp(weriftAnswer), [], []));
}

/** The msid Meta writes on the video m-line that stands in for a track it does not send (appendix sample). */
export const META_PLACEHOLDER_MSID = "- D3F4U1T_F8_TR4CK";

export interface ReofferShape {
  /** Mids of sendonly video m-lines that carry no track: Meta's placeholder msid and no a=ssrc. */
  placeholderMids?: readonly string[];
}

/** Meta's re-offer (accept `sdp_renegotiation`, media_update): conference flag, pqc feature, rtcp-rsize. */
export function shapeMetaReoffer(weriftOffer: string, shape: ReofferShape = {}): string {
  const doc = shapeLikeMeta(parseSdp(weriftOffer), ["a=x-fb-feature:pqc-0"], ["a=rtcp-rsize", "a=x-google-flag:conference"]);
  const placeholders = new Set(shape.placeholderMids ?? []);
  const media = doc.media.map((section): SdpMediaSection => {
    if (!placeholders.has(mediaMid(section) ?? "")) return section;
    const lines = withoutAttributes(section.lines, "ssrc", "ssrc-group", "msid");
    const at = lines.findIndex((line) => /^a=(sendonly|recvonly|sendrecv|inactive)$/.test(line));
    lines.splice(at >= 0 ? at + 1 : lines.length, 0, `a=msid:${META_PLACEHOLDER_MSID}`);
    return { ...section, lines };
  });
  return serializeSdp({ session: doc.session, media });
}

/**
 * Meta never receives the business's answer to its re-offers (the docs never send it back), yet
 * its edge starts sending on the new transceiver. The simulator therefore infers that answer from
 * what it knows about the business: ICE credentials, candidates and fingerprint from the business's
 * latest offer, `a=setup:active` (Meta stays DTLS server), each direction mirrored and limited by
 * what the business offered to send, and the business's own msid/ssrc on the m-lines it sends on.
 * Audio keeps the codecs both sides listed; video keeps Meta's codec even when the business never
 * offered it, since nothing tells Meta that the business cannot take it.
 * Applying it to the consumer's peer connection makes the re-offer's sendonly transceiver start.
 */
export function inferBusinessAnswer(businessOfferSdp: string, metaOfferSdp: string): string {
  const business = parseSdp(businessOfferSdp);
  const meta = parseSdp(metaOfferSdp);
  const tag = transportSource(business);

  const transport: string[] = [
    ...attributes(tag.lines, "candidate").map((c) => `a=candidate:${c}`),
    "a=end-of-candidates",
    `a=ice-ufrag:${effectiveAttribute(business, tag, "ice-ufrag") ?? ""}`,
    `a=ice-pwd:${effectiveAttribute(business, tag, "ice-pwd") ?? ""}`,
    ...attributes([...tag.lines, ...business.session], "fingerprint").map((f) => `a=fingerprint:${f}`),
    "a=setup:active",
  ];
  const businessEncodings = new Map<string, string | undefined>();
  const businessExtmapUris = new Set<string>();
  for (const section of business.media) {
    for (const map of rtpMaps(section)) {
      const key = encodingKey(map.encoding, map.clockRate);
      if (!businessEncodings.has(key)) businessEncodings.set(key, fmtpOf(section, map.payloadType));
    }
    for (const ext of attributes(section.lines, "extmap")) businessExtmapUris.add(ext.split(" ")[1] ?? "");
  }

  const acceptedMids: string[] = [];
  const media = meta.media.map((offered): SdpMediaSection => {
    const mid = mediaMid(offered) ?? "";
    let common = rtpMaps(offered).filter((m) => businessEncodings.has(encodingKey(m.encoding, m.clockRate)));
    // Meta's edge sends the video it offered whatever the business listed before: it never learns otherwise.
    if (offered.kind === "video" && common.length === 0) common = rtpMaps(offered);
    if (offered.port === 0 || common.length === 0) {
      return { ...offered, port: 0, formats: [offered.formats[0] ?? "0"], lines: ["c=IN IP4 0.0.0.0", `a=mid:${mid}`, "a=inactive"] };
    }
    acceptedMids.push(mid);
    const ownSection = business.media.find((m) => mediaMid(m) === mid);
    const businessCanSend = ownSection ? canSend(mediaDirection(ownSection)) : false;
    let direction = mirrorDirection(mediaDirection(offered));
    if (!businessCanSend && canSend(direction)) direction = direction === "sendrecv" ? "recvonly" : "inactive";

    const lines: string[] = ["c=IN IP4 0.0.0.0", ...transport, `a=mid:${mid}`];
    if (canSend(direction) && ownSection) {
      lines.push(...ownSection.lines.filter((l) => l.startsWith("a=msid:") || l.startsWith("a=ssrc:") || l.startsWith("a=ssrc-group:")));
    }
    lines.push("a=rtcp-mux");
    for (const map of common) {
      lines.push(`a=rtpmap:${map.payloadType} ${map.encoding}/${map.clockRate}${map.channels ? `/${map.channels}` : ""}`);
      const fmtp = businessEncodings.get(encodingKey(map.encoding, map.clockRate)) ?? fmtpOf(offered, map.payloadType);
      if (fmtp) lines.push(`a=fmtp:${map.payloadType} ${fmtp}`);
      lines.push(...payloadLines(offered, map.payloadType).filter((l) => l.startsWith("a=rtcp-fb:")));
    }
    lines.push(...attributes(offered.lines, "extmap").filter((e) => businessExtmapUris.has(e.split(" ")[1] ?? "")).map((e) => `a=extmap:${e}`));
    return { kind: offered.kind, port: 9, proto: offered.proto, formats: common.map((m) => String(m.payloadType)), lines: setDirection(lines, direction) };
  });

  const session = [
    "v=0",
    `o=- ${randomInt(1, 2 ** 31)} 2 IN IP4 127.0.0.1`,
    "s=-",
    "t=0 0",
    ...(acceptedMids.length > 0 ? [`a=group:BUNDLE ${acceptedMids.join(" ")}`] : []),
    "a=msid-semantic: WMS *",
  ];
  return serializeSdp({ session, media });
}

/** The m-line that carries the bundle's transport parameters: the BUNDLE tag, else the first one. */
function transportSource(doc: SdpDocument): SdpMediaSection {
  const tagMid = bundleMids(doc)[0];
  const tagged = doc.media.find((m) => m.port !== 0 && mediaMid(m) === tagMid);
  const first = tagged ?? doc.media.find((m) => m.port !== 0) ?? doc.media[0];
  if (!first) throw new RangeError("SDP has no media section");
  return first;
}

function encodingKey(encoding: string, clockRate: number): string {
  return `${encoding.toLowerCase()}/${clockRate}`;
}

function fmtpOf(section: SdpMediaSection, payloadType: number): string | undefined {
  const line = section.lines.find((l) => l.startsWith(`a=fmtp:${payloadType} `));
  return line?.slice(`a=fmtp:${payloadType} `.length);
}
