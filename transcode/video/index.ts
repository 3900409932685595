/** The video path: Meta's VP8/VP9/AV1/H.264/H.265 RTP → frames → (transcode) → H.264 RTP for the PBX. */
export { VIDEO_CODECS, VIDEO_CLOCK_RATE, videoCodecFromEncodingName, type VideoCodec } from "./video-codec.js";
export {
  VideoDepacketizer,
  type DepacketizerState,
  type EncodedVideoFrame,
  type FrameDrop,
  type FrameDropReason,
  type KeyframeRequest,
  type KeyframeRequestReason,
  type RtpPacketLike,
  type VideoDepacketizerEvents,
  type VideoDepacketizerOptions,
  type VideoDepacketizerStats,
} from "./depacketizer.js";
export {
  H264Packetizer,
  packetizeH264Nalus,
  DEFAULT_MAX_PAYLOAD_SIZE,
  type H264PacketizerOptions,
  type H264PacketizeOptions,
  type H264PayloadChunk,
} from "./h264-packetizer.js";
export {
  H264Passthrough,
  type H264PassthroughEvents,
  type H264PassthroughOptions,
  type H264PassthroughStats,
  type PassthroughKeyframe,
} from "./h264-passthrough.js";
export {
  VideoTranscoder,
  type EncodedAccessUnit,
  type KeyframeNeededReason,
  type RestartPolicy,
  type TranscoderInputFrame,
  type TranscoderState,
  type VideoTranscoderEvents,
  type VideoTranscoderOptions,
  type VideoTranscoderStats,
} from "./transcoder.js";
export {
  chooseVideoCodec,
  TRANSCODE_CORES_PER_STREAM,
  TRANSCODE_RANK,
  type OfferedVideoCodec,
  type PbxH264Format,
  type PbxVideoCapabilities,
  type VideoCodecChoice,
} from "./codec-policy.js";
export { parseProfileLevelId, profileDecodableBy, type H264Profile, type H264ProfileLevel } from "./h264-profile.js";
export { isKeyframe } from "./keyframe.js";
export { checkFfmpeg, resolveFfmpegPath, type FfmpegInfo } from "./ffmpeg-binary.js";
export type { InputFraming } from "./input-framing.js";
export {
  FfmpegExitError,
  FfmpegNotFoundError,
  PayloadFormatError,
  TranscoderClosedError,
  TranscoderFailedError,
  VideoError,
} from "./errors.js";
