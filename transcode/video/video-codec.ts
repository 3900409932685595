/** The video codecs Meta may send; the PBX leg always receives H.264. */
export type VideoCodec = "VP8" | "VP9" | "H264" | "H265" | "AV1";

export const VIDEO_CODECS: readonly VideoCodec[] = ["VP8", "VP9", "H264", "H265", "AV1"];

/** Every RTP video payload format used here runs on a 90 kHz clock. */
export const VIDEO_CLOCK_RATE = 90_000;

/** Codecs whose frames are Annex-B access units (start codes) rather than IVF-style raw frames. */
export function isAnnexBCodec(codec: VideoCodec): codec is "H264" | "H265" {
  return codec === "H264" || codec === "H265";
}

/**
 * The codec behind an SDP rtpmap encoding name, or undefined for names that are not video codecs we decode
 * (rtx, red, ulpfec, flexfec...). AV1X is the pre-standard name some WebRTC stacks still offer.
 */
export function videoCodecFromEncodingName(name: string): VideoCodec | undefined {
  switch (name.trim().toUpperCase()) {
    case "VP8":
      return "VP8";
    case "VP9":
      return "VP9";
    case "H264":
      return "H264";
    case "H265":
    case "HEVC":
      return "H265";
    case "AV1":
    case "AV1X":
      return "AV1";
    default:
      return undefined;
  }
}
