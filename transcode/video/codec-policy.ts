/**
 * Which of Meta's offered video codecs the gateway should prefer in its answer, given what the PBX decodes.
 *
 * Passthrough beats any transcoding by more than an order of magnitude (≈0.004 core per stream against
 * 0.03–0.19), so an H.264 format whose profile the PBX decodes, in a packetization mode the PBX accepts, wins
 * whenever Meta offers one; the level we answer caps what Meta sends at what the PBX declared. Otherwise the
 * cheapest decode wins: H.264 (re-encode) < VP8 < VP9 ≈ AV1 < H.265, Meta's order breaking ties. The PBX must
 * take the encoder's constrained-baseline output either way. Pure: no I/O, no state.
 */
import {
  formatProfileLevelId,
  parseProfileLevelId,
  profileDecodableBy,
  type H264Profile,
  type H264ProfileLevel,
} from "./h264-profile.js";
import { videoCodecFromEncodingName, type VideoCodec } from "./video-codec.js";

export type Fmtp = string | Readonly<Record<string, string>>;

export interface OfferedVideoCodec {
  /** rtpmap encoding name as offered ("H264", "VP8", "AV1"...). */
  encodingName: string;
  payloadType: number;
  fmtp?: Fmtp;
}

export interface PbxH264Format {
  /** Absent means 42000A (RFC 6184 default: Baseline level 1.0). */
  profileLevelId?: string;
  /** Absent means 0 (RFC 6184 default). */
  packetizationMode?: number;
}

export interface PbxVideoCapabilities {
  /** H.264 formats the PBX offered or accepts, in its order of preference. */
  h264: readonly PbxH264Format[];
}

/**
 * CPU cores per realtime 30 fps stream for decode + libx264 encode, from media-notes.md (testsrc2; camera
 * content costs more). The ranking, not the figures, drives the choice.
 */
export const TRANSCODE_CORES_PER_STREAM: Readonly<Record<VideoCodec, { p360: number; p720: number }>> = {
  H264: { p360: 0.031, p720: 0.1 },
  VP8: { p360: 0.033, p720: 0.13 },
  VP9: { p360: 0.035, p720: 0.148 },
  AV1: { p360: 0.037, p720: 0.145 },
  H265: { p360: 0.042, p720: 0.178 },
};

/** Transcoding cost rank; equal ranks are "about the same" and fall back to Meta's order. */
export const TRANSCODE_RANK: Readonly<Record<VideoCodec, number>> = { H264: 0, VP8: 1, VP9: 2, AV1: 2, H265: 3 };

/** The profile our encoder produces (x264 baseline is constrained baseline; its level follows the frame size). */
export const TRANSCODER_OUTPUT_PROFILE: H264Profile = "constrained-baseline";

export interface PassthroughChoice {
  mode: "passthrough";
  transcode: false;
  codec: "H264";
  offer: OfferedVideoCodec;
  /** fmtp for this payload type in our answer to Meta. */
  answerFmtp: string;
  /** The PBX format the passthrough stream conforms to. */
  pbxFormat: PbxH264Format;
  /** Offered payload types, best first: the order for our answer. */
  preference: number[];
}

export interface TranscodeChoice {
  mode: "transcode";
  transcode: true;
  codec: VideoCodec;
  offer: OfferedVideoCodec;
  answerFmtp: string | undefined;
  /** The PBX format our H.264 output is sent in (constrained baseline, this packetization mode). */
  pbxFormat: PbxH264Format;
  /** Highest level the PBX declared for that format (caps the encoder's frame size). */
  pbxLevel: number;
  preference: number[];
}

export interface NoVideoChoice {
  mode: "none";
  transcode: false;
  reason: "no-decodable-offer" | "pbx-takes-no-constrained-baseline";
}

export type VideoCodecChoice = PassthroughChoice | TranscodeChoice | NoVideoChoice;

export function parseFmtp(fmtp: Fmtp | undefined): Record<string, string> {
  if (fmtp === undefined) return {};
  if (typeof fmtp !== "string") {
    return Object.fromEntries(Object.entries(fmtp).map(([k, v]) => [k.trim().toLowerCase(), String(v).trim()]));
  }
  const out: Record<string, string> = {};
  for (const part of fmtp.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return out;
}

function formatFmtp(params: Readonly<Record<string, string>>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join(";");
}

function packetizationModeOf(params: Readonly<Record<string, string>>): number {
  const raw = params["packetization-mode"];
  return raw === undefined ? 0 : Number.parseInt(raw, 10);
}

interface PbxH264Parsed {
  format: PbxH264Format;
  profileLevel: H264ProfileLevel;
  packetizationMode: number;
}

function parsePbx(pbx: PbxVideoCapabilities): PbxH264Parsed[] {
  const out: PbxH264Parsed[] = [];
  for (const format of pbx.h264) {
    const profileLevel = parseProfileLevelId(format.profileLevelId);
    if (profileLevel) out.push({ format, profileLevel, packetizationMode: format.packetizationMode ?? 0 });
  }
  return out;
}

export function chooseVideoCodec(
  offered: readonly OfferedVideoCodec[],
  pbx: PbxVideoCapabilities,
): VideoCodecChoice {
  const pbxFormats = parsePbx(pbx);
  const candidates = offered
    .map((offer, order) => ({ offer, order, codec: videoCodecFromEncodingName(offer.encodingName), params: parseFmtp(offer.fmtp) }))
    .filter((c): c is typeof c & { codec: VideoCodec } => c.codec !== undefined);
  if (candidates.length === 0) return { mode: "none", transcode: false, reason: "no-decodable-offer" };

  const byCost = [...candidates].sort((a, b) => TRANSCODE_RANK[a.codec] - TRANSCODE_RANK[b.codec] || a.order - b.order);

  // Passthrough: an offered H.264 format the PBX decodes in a mode it accepts; mode 1 first, then Meta's order.
  const passthrough = candidates
    .filter((c) => c.codec === "H264")
    .flatMap((c) => {
      const streamProfile = parseProfileLevelId(c.params["profile-level-id"]);
      if (!streamProfile) return [];
      const mode = packetizationModeOf(c.params);
      const match = pbxFormats.find(
        (p) => p.packetizationMode === mode && profileDecodableBy(streamProfile.profile, p.profileLevel.profile),
      );
      return match ? [{ candidate: c, streamProfile, mode, match }] : [];
    })
    .sort((a, b) => Number(b.mode === 1) - Number(a.mode === 1) || a.candidate.order - b.candidate.order)[0];

  if (passthrough) {
    const { candidate, streamProfile, match } = passthrough;
    const asymmetry = candidate.params["level-asymmetry-allowed"] === "1";
    // Our answer's level is what Meta may send us: the PBX's level, and with no asymmetry also ≤ Meta's.
    const level = asymmetry ? match.profileLevel.level : Math.min(match.profileLevel.level, streamProfile.level);
    const answer: Record<string, string> = {
      ...candidate.params,
      "profile-level-id": formatProfileLevelId(streamProfile.profileIdc, streamProfile.profileIop, level),
      "packetization-mode": String(passthrough.mode),
    };
    return {
      mode: "passthrough",
      transcode: false,
      codec: "H264",
      offer: candidate.offer,
      answerFmtp: formatFmtp(answer),
      pbxFormat: match.format,
      preference: [candidate.offer.payloadType, ...byCost.filter((c) => c !== candidate).map((c) => c.offer.payloadType)],
    };
  }

  // Transcoding: the PBX must take constrained baseline; prefer a mode-1 format (STAP-A/FU-A), then its order.
  const output = pbxFormats
    .filter((p) => profileDecodableBy(TRANSCODER_OUTPUT_PROFILE, p.profileLevel.profile) && (p.packetizationMode === 0 || p.packetizationMode === 1))
    .sort((a, b) => Number(b.packetizationMode === 1) - Number(a.packetizationMode === 1))[0];
  if (!output) return { mode: "none", transcode: false, reason: "pbx-takes-no-constrained-baseline" };
  const cheapest = byCost[0]!;
  return {
    mode: "transcode",
    transcode: true,
    codec: cheapest.codec,
    offer: cheapest.offer,
    // Meta sends what it offered for this codec; we decode any of it, so the answer repeats the offer.
    answerFmtp: cheapest.offer.fmtp === undefined ? undefined : formatFmtp(cheapest.params),
    pbxFormat: output.format,
    pbxLevel: output.profileLevel.level,
    preference: byCost.map((c) => c.offer.payloadType),
  };
}
