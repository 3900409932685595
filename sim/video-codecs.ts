import { RTCRtpCodecParameters, type RTCPFB } from "werift";
import { VIDEO_CLOCK_RATE, VIDEO_CODECS, videoCodecFromEncodingName, type VideoCodec } from "../transcode/video/video-codec.js";

export { VIDEO_CLOCK_RATE };

/** The video codecs Messenger lists (meta-calling-api.md §5.6): the five `transcode/` handles. */
export type SimVideoCodec = VideoCodec;

export const SIM_VIDEO_CODECS: readonly SimVideoCodec[] = VIDEO_CODECS;

export interface MetaVideoFormat {
  payloadType: number;
  /** Encoding name as written in a=rtpmap. */
  encoding: string;
  fmtp: string | undefined;
}

/**
 * How Meta's video m-lines name each codec. H.264 (PT 109 and its fmtp) is copied from the appendix's
 * video re-offer. Meta has not published its numbers for the others; VP8, VP9 and AV1 take the ones of the
 * Chromium offer in the same appendix, H.265 the fmtp Chromium writes for it.
 */
export const META_VIDEO_FORMATS: Readonly<Record<SimVideoCodec, MetaVideoFormat>> = {
  H264: { payloadType: 109, encoding: "H264", fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" },
  VP8: { payloadType: 96, encoding: "VP8", fmtp: undefined },
  VP9: { payloadType: 98, encoding: "VP9", fmtp: "profile-id=0" },
  AV1: { payloadType: 45, encoding: "AV1", fmtp: "level-idx=5;profile=0;tier=0" },
  H265: { payloadType: 49, encoding: "H265", fmtp: "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST" },
};

/** Feedback Meta lists for every video codec, in its order. */
export const META_VIDEO_RTCP_FEEDBACK: readonly RTCPFB[] = [
  { type: "ccm", parameter: "fir" },
  { type: "nack" },
  { type: "nack", parameter: "pli" },
  { type: "goog-remb" },
  { type: "transport-cc" },
];

/**
 * The consumer's werift codec for `codec`. H.265 has no werift helper (useH265 does not exist), so every codec
 * is built the same way from Meta's table.
 */
export function metaVideoCodec(codec: SimVideoCodec): RTCRtpCodecParameters {
  const format = META_VIDEO_FORMATS[codec];
  return new RTCRtpCodecParameters({
    mimeType: `video/${format.encoding}`,
    clockRate: VIDEO_CLOCK_RATE,
    payloadType: format.payloadType,
    rtcpFeedback: META_VIDEO_RTCP_FEEDBACK.map((fb) => ({ ...fb })),
    ...(format.fmtp !== undefined ? { parameters: format.fmtp } : {}),
  });
}

/** Every codec the consumer can receive or send, H.264 first (what the business's PBX side sends). */
export function metaVideoCodecs(): RTCRtpCodecParameters[] {
  return (["H264", "VP8", "VP9", "AV1", "H265"] as const).map(metaVideoCodec);
}

/** The codec behind an rtpmap encoding name or a werift mimeType (`video/VP8`), if it is one of the five. */
export function simVideoCodecOf(name: string): SimVideoCodec | undefined {
  return videoCodecFromEncodingName(name.includes("/") ? name.slice(name.indexOf("/") + 1) : name);
}
