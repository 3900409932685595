import { waitForMilestone, type SimCallMilestone } from "./call-lifecycle.js";
import type { SimCallState } from "./sim-call.js";
import type { WaActionRecord, WaCallEnd, WaCallRecord, WaCallSdps } from "./wa-call-record.js";
import type { WhatsAppConsumer } from "./wa-consumer-base.js";
import type { DeliveryOptions } from "./webhook-sender.js";
import type { WaCallStatus, WaDirection, WaUserIdentity } from "./wa-webhook-events.js";

/** What the simulator does when the consumer of a WhatsApp call acts; implemented by WhatsAppSimulator. */
export interface WaConsumerActions {
  hangup(record: WaCallRecord, delivery: DeliveryOptions): Promise<number>;
  answer(record: WaCallRecord): Promise<void>;
  decline(record: WaCallRecord): Promise<void>;
}

/** A WhatsApp call as tests see it; the same shape as SimCall where the platforms agree. */
export class WhatsAppCall {
  constructor(
    private readonly record: WaCallRecord,
    private readonly actions: WaConsumerActions,
  ) {}

  get id(): string {
    return this.record.id;
  }

  get direction(): WaDirection {
    return this.record.direction;
  }

  get phoneNumberId(): string {
    return this.record.number.phoneNumberId;
  }

  /** The consumer's identity: BSUID, phone (absent for username-only users), profile name. */
  get user(): WaUserIdentity {
    return this.record.user;
  }

  get state(): SimCallState {
    const phase = this.record.phase;
    return phase === "ended" ? "ended" : phase === "accepted" ? "accepted" : "ringing";
  }

  /** Meta's finer-grained phase (pre_accepted, accepting...). */
  get phase(): WaCallRecord["phase"] {
    return this.record.phase;
  }

  get consumer(): WhatsAppConsumer {
    return this.record.consumer;
  }

  get end(): WaCallEnd | undefined {
    return this.record.end;
  }

  /** Every Graph action the business took on this call, with Meta's outcome. */
  get actionLog(): readonly WaActionRecord[] {
    return this.record.actions;
  }

  /** Statuses Meta sent by webhook for this (business-initiated) call. */
  get statuses(): readonly WaCallStatus[] {
    return this.record.statuses;
  }

  get sdps(): Readonly<WaCallSdps> {
    return this.record.sdps;
  }

  /** The business's `biz_opaque_callback_data`, as Meta echoes it. */
  get bizOpaqueCallbackData(): string | undefined {
    return this.record.bizOpaque;
  }

  /** User-initiated calls: RTP packets from the business before Meta took its accept (0 when it waited, as it should). */
  get businessPacketsBeforeAccept(): number | undefined {
    return this.record.businessPacketsBeforeAccept;
  }

  get startedAt(): number {
    return this.record.startedAt;
  }

  get connectedAt(): number | undefined {
    return this.record.connectedAt;
  }

  /** Status the business answered the user-initiated connect webhook with (0 = no answer). */
  get connectWebhookStatus(): number | undefined {
    return this.record.connectWebhookStatus;
  }

  /**
   * Resolves when the call reaches `milestone` ("media": accepted and the consumer has received audio
   * packets from the business). Rejects with SimCallEndedError when it ends first, SimTimeoutError on time.
   */
  waitForState(milestone: SimCallMilestone, timeoutMs = 10_000): Promise<void> {
    const record = this.record;
    return waitForMilestone(
      {
        id: record.id,
        record,
        isAccepted: () => record.phase === "accepted",
        waitForPackets: (count, ms) => record.consumer.waitForPackets(count, ms),
        describe: () => `phase ${record.phase}`,
      },
      milestone,
      timeoutMs,
    );
  }

  /** The user hangs up: media stops and Meta sends a terminate webhook (COMPLETED). Resolves with its HTTP status. */
  hangup(options: { delivery?: DeliveryOptions } = {}): Promise<number> {
    return this.actions.hangup(this.record, options.delivery ?? {});
  }

  /** Business-initiated calls: the user picks up (status ACCEPTED; the consumer's voice starts). */
  answer(): Promise<void> {
    return this.actions.answer(this.record);
  }

  /** Business-initiated calls: the user declines (status REJECTED, then a terminate webhook). */
  decline(): Promise<void> {
    return this.actions.decline(this.record);
  }
}
