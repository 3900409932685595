import type { CallMetricsReport } from "./call-metrics.js";
import type { CallRecord, MediaUpdateRecord } from "./call-record.js";
import type { CallEnd } from "./call-rules.js";
import type { VideoSendOptions } from "./consumer-video.js";
import type { ConsumerPeer } from "./consumer-peer.js";
import { SimConsumer } from "./consumer.js";
import type { TrackSpec } from "./graph-request.js";
import { waitForMilestone, type SimCallMilestone } from "./call-lifecycle.js";
import { SimStateError } from "./errors.js";
import type { DeliveryOptions } from "./webhook-sender.js";
import type { CallDirection, TerminateStatus } from "./webhook-events.js";

/** The call as the outside world sees it. An accept being negotiated still counts as ringing. */
export type SimCallState = "ringing" | "accepted" | "ended";

export { MEDIA_MILESTONE_PACKETS, type SimCallMilestone } from "./call-lifecycle.js";

/** What the simulator does when the consumer acts; implemented by MetaSimulator. */
export interface ConsumerActions {
  hangup(record: CallRecord, status: TerminateStatus, delivery: DeliveryOptions): Promise<number>;
  answer(record: CallRecord, options: AnswerOptions): Promise<void>;
  decline(record: CallRecord): Promise<number>;
  sendMediaUpdate(record: CallRecord, delivery: DeliveryOptions): Promise<number>;
  startVideo(record: CallRecord, options: VideoSendOptions, delivery: DeliveryOptions): Promise<number>;
  stopVideo(record: CallRecord, delivery: DeliveryOptions): Promise<number>;
}

export interface AnswerOptions {
  /**
   * false: Meta's pickup re-offer never comes (a fault seen from outside): the business gets
   * `call_status: accepted` and then nothing of the consumer's media.
   */
  pickupReoffer?: boolean;
}

export class SimCall {
  constructor(
    private readonly record: CallRecord,
    private readonly actions: ConsumerActions,
  ) {}

  get id(): string {
    return this.record.id;
  }

  get psid(): string {
    return this.record.psid;
  }

  get direction(): CallDirection {
    return this.record.direction;
  }

  get state(): SimCallState {
    const phase = this.record.phase;
    return phase === "accepting" ? "ringing" : phase;
  }

  /** The simulator's werift consumer; a call placed with another consumer (`placeCall({ consumer })`) has none: see `peer`. */
  get consumer(): SimConsumer {
    const consumer = this.record.consumer;
    if (!(consumer instanceof SimConsumer)) throw new SimStateError(`call ${this.id} has its own consumer, not the simulator's: use call.peer`);
    return consumer;
  }

  /** Whatever plays the consumer on this call: the werift SimConsumer, or the one given to placeCall. */
  get peer(): ConsumerPeer {
    return this.record.consumer;
  }

  get end(): CallEnd | undefined {
    return this.record.end;
  }

  /** The business's call_metrics report, once the simulator accepted one (at most one per call). */
  get metricsReport(): CallMetricsReport | undefined {
    return this.record.metricsReport;
  }

  get mediaVersion(): number {
    return this.record.mediaVersion;
  }

  get startedAt(): number {
    return this.record.startedAt;
  }

  get connectedAt(): number | undefined {
    return this.record.connectedAt;
  }

  /** Every media version change (and tracks-only update), in order. */
  get mediaUpdates(): readonly MediaUpdateRecord[] {
    return this.record.mediaUpdates;
  }

  /** Track statuses the business declared in media_update `tracks`, latest per msid. */
  get businessTracks(): TrackSpec[] {
    return [...this.record.businessTracks.values()];
  }

  /** Status the gateway answered to this call's connect webhook (0 = no answer). */
  get connectWebhookStatus(): number | undefined {
    return this.record.connectWebhookStatus;
  }

  /**
   * Resolves when the call reaches `milestone`. Rejects with SimCallEndedError when the call ends
   * first (unless waiting for "ended"), and with SimTimeoutError after `timeoutMs`.
   */
  waitForState(milestone: SimCallMilestone, timeoutMs = 10_000): Promise<void> {
    const record = this.record;
    return waitForMilestone(
      {
        id: record.id,
        record,
        isAccepted: () => record.phase === "accepted",
        waitForPackets: (count, ms) => record.consumer.waitForPackets(count, ms),
        describe: () => `state ${this.state}`,
      },
      milestone,
      timeoutMs,
    );
  }

  /** The consumer hangs up: its media stops and Meta sends a terminate webhook. Resolves with the webhook's HTTP status. */
  hangup(options: { status?: TerminateStatus; delivery?: DeliveryOptions } = {}): Promise<number> {
    return this.actions.hangup(this.record, options.status ?? "Completed", options.delivery ?? {});
  }

  /** Outbound calls: the consumer picks up (call_status accepted, then the media_update re-offer). */
  answer(options: AnswerOptions = {}): Promise<void> {
    return this.actions.answer(this.record, options);
  }

  /** Outbound calls: the consumer declines; Meta reports it as a terminate with status Completed. */
  decline(): Promise<number> {
    return this.actions.decline(this.record);
  }

  /** The consumer's side re-offers (mute, unmute, camera): a media_update webhook with the next version. */
  sendMediaUpdate(delivery: DeliveryOptions = {}): Promise<number> {
    return this.actions.sendMediaUpdate(this.record, delivery);
  }

  /**
   * The consumer turns the camera on: Meta appends a placeholder video m-line (msid D3F4U1T_F8_TR4CK, no
   * ssrc) and a sendonly video m-line with `options.codec`, sends them in a media_update webhook with the
   * next version and starts the clip once DTLS is up. Before Meta's first re-offer (ringing, not picked up)
   * no webhook is sent: that re-offer carries the video instead. Resolves with the webhook's HTTP status, 0
   * when none was sent.
   */
  startVideo(options: VideoSendOptions, delivery: DeliveryOptions = {}): Promise<number> {
    return this.actions.startVideo(this.record, options, delivery);
  }

  /** The consumer turns the camera off: frames stop and a media_update webhook sets both video m-lines inactive. */
  stopVideo(delivery: DeliveryOptions = {}): Promise<number> {
    return this.actions.stopVideo(this.record, delivery);
  }
}
