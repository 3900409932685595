import { SipArgumentError, SipCallStateError, SipHeaderError, SipRequestError } from "../errors.js";
import type { SipLogger } from "../logger.js";
import type { SipReferRequest, SipReferTarget } from "../signaling.js";
import { parseSipfragStatusLine } from "../sipfrag.js";
import type { SrfRequest, SrfResponse } from "./srf.js";

/** What a REFER needs from the dialog it arrived in. */
export interface DrachtioReferHost {
  readonly logger: SipLogger;
  readonly ids: [callId: string, sipCallId: string];
  /** The dialog can still carry a NOTIFY. */
  readonly active: boolean;
  /** Answers the REFER. */
  respond(status: number, reason: string, headers?: Record<string, string>): void;
  /** An in-dialog NOTIFY; a 481 or 408 to it ends the subscription, never the dialog (RFC 5057 §5.2). */
  sendNotify(headers: Record<string, string>, body: string): Promise<SrfResponse>;
}

/**
 * A received REFER (RFC 3515) on the drachtio backend, the same contract as the embedded one: 202
 * and NOTIFYs one at a time with the new call's progress, the last one `terminated`; a
 * subscription that runs out first is closed with `terminated;reason=timeout` (RFC 6665 §4.2.2);
 * `Refer-Sub: false` (RFC 4488) means no subscription and no NOTIFY.
 */
export class DrachtioReferRequest implements SipReferRequest {
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
    private readonly host: DrachtioReferHost,
    private readonly req: SrfRequest,
    readonly referTo: SipReferTarget,
    readonly referredBy: string | undefined,
    private readonly subscriptionS: number,
    answerTimeoutMs: number,
  ) {
    this.subscription = (req.get("refer-sub") ?? "").trim().toLowerCase() !== "false";
    const seq = Number.parseInt(req.get("cseq") ?? "", 10);
    this.eventHeader = Number.isFinite(seq) ? `refer;id=${seq}` : "refer";
    this.guard = setTimeout(() => {
      if (this.answer !== "none") return;
      host.logger.warn({ sipCallId: host.ids[1] }, "REFER neither accepted nor rejected; answering 500");
      this.reject(500, "No Answer From Application");
    }, answerTimeoutMs);
  }

  header(name: string): string | undefined {
    return this.req.get(name);
  }

  accept(): void {
    if (this.answer !== "none") return;
    this.answer = "accepted";
    clearTimeout(this.guard);
    if (!this.host.active) return;
    this.host.respond(202, "Accepted", this.subscription ? {} : { "Refer-Sub": "false" });
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
    return this.send(line, final ? "terminated;reason=noresource" : undefined);
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

  /** One NOTIFY behind the previous one (RFC 6665 §4.2.2: one outstanding at a time). */
  private send(frag: string, terminated: string | undefined): Promise<void> {
    const run = this.chain.then(async () => {
      if (!this.host.active) throw new SipCallStateError(...this.host.ids, "the dialog is over; NOTIFY not sent");
      const remaining = Math.max(1, Math.ceil((this.expiresAt - Date.now()) / 1000));
      const rs = await this.host.sendNotify({ Event: this.eventHeader, "Subscription-State": terminated ?? `active;expires=${remaining}` }, `${frag}\r\n`);
      if (rs.status >= 300) {
        // The subscriber dropped the subscription (RFC 6665 §4.1.3); later NOTIFYs would fail the same way.
        if (rs.status === 481 || rs.status === 408) this.close();
        throw new SipRequestError(...this.host.ids, "NOTIFY", rs.status, rs.reason);
      }
    });
    this.chain = run.catch(() => {});
    return run;
  }
}
