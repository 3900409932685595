import { loopbackOnly } from "./chromium.js";
import { ConsumerNegotiationError } from "./errors.js";
import { attribute, fingerprints, mediaMid, parseSdp, rtpMaps, serializeSdp, withoutAttributes, type SdpMediaSection } from "./sdp-text.js";
import { WA_AUDIO_MID, WA_OPUS_FMTP, WA_OPUS_PAYLOAD_TYPE, WA_TELEPHONE_EVENT_PAYLOAD_TYPE } from "./wa-sdp.js";

/**
 * What Meta's edge makes of a WhatsApp client's SDP, with Chromium as the client. The simulator has no
 * media relay: Chromium's own ICE credentials, fingerprint and candidates reach the business, so only
 * the SDP's shape is rewritten, never anything the wire depends on:
 * - mid `audio` and `a=group:BUNDLE audio` (Chromium numbers its mid `0`; the business's answer is mapped
 *   back, since a mid lives only in SDP once the mid header extension is left out);
 * - session `a=ice-lite`, as in every Meta SDP: the business must act as the full, controlling agent.
 *   Chromium is a full agent all the same, so on a user's call both sides start controlling and
 *   RFC 8445's role-conflict repair (STUN 487) settles who nominates;
 * - only Opus 111 and telephone-event/8000 126 (the page limits Chromium to them with
 *   setCodecPreferences, since payload types on the wire cannot be renumbered here), Meta's Opus fmtp;
 * - sha-256 fingerprints only; UDP host candidates on 127.0.0.1, written as Meta writes candidates
 *   (`generation 0 network-cost 50 ufrag …`);
 * - offers lose what Meta's WhatsApp offers do not carry: header extensions (with them the transport-cc
 *   feedback), `a=ice-options`, `a=rtcp`, `a=rtcp-rsize`, `a=rtcp-xr`, `a=extmap-allow-mixed`.
 * Answers (business calls) are Chromium's to the business's own offer, so they keep what Chromium
 * negotiated (its extensions, its `a=setup:active`, `a=ice-options:trickle` as Meta's answers have).
 */

/** Offer lines Meta's WhatsApp offers never carry. */
const OFFER_DROPPED = ["ice-options", "rtcp", "rtcp-rsize", "rtcp-xr", "extmap"];

/** Chromium's offer, as the connect webhook carries it; `chromiumMid` is what the answer must be mapped back to. */
export function whatsAppOfferFromChromium(chromiumSdp: string): { sdp: string; chromiumMid: string } {
  const doc = parseSdp(loopbackOnly(chromiumSdp));
  const audio = onlyAudio(doc.media);
  const chromiumMid = mediaMid(audio);
  if (chromiumMid === undefined) throw new ConsumerNegotiationError("Chromium's offer has no a=mid");
  const formats = audio.formats.map(Number);
  if (formats.length !== 2 || formats[0] !== WA_OPUS_PAYLOAD_TYPE || formats[1] !== WA_TELEPHONE_EVENT_PAYLOAD_TYPE) {
    throw new ConsumerNegotiationError(`Chromium offered payload types ${audio.formats.join(" ").slice(0, 80)}, not WhatsApp's 111 and 126`);
  }
  const ufrag = attribute(audio.lines, "ice-ufrag") ?? "";
  const lines = withoutAttributes(audio.lines, ...OFFER_DROPPED)
    .filter((line) => !/^a=rtcp-fb:\d+ transport-cc$/.test(line))
    .map((line) => {
      if (line === `a=mid:${chromiumMid}`) return `a=mid:${WA_AUDIO_MID}`;
      if (line.startsWith(`a=fmtp:${WA_OPUS_PAYLOAD_TYPE} `)) return `a=fmtp:${WA_OPUS_PAYLOAD_TYPE} ${WA_OPUS_FMTP}`;
      if (line.startsWith("a=candidate:")) return metaCandidate(line, ufrag);
      return line;
    });
  const session = withEdgeSession(withoutAttributes(doc.session, "extmap-allow-mixed"), [WA_AUDIO_MID]);
  return { sdp: serializeSdp({ session, media: [{ ...audio, lines: sha256Only(lines) }] }), chromiumMid };
}

/** The business's answer (pre_accept/accept) as Chromium must see it: Meta's mid back to Chromium's. */
export function chromiumAnswerFromWhatsApp(answerSdp: string, chromiumMid: string): string {
  const doc = parseSdp(answerSdp);
  const session = doc.session.map((line) => (line === `a=group:BUNDLE ${WA_AUDIO_MID}` ? `a=group:BUNDLE ${chromiumMid}` : line));
  const media = doc.media.map((section) => ({
    ...section,
    lines: section.lines.map((line) => (line === `a=mid:${WA_AUDIO_MID}` ? `a=mid:${chromiumMid}` : line)),
  }));
  return serializeSdp({ session, media });
}

/** Chromium's answer to the business's offer (business calls), as the connect webhook carries it. */
export function whatsAppAnswerFromChromium(chromiumSdp: string): string {
  const doc = parseSdp(loopbackOnly(chromiumSdp));
  const audio = onlyAudio(doc.media);
  const mid = mediaMid(audio);
  if (mid === undefined) throw new ConsumerNegotiationError("Chromium's answer has no a=mid");
  if (!rtpMaps(audio).some((m) => m.encoding.toLowerCase() === "opus")) throw new ConsumerNegotiationError("Chromium's answer has no Opus");
  const ufrag = attribute(audio.lines, "ice-ufrag") ?? "";
  const lines = audio.lines.map((line) => (line.startsWith("a=candidate:") ? metaCandidate(line, ufrag) : line));
  const session = withEdgeSession(withoutAttributes(doc.session, "extmap-allow-mixed"), [mid]);
  return serializeSdp({ session, media: doc.media.map((m) => (m === audio ? { ...audio, lines: sha256Only(lines) } : m)) });
}

function onlyAudio(media: readonly SdpMediaSection[]): SdpMediaSection {
  const audio = media.find((m) => m.kind === "audio" && m.port !== 0);
  if (!audio || media.filter((m) => m.port !== 0).length !== 1) throw new ConsumerNegotiationError("Chromium's SDP must hold exactly one live audio m-line");
  return audio;
}

/** Session lines with Meta's one BUNDLE group and `a=ice-lite` first among the attributes. */
function withEdgeSession(session: readonly string[], bundle: readonly string[]): string[] {
  const lines = withoutAttributes(session, "group", "ice-lite");
  const at = lines.findIndex((line) => line.startsWith("a="));
  lines.splice(at >= 0 ? at : lines.length, 0, `a=group:BUNDLE ${bundle.join(" ")}`, "a=ice-lite");
  return lines;
}

function sha256Only(lines: readonly string[]): string[] {
  const kept = lines.filter((line) => !line.startsWith("a=fingerprint:") || line.toLowerCase().startsWith("a=fingerprint:sha-256 "));
  if (fingerprints(kept).length === 0) throw new ConsumerNegotiationError("Chromium's SDP has no sha-256 fingerprint");
  return kept;
}

/** `a=candidate:` with Meta's trailing attributes instead of Chromium's (network-id, tcptype...). */
function metaCandidate(line: string, ufrag: string): string {
  const parts = line.slice("a=candidate:".length).split(" ");
  const head = parts.slice(0, 8).join(" ");
  return `a=candidate:${head} generation 0 network-cost 50${ufrag ? ` ufrag ${ufrag}` : ""}`;
}
