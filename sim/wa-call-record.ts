import { CallLifecycle } from "./call-lifecycle.js";
import type { WhatsAppConsumer } from "./wa-consumer-base.js";
import type { WhatsAppCallAction } from "./wa-request.js";
import type { WaCallStatus, WaDirection, WaNumberRef, WaTerminateStatus, WaUserIdentity } from "./wa-webhook-events.js";

/**
 * Lifecycle of a WhatsApp call at Meta:
 * - `ringing`: the user is calling (or being called); nobody has connected;
 * - `pre_accepted`: user-initiated, the business sent pre_accept and the consumer applied its answer;
 * - `accepting`: an accept is being applied; a second accept must already fail;
 * - `accepted`: connected (business accepted, or the user picked up a business call);
 * - `ended`.
 */
export type WaCallPhase = "ringing" | "pre_accepted" | "accepting" | "accepted" | "ended";

/** Why a WhatsApp call ended, in the simulator's words. */
export type WaEndReason =
  | "business-terminated"
  | "business-rejected"
  | "consumer-hung-up"
  | "consumer-declined"
  | "accept-timeout"
  | "not-answered"
  | "media-start-timeout"
  | "media-idle-timeout"
  | "negotiation-failed"
  | "simulator-stopped";

export interface WaCallEnd {
  /** Who ended it: the business (reject/terminate), the consumer, or Meta's own timers. */
  by: "business" | "consumer" | "meta";
  reason: WaEndReason;
  status: WaTerminateStatus;
  /** The code of the terminate webhook's `errors[]`, when it had one. */
  errorCode: number | undefined;
  at: number;
}

/** One Graph request the business made on this call, and how Meta answered it. */
export interface WaActionRecord {
  action: WhatsAppCallAction;
  at: number;
  /** The session's sdp_type, for actions that carry one. */
  sdpType: "offer" | "answer" | undefined;
  outcome: "ok" | "error";
  /** The Graph error code when the outcome is an error. */
  errorCode: number | undefined;
  details: string | undefined;
}

/** The SDPs of the call as Meta saw them. */
export interface WaCallSdps {
  /** User-initiated: the consumer's offer in the connect webhook. */
  consumerOffer?: string;
  preAcceptAnswer?: string;
  acceptAnswer?: string;
  /** Business-initiated: the business's offer (connect) and the consumer's answer (connect webhook). */
  businessOffer?: string;
  consumerAnswer?: string;
}

/** The simulator's bookkeeping for one WhatsApp call; WhatsAppCall is the read-only face tests see. */
export class WaCallRecord extends CallLifecycle {
  private currentPhase: WaCallPhase = "ringing";
  private ending: WaCallEnd | undefined;
  connectedAt: number | undefined;
  bizOpaque: string | undefined;
  readonly sdps: WaCallSdps = {};
  readonly actions: WaActionRecord[] = [];
  /** Statuses Meta sent by webhook (business-initiated calls), in order. */
  readonly statuses: WaCallStatus[] = [];
  /** The HTTP status the business answered the connect webhook with (0: no answer). */
  connectWebhookStatus: number | undefined;
  /** The consumer's answer applied (pre_accept or accept): the transport may connect. */
  answerApplied = false;
  /** The answer being applied (pre_accept or accept): a concurrent action waits for it. */
  answering: Promise<void> | undefined;
  /**
   * User-initiated calls: RTP packets the consumer had from the business when Meta took the accept. The
   * business should only send once accept's 200 arrives (§2.6), so anything here came too early.
   */
  businessPacketsBeforeAccept: number | undefined;

  constructor(
    readonly id: string,
    readonly number: WaNumberRef,
    readonly user: WaUserIdentity,
    readonly direction: WaDirection,
    readonly consumer: WhatsAppConsumer,
    readonly startedAt: number,
  ) {
    super();
  }

  get phase(): WaCallPhase {
    return this.currentPhase;
  }

  get hasEnded(): boolean {
    return this.currentPhase === "ended";
  }

  get end(): WaCallEnd | undefined {
    return this.ending;
  }

  moveTo(phase: Exclude<WaCallPhase, "ended">): void {
    if (this.currentPhase === "ended") return;
    this.currentPhase = phase;
    if (phase === "accepted") this.connectedAt ??= Date.now();
    this.notify();
  }

  finish(end: WaCallEnd): boolean {
    if (this.currentPhase === "ended") return false;
    this.currentPhase = "ended";
    this.ending = end;
    this.clearTimers();
    this.notify();
    return true;
  }

  logAction(entry: Omit<WaActionRecord, "at">): void {
    this.actions.push({ ...entry, at: Date.now() });
  }
}
