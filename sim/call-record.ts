import { CallLifecycle } from "./call-lifecycle.js";
import type { CallMetricsReport } from "./call-metrics.js";
import type { CallEnd, CallPhase } from "./call-rules.js";
import type { ConsumerPeer } from "./consumer-peer.js";
import type { TrackSpec } from "./graph-request.js";
import type { CallDirection } from "./webhook-events.js";

/**
 * Why the media version moved (or, for `business-tracks`, why it did not):
 * - `pickup`, `reoffer`, `video-on`, `video-off`: Meta's own offers, sent by media_update webhook;
 * - `collision`: Meta's offer that beat a business media_update;
 * - `business-offer`: a business media_update with SDP, answered;
 * - `business-tracks`: a business media_update with tracks only, which keeps the version.
 */
export type MediaUpdateReason = "pickup" | "reoffer" | "video-on" | "video-off" | "collision" | "business-offer" | "business-tracks";

export interface MediaUpdateRecord {
  /** The version after this update. */
  version: number;
  origin: "meta" | "business";
  reason: MediaUpdateReason;
  at: number;
}

/** The simulator's own bookkeeping for one call; SimCall is the read-only face tests see. */
export class CallRecord extends CallLifecycle {
  private currentPhase: CallPhase = "ringing";
  private ending: CallEnd | undefined;
  /** When the business connected (accept) or the consumer picked up an outbound call. */
  connectedAt: number | undefined;
  /** Meta's media version: 0 after the initial negotiation, +1 for every later SDP exchange. */
  mediaVersion = 0;
  /** The status the gateway answered to the connect webhook (0 when it did not answer). */
  connectWebhookStatus: number | undefined;
  /** Every media version change, and every tracks-only update, in order. */
  readonly mediaUpdates: MediaUpdateRecord[] = [];
  /** The business's latest offer that Meta applied (accept, connect or media_update). */
  businessSdp: string | undefined;
  /** Track statuses the business declared with media_update `tracks`, by msid. */
  readonly businessTracks = new Map<string, TrackSpec>();
  /** The business's call_metrics report, once one was accepted. */
  metricsReport: CallMetricsReport | undefined;

  constructor(
    readonly id: string,
    readonly psid: string,
    readonly direction: CallDirection,
    readonly consumer: ConsumerPeer,
    readonly startedAt: number,
  ) {
    super();
  }

  get phase(): CallPhase {
    return this.currentPhase;
  }

  /** Re-read after every await: the call can end while an operation on it is in flight. */
  get hasEnded(): boolean {
    return this.currentPhase === "ended";
  }

  get end(): CallEnd | undefined {
    return this.ending;
  }

  /** Records a media update; Meta's own offers move the version by one. */
  logMediaUpdate(origin: MediaUpdateRecord["origin"], reason: MediaUpdateReason): void {
    this.mediaUpdates.push({ version: this.mediaVersion, origin, reason, at: Date.now() });
  }

  moveTo(phase: Exclude<CallPhase, "ended">): void {
    if (this.currentPhase === "ended") return;
    this.currentPhase = phase;
    if (phase === "accepted") this.connectedAt ??= Date.now();
    this.notify();
  }

  /** Ends the call once; later calls are ignored. Returns false when it had already ended. */
  finish(end: CallEnd): boolean {
    if (this.currentPhase === "ended") return false;
    this.currentPhase = "ended";
    this.ending = end;
    this.clearTimers();
    this.notify();
    return true;
  }
}
