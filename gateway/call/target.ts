import type { EventEmitter } from "node:events";
import type { VideoCodec } from "../../transcode/video/video-codec.js";
import type { RtpPacketLike } from "../../transcode/video/depacketizer.js";
import type { PbxMediaStats } from "./pbx-media.js";

/** Why the far end did not take the call. */
export type TargetFailure = "busy" | "declined" | "unreachable" | "no-answer" | "failed";

/** One audio packet of the Opus stream exchanged with the Meta leg. */
export interface OpusFrame {
  payload: Uint8Array;
  /** RTP timestamp on the 48 kHz Opus clock. */
  timestamp: number;
  /** RTP sequence number as received from Meta (toward the target only; the jitter buffer needs it). */
  sequenceNumber?: number;
  ssrc?: number;
  /** performance.now() when the packet that carried this audio entered the gateway. */
  arrivalMs: number;
}

/** A DTMF digit as RFC 4733 (or SIP INFO) carries it. */
export type Digit = "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "*" | "#" | "A" | "B" | "C" | "D";

export interface CallTargetEvents {
  /** The far end answered; media may flow. */
  answered: [];
  /** The far end refused or could not be reached before answering. */
  failed: [TargetFailure, string];
  /** The far end hung up after answering. */
  ended: [string];
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
}

/**
 * The other side of a Messenger call: what a consumer's call rings (the PBX via SIP, or the echo
 * target). The call session drives it and listens to its events; it never sees Meta.
 */
export interface CallTarget extends EventEmitter<CallTargetEvents> {
  readonly kind: string;
  /** Starts ringing the far end; the outcome arrives as answered or failed. */
  ring(info: { callId: string; psid: string }): void;
  /** Audio from the consumer. */
  sendAudio(frame: OpusFrame): void;
  /** A digit the consumer pressed, with its duration in ms. */
  sendDtmf(digit: Digit, durationMs: number): void;
  /**
   * The consumer's video started (with this codec) or stopped (undefined). A target that can show
   * video renegotiates with the far end; one that cannot ignores it.
   */
  setConsumerVideo?(codec: VideoCodec | undefined): Promise<void>;
  /** One RTP packet of the consumer's video. */
  sendVideo?(packet: RtpPacketLike, arrivalMs: number): void;
  /** The consumer needs a keyframe of the far end's video. */
  requestFarKeyframe?(): void;
  /** Media figures of the far end's leg, when it is a SIP leg with media. */
  pbxMediaStats?(): PbxMediaStats | undefined;
  /** Ends the far end's side (cancel before answer, hang up after); idempotent. */
  hangup(reason: string): Promise<void>;
}
