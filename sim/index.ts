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
export {
  WhatsAppSimulator,
  type PermissionReply,
  type PlaceWhatsAppCallOptions,
  type WhatsAppHost,
  type WhatsAppNumberConfig,
  type WhatsAppOptions,
} from "./wa-simulator.js";
export { WhatsAppCall, type WaConsumerActions } from "./wa-call.js";
export type { WaActionRecord, WaCallEnd, WaCallPhase, WaCallSdps, WaEndReason } from "./wa-call-record.js";
export { SdesWhatsAppConsumer } from "./wa-sdes-consumer.js";
export { WebRtcWhatsAppConsumer, type WaConsumerOptions, type WaConsumerState, type WhatsAppConsumer } from "./wa-consumer.js";
export type { WaConsumerStats } from "./wa-audio.js";
export { WhatsAppCode, waErrors, WHATSAPP_ERROR_HREF } from "./wa-errors.js";
export type { GraphErrorData } from "./graph-errors.js";
export {
  DEFAULT_PERMISSION_LIMITS,
  WhatsAppPermissions,
  type WaCallPermissionsResponse,
  type WaPermissionLimits,
  type WaPermissionStatus,
} from "./wa-permissions.js";
export {
  parsePermissionRequestMessage,
  parsePermissionsQuery,
  parseWhatsAppCallsBody,
  MAX_BIZ_OPAQUE_LENGTH,
  WA_CALL_ACTIONS,
  type WaUserRef,
  type WhatsAppCallAction,
  type WhatsAppCallsRequest,
} from "./wa-request.js";
export {
  answerProblem,
  offerProblem,
  parseCryptoLines,
  shapeWhatsAppSdp,
  WA_AUDIO_MID,
  WA_OPUS_FMTP,
  WA_SDES_SUITE,
  WA_TELEPHONE_EVENT_PAYLOAD_TYPE,
  type SdesCrypto,
  type SrtpKeyExchange,
} from "./wa-sdp.js";
export type { FlushOptions } from "./wa-webhook-queue.js";
export {
  batchesOf,
  MAX_UPDATES_PER_POST,
  whatsAppPayload,
  type WaBatchLayout,
  type WaCallEvent,
  type WaCallStatus,
  type WaChangeValue,
  type WaConnectEvent,
  type WaContact,
  type WaDirection,
  type WaNumberRef,
  type WaPermissionReplyMessage,
  type WaStatusEvent,
  type WaTerminateEvent,
  type WaTerminateStatus,
  type WaUpdate,
  type WaUserIdentity,
  type WaWebhookError,
  type WaWebhookPayload,
} from "./wa-webhook-events.js";
export type { GraphExtension, GraphExtensionRequest, GraphFailureKey } from "./graph-server.js";
