import { graphErrors } from "./graph-errors.js";
import {
  attribute,
  attributes,
  bundleMids,
  effectiveAttribute,
  fingerprints,
  mediaMid,
  parseSdp,
  rtpMaps,
  type SdpDocument,
} from "./sdp-text.js";

export interface OfferRules {
  /** Meta's docs only show offers with candidates from working implementations; require at least one. */
  requireCandidates: boolean;
}

export const DEFAULT_OFFER_RULES: OfferRules = { requireCandidates: true };

/**
 * Checks a business offer the way Meta's edge is reported to: BUNDLE, ICE credentials,
 * candidates, sha-256 as the only fingerprint hash, an offer-capable DTLS setup and Opus
 * audio. Throws the Graph error Meta would answer with; returns the parsed document.
 */
export function validateBusinessOffer(sdp: string, rules: OfferRules = DEFAULT_OFFER_RULES): SdpDocument {
  if (!sdp.startsWith("v=0")) throw graphErrors.invalidSdp("SDP must start with v=0");
  const doc = parseSdp(sdp);
  if (doc.media.length === 0) throw graphErrors.invalidSdp("no media sections");

  const bundle = bundleMids(doc);
  if (bundle.length === 0) throw graphErrors.invalidSdp("a=group:BUNDLE is required");

  const allLines = [...doc.session, ...doc.media.flatMap((m) => m.lines)];
  const prints = fingerprints(allLines);
  if (prints.length === 0) throw graphErrors.nonSha256Fingerprint("no a=fingerprint line");
  const other = prints.find((f) => f.algorithm !== "sha-256");
  if (other) throw graphErrors.nonSha256Fingerprint(`found a=fingerprint:${other.algorithm}`);

  const active = doc.media.filter((m) => m.port !== 0);
  if (!active.some((m) => m.kind === "audio")) throw graphErrors.invalidSdp("an m=audio section is required");

  for (const section of active) {
    const mid = mediaMid(section);
    if (mid === undefined) throw graphErrors.invalidSdp(`m=${section.kind} section without a=mid`);
    if (!bundle.includes(mid)) throw graphErrors.invalidSdp(`mid ${mid} is not in the BUNDLE group`);
    if (!effectiveAttribute(doc, section, "ice-ufrag") || !effectiveAttribute(doc, section, "ice-pwd")) {
      throw graphErrors.invalidSdp(`mid ${mid}: missing a=ice-ufrag/a=ice-pwd`);
    }
    const setup = effectiveAttribute(doc, section, "setup");
    if (setup !== undefined && setup !== "actpass" && setup !== "active") {
      throw graphErrors.invalidSdp(`mid ${mid}: an offer must use a=setup:actpass (got ${setup})`);
    }
    if (section.kind === "audio" && !rtpMaps(section).some((r) => r.encoding.toLowerCase() === "opus")) {
      throw graphErrors.invalidSdp(`mid ${mid}: only the Opus codec is supported`);
    }
    if (attribute(section.lines, "rtcp-mux") === undefined) {
      throw graphErrors.invalidSdp(`mid ${mid}: a=rtcp-mux is required`);
    }
  }

  if (rules.requireCandidates && attributes(allLines, "candidate").length === 0) {
    throw graphErrors.invalidSdp("no a=candidate lines (non-trickle: every candidate must be in the offer)");
  }
  return doc;
}
