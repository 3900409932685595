import type { CallRecord } from "./call-record.js";
import type { CallEnd } from "./call-rules.js";
import type { SimConsumer } from "./consumer.js";
import { SimCallEndedError, SimTimeoutError } from "./errors.js";
import type { DeliveryOptions } from "./webhook-sender.js";
import type { CallDirection, TerminateStatus } from "./webhook-events.js";

/** The call as the outside world sees it. An accept being negotiated still counts as ringing. */
export type SimCallState = "ringing" | "accepted" | "ended";

/** Points a test can wait for; `media` means the consumer has received audio packets from the business. */
export type SimCallMilestone = "accepted" | "media" | "ended";

/** Packets the consumer must have received before a call counts as having media. */
export const MEDIA_MILESTONE_PACKETS = 5;

/** What the simulator does when the consumer acts; implemented by MetaSimulator. */
export interface ConsumerActions {
  hangup(record: CallRecord, status: TerminateStatus, delivery: DeliveryOptions): Promise<number>;
  answer(record: CallRecord): Promise<void>;
  decline(record: CallRecord): Promise<number>;
  sendMediaUpdate(record: CallRecord, delivery: DeliveryOptions): Promise<number>;
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

  get consumer(): SimConsumer {
    return this.record.consumer;
  }

  get end(): CallEnd | undefined {
    return this.record.end;
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

  /** Status the gateway answered to this call's connect webhook (0 = no answer). */
  get connectWebhookStatus(): number | undefined {
    return this.record.connectWebhookStatus;
  }

  /**
   * Resolves when the call reaches `milestone`. Rejects with SimCallEndedError when the call ends
   * first (unless waiting for "ended"), and with SimTimeoutError after `timeoutMs`.
   */
  async waitForState(milestone: SimCallMilestone, timeoutMs = 10_000): Promise<void> {
    if (milestone === "media") {
      await this.waitForState("accepted", timeoutMs);
      let unsubscribe: () => void = () => undefined;
      try {
        await Promise.race([
          this.record.consumer.waitForPackets(MEDIA_MILESTONE_PACKETS, timeoutMs),
          new Promise<never>((_resolve, reject) => {
            const check = (): void => {
              if (this.record.phase === "ended") reject(new SimCallEndedError(this.id, milestone));
            };
            unsubscribe = this.record.subscribe(check);
            check();
          }),
        ]);
      } finally {
        unsubscribe();
      }
      return;
    }
    const reached = (): boolean =>
      milestone === "ended" ? this.record.phase === "ended" : this.record.phase === "accepted";
    if (reached()) return;
    if (this.record.phase === "ended") throw new SimCallEndedError(this.id, milestone);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribe();
        reject(new SimTimeoutError(`call ${this.id} did not reach "${milestone}" within ${timeoutMs} ms (state ${this.state})`));
      }, timeoutMs);
      const unsubscribe = this.record.subscribe(() => {
        if (reached()) {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        } else if (this.record.phase === "ended") {
          clearTimeout(timer);
          unsubscribe();
          reject(new SimCallEndedError(this.id, milestone));
        }
      });
    });
  }

  /** The consumer hangs up: its media stops and Meta sends a terminate webhook. Resolves with the webhook's HTTP status. */
  hangup(options: { status?: TerminateStatus; delivery?: DeliveryOptions } = {}): Promise<number> {
    return this.actions.hangup(this.record, options.status ?? "Completed", options.delivery ?? {});
  }

  /** Outbound calls: the consumer picks up (call_status accepted, then the media_update re-offer). */
  answer(): Promise<void> {
    return this.actions.answer(this.record);
  }

  /** Outbound calls: the consumer declines; Meta reports it as a terminate with status Completed. */
  decline(): Promise<number> {
    return this.actions.decline(this.record);
  }

  /** The consumer's side re-offers (mute, unmute, camera): a media_update webhook with the next version. */
  sendMediaUpdate(delivery: DeliveryOptions = {}): Promise<number> {
    return this.actions.sendMediaUpdate(this.record, delivery);
  }
}
