import type { EventEmitter } from "node:events";
import type { SipReferRequest } from "../../sip/signaling.js";
import type { RtpPacketLike } from "../../transcode/video/depacketizer.js";
import type { VideoCodec } from "../../transcode/video/video-codec.js";
import type { PbxMediaStats } from "./pbx-media.js";
import type { Digit, OpusFrame } from "./target.js";

export interface FarMediaEvents {
  /** Audio for the consumer. */
  audio: [OpusFrame];
  /** A digit the far end pressed. */
  dtmf: [Digit, number];
  /** The far end needs a keyframe of the consumer's video. */
  keyframeRequest: [];
  /**
   * The far end starts (true) or stops (false) sending video; `done` says whether the consumer
   * side took it, and the far end is answered accordingly.
   */
  farVideo: [boolean, (accepted: boolean) => void];
  /** One H.264 RTP payload of the far end's video, for the consumer. */
  video: [{ payload: Buffer; timestamp: number; marker: boolean }];
  /** The far end's media stopped while it should be sending (a PBX that died without BYE). */
  silent: [string];
  /** An exception in the far end's handling of one of its events: the call it belongs to must end. */
  fault: [unknown];
  /** The far end asks the call to be transferred (a SIP REFER), not yet answered. */
  refer: [SipReferRequest];
}

/**
 * The media of the party a consumer is bridged to, once it has answered: a SIP leg with its RTP
 * (either call direction), or the echo. The call's media session drives it; it never sees Meta.
 */
export interface FarMedia extends EventEmitter<FarMediaEvents> {
  /** Audio from the consumer. */
  sendAudio(frame: OpusFrame): void;
  /** A digit the consumer pressed, with its duration in ms. */
  sendDtmf(digit: Digit, durationMs: number): void;
  /**
   * The consumer's video started (with this codec) or stopped (undefined). A far end that can show
   * video renegotiates; one that cannot ignores it.
   */
  setConsumerVideo?(codec: VideoCodec | undefined): Promise<void>;
  /** One RTP packet of the consumer's video. */
  sendVideo?(packet: RtpPacketLike, arrivalMs: number): void;
  /** The consumer needs a keyframe of the far end's video. */
  requestKeyframe?(): void;
  /** What the consumer's network takes of the far end's video, in bits per second. */
  limitVideoBitrate?(bps: number): void;
  /** Media figures, when it is a SIP leg with RTP. */
  stats?(): PbxMediaStats | undefined;
  /** Releases ports, processes and timers; idempotent. */
  close(): Promise<void>;
}
