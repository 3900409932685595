import { SipArgumentError, SipCallStateError, SipHeaderError, SipRequestError } from "./errors.js";
import type { SipLogger } from "./logger.js";
import type { SipReferRequest, SipReferTarget } from "./signaling.js";
import { parseSipfragStatusLine } from "./sipfrag.js";

/** What a REFER needs from the dialog it arrived in, whichever backend carries it. */
export interface ReferHost {
  readonly logger: SipLogger;
  readonly ids: [callId: string, sipCallId: string];
  /** The dialog can still carry a NOTIFY. */
  readonly active: boolean;
  /** A header of the REFER, unfolded text. */
  header(name: string): string | undefined;
  /** The REFER's CSeq number: the `id` of the NOTIFYs' Event (RFC 3515 §2.4.6). */
  readonly cseq: number | undefined;
  /** Answers the REFER; `noSubscription` adds `Refer-Sub: false` (RFC 4488). */
  respond(status: number, reason: string, noSubscription?: boolean): void;
  /**
   * An in-dialog NOTIFY with these Event and Subscription-State values and a message/sipfrag body;
   * a 481 or 408 to it ends the subscription, never the dialog (RFC 5057 §5.2).
   */
  sendNotify(event: string, subscriptionState: string, sipfrag: string): Promise<{ status: number; reason: string }>;
}

/**
 * A received REFER (RFC 3515) and the implicit subscription it creates once accepted: 202, then
 * NOTIFYs one at a time carrying the new call's progress, the last one `terminated`. When the
 * subscription runs out before the final NOTIFY, a `terminated;reason=timeout` NOTIFY closes it
 * (RFC 6665 §4.2.2). `Refer-Sub: false` (RFC 4488) is honoured: no subscription, no NOTIFY.
 */
export class ReferSubscription implements SipReferRequest {
  readonly subscription: boolean;
  private answer: "none" | "accepted" | "rejected" = "none";
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();
  private lastFrag = "SIP/2.0 100 Trying";
  private expiresAt = 0;
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly guard: NodeJS.Timeout;
  private readonly eventHeader: string;

  constructor(
    private readonly host: ReferHost,
    readonly referTo: SipReferTarget,
    readonly referredBy: string | undefined,
    private readonly subscriptionS: number,
    answerTimeoutMs: number,
  ) {
    this.subscription = (host.header("refer-sub") ?? "").trim().toLowerCase() !== "false";
    this.eventHeader = host.cseq === undefined ? "refer" : `refer;id=${host.cseq}`;
    this.guard = setTimeout(() => {
      if (this.answer !== "none") return;
      host.logger.warn({ sipCallId: host.ids[1] }, "REFER neither accepted nor rejected; answering 500");
      this.reject(500, "No Answer From Application");
    }, answerTimeoutMs);
  }

  header(name: string): string | undefined {
    return this.host.header(name);
  }

  accept(): void {
    if (this.answer !== "none") return;
    this.answer = "accepted";
    clearTimeout(this.guard);
    if (!this.host.active) return;
    this.host.respond(202, "Accepted", !this.subscription);
    if (!this.subscription) {
      this.closed = true;
      return;
    }
    this.expiresAt = Date.now() + this.subscriptionS * 1000;
    this.expiryTimer = setTimeout(() => this.expire(), this.subscriptionS * 1000);
  }

  reject(status: number, reason?: string): void {
    if (this.answer !== "none") return;
    this.answer = "rejected";
    this.closed = true;
    clearTimeout(this.guard);
    const code = Number.isInteger(status) && status >= 300 && status <= 699 ? status : 603;
    this.host.respond(code, reason ?? (code === 603 ? "Decline" : "Rejected"));
  }

  notify(sipfrag: string, final: boolean): Promise<void> {
    let line: string;
    try {
      const parsed = parseSipfragStatusLine(sipfrag);
      line = `SIP/2.0 ${parsed.status} ${parsed.reason}`.trimEnd();
    } catch (err) {
      const message = err instanceof SipHeaderError ? err.message : String(err);
      return Promise.reject(new SipArgumentError(`notify needs a SIP status line: ${message}`));
    }
    if (this.answer === "rejected") return Promise.reject(new SipCallStateError(...this.host.ids, "cannot NOTIFY for a rejected REFER"));
    if (this.answer === "none") return Promise.reject(new SipCallStateError(...this.host.ids, "cannot NOTIFY before the REFER is accepted"));
    if (!this.subscription) return Promise.resolve();
    if (this.closed) return Promise.reject(new SipCallStateError(...this.host.ids, "the REFER's subscription is over"));
    if (final) this.close();
    this.lastFrag = line;
    const state = final ? "terminated;reason=noresource" : undefined;
    return this.send(line, state);
  }

  /** The dialog ended: no more NOTIFYs can go out. */
  dialogEnded(): void {
    this.close();
    clearTimeout(this.guard);
  }

  private close(): void {
    this.closed = true;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }

  private expire(): void {
    this.expiryTimer = undefined;
    if (this.closed) return;
    this.close();
    this.host.logger.info({ sipCallId: this.host.ids[1] }, "REFER subscription expired before the final NOTIFY");
    this.send(this.lastFrag, "terminated;reason=timeout").catch(() => {});
  }

  /** Queues one NOTIFY behind the previous one (RFC 6665 §4.2.2: one outstanding at a time). */
  private send(frag: string, terminated: string | undefined): Promise<void> {
    const run = this.chain.then(async () => {
      if (!this.host.active) throw new SipCallStateError(...this.host.ids, "the dialog is over; NOTIFY not sent");
      const remaining = Math.max(1, Math.ceil((this.expiresAt - Date.now()) / 1000));
      const rs = await this.host.sendNotify(this.eventHeader, terminated ?? `active;expires=${remaining}`, `${frag}\r\n`);
      if (rs.status >= 300) {
        // The subscriber has dropped the subscription (RFC 6665 §4.1.3); later NOTIFYs would fail the same way.
        if (rs.status === 481 || rs.status === 408) this.close();
        throw new SipRequestError(...this.host.ids, "NOTIFY", rs.status, rs.reason);
      }
    });
    this.chain = run.catch(() => {});
    return run;
  }
}
