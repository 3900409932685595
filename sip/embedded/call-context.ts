import type { SipLogger } from "../logger.js";
import { DEFAULT_SESSION_EXPIRES_S, RFC4028_MIN_SE_S } from "../session-timer.js";
import type { SipDialogCall } from "../signaling.js";
import type { RemoteInfo, SipRequest, SipResponse } from "./message.js";
import type { SipStack } from "./stack.js";

/** Transaction-user timers (RFC 3261 names where they exist). */
export interface SipTimers {
  /** T1, the RTT estimate: first 2xx retransmission interval. Default 500. */
  t1Ms: number;
  /** T2, the cap of the retransmission interval. Default 4000. */
  t2Ms: number;
  /** A 'reinvite' listener that has not responded by then is answered 500. Default 10000. */
  reinviteAnswerTimeoutMs: number;
  /** An incoming call neither accepted nor rejected by then is answered 480. Default 180000. */
  incomingAnswerTimeoutMs: number;
  /** Ring time when PlaceCallOptions.timeoutMs is not given. Default 120000. */
  defaultRingTimeoutMs: number;
  /**
   * Session-Expires we ask for on our INVITEs (RFC 4028), in seconds; 0 asks for none (a timer
   * the PBX asks for is still honoured). Default 1800.
   */
  sessionExpiresS: number;
  /**
   * Our Min-SE in seconds: a shorter Session-Expires is answered 422. Default 90, the RFC 4028
   * floor; lower values are for tests.
   */
  minSeS: number;
  /** How long the implicit subscription of an accepted REFER lasts without a final NOTIFY, in seconds. Default 180. */
  referSubscriptionS: number;
}

export const DEFAULT_TIMERS: SipTimers = {
  t1Ms: 500,
  t2Ms: 4000,
  reinviteAnswerTimeoutMs: 10_000,
  incomingAnswerTimeoutMs: 180_000,
  defaultRingTimeoutMs: 120_000,
  sessionExpiresS: DEFAULT_SESSION_EXPIRES_S,
  minSeS: RFC4028_MIN_SE_S,
  referSubscriptionS: 180,
};

/** A dialog as Replaces (RFC 3891 §3) and findDialog need to see it. */
export interface DialogInfo {
  call: SipDialogCall;
  phase: "early" | "confirmed" | "ending";
  /** We sent the INVITE that created it. */
  weAreUac: boolean;
}

/** Something that owns a dialog and takes the requests and stray responses addressed to it. */
export interface DialogOwner {
  handleRequest(rq: SipRequest, remote: RemoteInfo): void;
  handleStrayResponse(rs: SipResponse): void;
  dialogInfo(): DialogInfo;
}

/** A live call, as the signalling stack sees it when stopping. */
export interface LiveCall {
  /** Ends the call at once (BYE or CANCEL sent best effort) because the stack is stopping. */
  shutdown(): void;
}

/** What every call object gets from the signalling stack that created it. */
export interface CallContext {
  readonly stack: SipStack;
  readonly logger: SipLogger;
  readonly timers: SipTimers;
  registerDialog(key: string, owner: DialogOwner): void;
  /** Forgets the dialog, unless another owner has taken the key since (an early dialog confirmed). */
  unregisterDialog(key: string, owner: DialogOwner): void;
  callStarted(call: LiveCall): void;
  callEnded(call: LiveCall): void;
}
