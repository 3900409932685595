export { MetaSimulator, type MetaSimulatorOptions, type PlaceCallOptions } from "./simulator.js";
export { SimCall, MEDIA_MILESTONE_PACKETS, type AnswerOptions, type SimCallMilestone, type SimCallState } from "./sim-call.js";
export type { CallEnd, CallEndReason } from "./call-rules.js";
export { END_CALL_REASONS, validateCallMetrics, type CallMetricsReport, type EndCallReason } from "./call-metrics.js";
export { SimConsumer, type ConsumerOptions, type ConsumerState, type ConsumerStats } from "./consumer.js";
export type { ConsumerPeer } from "./consumer-peer.js";
export type { MediaUpdateReason, MediaUpdateRecord } from "./call-record.js";
export type { ConsumerVideoStats, VideoSendOptions, VideoSendState } from "./consumer-video.js";
export { META_VIDEO_FORMATS, SIM_VIDEO_CODECS, simVideoCodecOf, type MetaVideoFormat, type SimVideoCodec } from "./video-codecs.js";
export { loadVideoClip, DEFAULT_CLIP, type VideoClip, type VideoClipFrame, type VideoClipSpec } from "./video-clip.js";
export type { SentVideoStats } from "./video-sender.js";
export type { ReceivedVideoFrame, ReceivedVideoStats } from "./video-receiver.js";
export { decodeVideoFrames, videoFramesAsFile, type DecodeResult, type EncodedFrameLike } from "./video-decode.js";
export {
  imageColours,
  imageThumbnail,
  thumbnailDistance,
  videoThumbnails,
  writeVideoFramePng,
  type EncodedVideo,
  type Thumbnails,
} from "./video-snapshot.js";
export { keyframeRequestFor, type KeyframeRequestKind } from "./video-feedback.js";
export type {
  CollisionMode,
  CollisionOptions,
  CollisionOrder,
  CollisionRecord,
  ConsumerChange,
  ConsumerChangeKind,
} from "./media-collision.js";
export { OpusPcmRecorder, OpusToneEncoder, OPUS_SAMPLE_RATE, type TelephoneEvent } from "./consumer-audio.js";
export {
  WebhookSender,
  type BatchLayout,
  type DeliveryOptions,
  type SignatureMode,
  type WebhookDelivery,
  type WebhookSenderOptions,
} from "./webhook-sender.js";
export {
  callStatusEvent,
  connectEvent,
  mediaUpdateEvent,
  terminateEvent,
  unixSeconds,
  webhookPayload,
  type CallDirection,
  type CallEvent,
  type CallStatus,
  type CallStatusEvent,
  type ConnectEvent,
  type MediaUpdateEvent,
  type TerminateEvent,
  type TerminateStatus,
  type WebhookEntry,
  type WebhookPayload,
} from "./webhook-events.js";
export { serializeLikeMeta, signBody, SIGNATURE_256_HEADER, SIGNATURE_SHA1_HEADER, type MetaJsonOptions } from "./signing.js";
export {
  GraphServer,
  type CallPermissionsResponse,
  type CallsSuccess,
  type GraphFailure,
  type GraphRequestRecord,
  type PermissionStatus,
  type SdpPayload,
} from "./graph-server.js";
export {
  GraphApiError,
  graphErrors,
  MessengerCallingCode,
  NON_SHA256_FINGERPRINT_SUBCODE,
  type GraphErrorEnvelope,
  type GraphErrorSpec,
  type GraphErrorType,
} from "./graph-errors.js";
export { parseCallsBody, routeGraphPath, type CallAction, type CallsRequest, type MediaUpdateRequest, type TrackSpec } from "./graph-request.js";
export { validateBusinessOffer, type OfferRules } from "./sdp-validation.js";
export { inferBusinessAnswer, META_OPUS_FMTP, META_PLACEHOLDER_MSID } from "./sdp-meta-style.js";
export { loopbackIceConfig, LOOPBACK_HOST } from "./loopback-ice.js";
export { LoopbackStunServer } from "./stun-server.js";
export {
  ConsumerClosedError,
  ConsumerNegotiationError,
  SimCallEndedError,
  SimStateError,
  SimTimeoutError,
  SimulatorError,
} from "./errors.js";
