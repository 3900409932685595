/** The SIP side of the gateway: what other modules may use. */
export type {
  IncomingCallState,
  IncomingSipCall,
  IncomingSipCallEvents,
  OutgoingCallState,
  OutgoingSipCall,
  OutgoingSipCallEvents,
  PlaceCallOptions,
  ReinviteAnswer,
  SipAddress,
  ReinviteResponder,
  SipDialogCall,
  SipDialogEvents,
  SipDialogId,
  SipReferRequest,
  SipReferTarget,
  SipReplaces,
  SipEndReason,
  SipFailureKind,
  SipParty,
  SipSignaling,
  SipSignalingEvents,
  SipTransportName,
} from "./signaling.js";
export { failureKindForStatus } from "./signaling.js";
export { DigestVerifier, type DigestCredentials, type DigestVerdict } from "./digest-verifier.js";
export { EmbeddedSipSignaling, type EmbeddedSipOptions } from "./embedded/embedded-signaling.js";
export { DrachtioSipSignaling, type DrachtioSipOptions } from "./drachtio/drachtio-signaling.js";
export { createSipSignaling, SIP_BACKENDS, type SipBackendChoice, type SipSignalingOptions } from "./backend.js";
export { DEFAULT_SIP_MESSAGE_LIMITS, SIP_LIMIT_SETTINGS, type SipMessageLimits } from "./embedded/message-limits.js";
export type { SipTimers } from "./embedded/call-context.js";
export type { SipLogger } from "./logger.js";
export * from "./errors.js";
export { parseSessionExpires, parseMinSe, formatSessionExpires, type Refresher, type SessionExpires, type SessionTimer } from "./session-timer.js";
export { parseRSeq, parseRAck, formatRAck, type RAck } from "./reliable-provisional.js";
export { parseReferTo, parseReplaces, formatReplaces } from "./refer.js";
export { sipfragStatusLine, parseSipfragStatusLine, type SipfragStatus } from "./sipfrag.js";
export * from "./sdp.js";
export { PortAllocator, type BoundPortPair, type PortAllocatorOptions } from "./rtp/port-allocator.js";
export { RtpEndpoint, type RtpEndpointEvents, type RtpEndpointOptions, type RtpEndpointStats, type RtpRemote, type RtpSendOptions, type SocketAddress } from "./rtp/rtp-endpoint.js";
export { parseRtp, serializeRtp, looksLikeRtcp, type RtpPacket, type RtpPacketInit } from "./rtp/rtp-packet.js";
export { parseRtcp, serializeRtcp, type RtcpPacket, type ReportBlock } from "./rtp/rtcp-packet.js";
