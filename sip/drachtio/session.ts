import type { DialogListeners } from "../dialog-events.js";
import { SipCallStateError, SipHeaderError, SipRequestError } from "../errors.js";
import { answerOffer } from "../listener-answer.js";
import type { SipLogger } from "../logger.js";
import { parseReferTo } from "../refer.js";
import { glareDelayMs, overlapRetryAfter, reinviteRetryDelayMs, SessionTimeouts } from "../session-timeouts.js";
import type { ReinviteAnswer, SipDialogId, SipEndReason, SipReferTarget } from "../signaling.js";
import { ALLOWED_METHODS, DigestAnswers } from "./message.js";
import { ReferSubscription, type ReferHost } from "../refer-subscription.js";
import { requestInDialog, type SrfDialog, type SrfRequest, type SrfResponse, type SrfServerResponse } from "./srf.js";

/** drachtio-server runs session timers itself: no refresh is reported. */
export type SessionHooks = Omit<DialogListeners, "onRefreshed">;

export interface SessionOptions {
  callId: string;
  localSdp: string;
  remoteSdp: string | undefined;
  credentials: { username: string; password: string } | undefined;
  /** We generated the Call-ID (we placed the call): decides the 491 back-off range. */
  ownsCallId: boolean;
  /** We answered the INVITE: a BYE drachtio-server sends on its own before our ACK means no ACK came. */
  awaitingAck: boolean;
  userAgent: string;
  logger: SipLogger;
  reinviteAnswerTimeoutMs: number;
  /** How long the implicit subscription of an accepted REFER lasts. */
  referSubscriptionS: number;
  hooks: SessionHooks;
}

export type SessionState = "active" | "terminating" | "terminated";

/**
 * The answered part of a call on drachtio-srf, the same whichever side placed it: BYE both ways,
 * re-INVITE both ways (one INVITE transaction at a time, 491 for glare with the RFC 3261 §14.1
 * retry, 500 + Retry-After for overlapping offers), INFO both ways, in-dialog OPTIONS.
 * drachtio-server keeps the dialog state, retransmits our 2xx and times out the ACK.
 */
export class DrachtioSession {
  state: SessionState = "active";
  localSdp: string;
  remoteSdp: string | undefined;
  private readonly auth: DigestAnswers;
  private incomingInvite: { respond: (a: ReinviteAnswer) => void } | undefined;
  private outgoingInvite = false;
  private acked: boolean;
  /** We answered an offerless re-INVITE with an offer; its ACK brings the answer. */
  private answerInAck = false;
  private ackWaiters: ((acked: boolean) => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private reinviteChain: Promise<unknown> = Promise.resolve();
  private hangupPromise: Promise<void> | undefined;
  private readonly timeouts: SessionTimeouts;
  private readonly refers = new Set<ReferSubscription>();
  private endedResolve!: (reason: SipEndReason) => void;
  private readonly ended: Promise<SipEndReason>;

  constructor(
    readonly dialog: SrfDialog,
    private readonly o: SessionOptions,
  ) {
    this.localSdp = o.localSdp;
    this.remoteSdp = o.remoteSdp;
    this.acked = !o.awaitingAck;
    this.auth = new DigestAnswers(o.credentials);
    this.ended = new Promise((resolve) => (this.endedResolve = resolve));
    this.timeouts = new SessionTimeouts(this.ended);
    dialog.on("ack", (req) => this.onAck(req));
    dialog.on("destroy", (req) => this.onRemoteBye(req));
    dialog.on("modify", (req, res) => this.onReinvite(req, res));
    // drachtio-srf would answer an UPDATE with the old SDP: an offer in one is a re-INVITE's offer
    // (RFC 3311), one without is a session refresh.
    dialog.on("update", (req, res) => {
      if (req.body) this.onReinvite(req, res, "update");
      else this.send(res, 200);
    });
    // drachtio-srf would accept a REFER (200) with nobody to carry out the transfer.
    dialog.on("refer", (req, res) => this.onRefer(req, res));
    // We never subscribe nor send REFER (RFC 6665 §4.1.3); drachtio-srf would answer 200.
    dialog.on("notify", (_req, res) => this.send(res, 481, "Subscription Does Not Exist"));
    dialog.on("info", (req, res) => {
      this.send(res, 200);
      this.o.hooks.onInfo(req.get("content-type") ?? "", req.body ?? "");
    });
    dialog.on("options", (_req, res) => this.send(res, 200, { headers: { Allow: ALLOWED_METHODS, Accept: "application/sdp" } }));
  }

  get sipCallId(): string {
    return this.dialog.sip.callId;
  }

  get dialogId(): SipDialogId {
    const { callId, localTag, remoteTag } = this.dialog.sip;
    return { callId, localTag, remoteTag };
  }

  private get ids(): [string, string] {
    return [this.o.callId, this.sipCallId];
  }

  /** Resolves true on the ACK for our 2xx, false when the call ends first. */
  awaitAck(): Promise<boolean> {
    if (this.acked) return Promise.resolve(true);
    if (this.state === "terminated") return Promise.resolve(false);
    return new Promise((resolve) => this.ackWaiters.push(resolve));
  }

  private onAck(req: SrfRequest): void {
    // Our 2xx carried an offer (its INVITE or re-INVITE had none): the ACK carries the answer.
    if (req.body && (!this.acked || this.answerInAck)) this.remoteSdp = req.body;
    this.answerInAck = false;
    if (this.acked) return;
    this.acked = true;
    this.settleAck(true);
  }

  private settleAck(acked: boolean): void {
    const waiters = this.ackWaiters;
    this.ackWaiters = [];
    for (const w of waiters) w(acked);
  }

  private onRemoteBye(req: SrfRequest): void {
    if (this.state === "terminated") return;
    this.incomingInvite?.respond({ status: 487, reason: "Request Terminated" });
    // drachtio-server sends BYE itself (and tells us, as from the application) when our 2xx was
    // never acknowledged.
    if (req.source === "application") {
      this.o.logger.warn({ callId: this.o.callId, sipCallId: this.sipCallId }, this.acked ? "drachtio-server ended the dialog" : "no ACK for our 2xx; drachtio-server ended the call");
      this.terminate(this.acked ? "dialog-lost" : "ack-timeout");
      return;
    }
    this.terminate("remote-bye");
  }

  private onReinvite(req: SrfRequest, res: SrfServerResponse, kind: "invite" | "update" = "invite"): void {
    if (this.state !== "active") {
      this.send(res, 481, "Call/Transaction Does Not Exist");
      return;
    }
    if (this.outgoingInvite) {
      this.send(res, 491, "Request Pending");
      return;
    }
    if (this.incomingInvite) {
      this.send(res, 500, "Server Internal Error", { headers: { "Retry-After": overlapRetryAfter() } });
      return;
    }
    const offer = req.body ?? "";
    const method = kind === "update" ? "UPDATE" : "re-INVITE";
    answerOffer({
      timeoutMs: this.o.reinviteAnswerTimeoutMs,
      timers: this.timeouts,
      settle: () => {
        this.incomingInvite = undefined;
        this.notifyIdle();
        return this.state !== "terminated";
      },
      refuse: (status, reason) => this.send(res, status, reason),
      accept: (answer) => {
        this.localSdp = answer;
        if (offer) this.remoteSdp = offer;
        else this.answerInAck = true;
        this.send(res, 200, {
          headers: { "Content-Type": "application/sdp", Contact: this.dialog.local.contact, Allow: ALLOWED_METHODS },
          body: answer,
        });
      },
      hold: (respond) => (this.incomingInvite = { respond }),
      deliver: (respond) => (kind === "update" ? this.o.hooks.onUpdate(offer, respond) : this.o.hooks.onReinvite(offer, respond)),
      threw: (err) => this.o.logger.error({ err, callId: this.o.callId, sipCallId: this.sipCallId }, `${method} listener threw`),
      fallback: () => this.localSdp,
    });
  }

  private onRefer(req: SrfRequest, res: SrfServerResponse): void {
    if (this.state !== "active") {
      this.send(res, 481, "Call/Transaction Does Not Exist");
      return;
    }
    const text = req.get("refer-to");
    if (text === undefined) {
      this.send(res, 400, "Missing Refer-To");
      return;
    }
    let target: SipReferTarget;
    try {
      target = parseReferTo(text);
    } catch (err) {
      if (!(err instanceof SipHeaderError)) throw err;
      this.o.logger.warn({ sipCallId: this.sipCallId, err: err.message }, "REFER with an unreadable Refer-To");
      this.send(res, 400, "Bad Refer-To");
      return;
    }
    const request = new ReferSubscription(this.referHost(req, res), target, req.get("referred-by"), this.o.referSubscriptionS, this.o.reinviteAnswerTimeoutMs);
    this.refers.add(request);
    let listened = false;
    try {
      listened = this.o.hooks.onRefer(request);
    } catch (err) {
      this.o.logger.error({ err, sipCallId: this.sipCallId }, "REFER listener threw");
      request.reject(500, "Server Internal Error");
      return;
    }
    if (!listened) request.reject(603, "Decline");
  }

  private referHost(req: SrfRequest, res: SrfServerResponse): ReferHost {
    const isActive = (): boolean => this.state === "active";
    const seq = Number.parseInt(req.get("cseq") ?? "", 10);
    return {
      logger: this.o.logger,
      ids: this.ids,
      get active() {
        return isActive();
      },
      header: (name) => req.get(name),
      cseq: Number.isFinite(seq) ? seq : undefined,
      respond: (status, reason, noSubscription) =>
        this.send(res, status, reason, { headers: { Contact: this.dialog.local.contact, ...(noSubscription ? { "Refer-Sub": "false" } : {}) } }),
      sendNotify: (event, subscriptionState, sipfrag) =>
        this.request("NOTIFY", { Event: event, "Subscription-State": subscriptionState, "Content-Type": "message/sipfrag;version=2.0" }, sipfrag, false, false),
    };
  }

  /** Sends BYE and ends the session. */
  hangup(): Promise<void> {
    if (this.state === "terminated") return Promise.resolve();
    this.hangupPromise ??= (async () => {
      this.state = "terminating";
      this.incomingInvite?.respond({ status: 487, reason: "Request Terminated" });
      await new Promise<void>((resolve) => {
        try {
          this.dialog.destroy({ headers: { "User-Agent": this.o.userAgent } }, (err) => {
            if (err) this.o.logger.debug({ err, sipCallId: this.sipCallId }, "BYE failed; ending anyway");
            resolve();
          });
        } catch (err) {
          this.o.logger.debug({ err, sipCallId: this.sipCallId }, "BYE could not be sent; ending anyway");
          resolve();
        }
        // The BYE's response is lost with the connection if drachtio-server goes away meanwhile.
        void this.ended.then(() => resolve());
      });
      this.terminate("local-bye");
    })();
    return this.hangupPromise;
  }

  /** BYE sent without waiting, ended now (the signalling is stopping). */
  shutdown(): void {
    if (this.state === "terminated") return;
    if (this.state === "active") {
      try {
        this.dialog.destroy({ headers: { "User-Agent": this.o.userAgent } }, () => {});
      } catch {
        // best effort: the connection may already be gone
      }
    }
    this.terminate("stopped");
  }

  reinvite(sdp: string): Promise<string> {
    const run = this.reinviteChain.then(() => this.reinviteNow(sdp));
    this.reinviteChain = run.catch(() => {});
    return run;
  }

  private async reinviteNow(sdp: string): Promise<string> {
    const maxAttempts = 4;
    for (let attempt = 1; ; attempt++) {
      await this.waitUntilNoIncomingInvite();
      if (this.state !== "active") throw new SipCallStateError(...this.ids, `cannot re-INVITE a ${this.state} call`);
      this.outgoingInvite = true;
      let rs: SrfResponse;
      try {
        rs = await this.request("INVITE", { "Content-Type": "application/sdp", Contact: this.dialog.local.contact, Allow: ALLOWED_METHODS }, sdp);
      } finally {
        this.outgoingInvite = false;
        this.notifyIdle();
      }
      if (rs.status >= 200 && rs.status < 300) {
        this.localSdp = sdp;
        if (rs.body) this.remoteSdp = rs.body;
        return rs.body ?? "";
      }
      const retryMs = reinviteRetryDelayMs(rs.status, rs.get("Retry-After"), () => glareDelayMs(this.o.ownsCallId));
      if (retryMs !== undefined && attempt < maxAttempts) {
        await this.timeouts.sleep(retryMs);
        continue;
      }
      throw new SipRequestError(...this.ids, "INVITE", rs.status, rs.reason);
    }
  }

  async sendInfo(contentType: string, body: string): Promise<number> {
    if (this.state !== "active") throw new SipCallStateError(...this.ids, `cannot send INFO on a ${this.state} call`);
    const rs = await this.request("INFO", { "Content-Type": contentType }, body);
    if (rs.status >= 300) throw new SipRequestError(...this.ids, "INFO", rs.status, rs.reason);
    return rs.status;
  }

  /**
   * An in-dialog request and its final response, answering one digest challenge. A 481 or 408
   * means the dialog is gone (§12.2.1.2) and ends the session; a request that cannot be sent (no
   * connection to drachtio-server) is reported as 503.
   */
  private async request(method: string, headers: Record<string, string>, body: string | undefined, retry = false, dialogUsage = true): Promise<SrfResponse> {
    const sent = new Promise<SrfResponse>((resolve) => {
      const all = { "User-Agent": this.o.userAgent, ...headers };
      try {
        requestInDialog(this.dialog, method, all, body, (err, res) => resolve(err || !res ? localFailure(503, err?.message ?? "Not Sent") : res));
      } catch (err) {
        resolve(localFailure(503, (err as Error).message));
      }
    });
    const rs = await Promise.race([sent, this.ended.then((reason) => localFailure(487, `Call Ended (${reason})`))]);
    if ((rs.status === 401 || rs.status === 407) && !retry && this.state !== "terminated") {
      const auth = this.auth.answer(rs, method, this.dialog.remote.uri);
      if (auth) return this.request(method, { ...headers, [auth.header]: auth.value }, body, true, dialogUsage);
    }
    // A NOTIFY's 481 or 408 ends only its subscription (RFC 5057 §5.2), not the call.
    if ((rs.status === 481 || rs.status === 408) && dialogUsage && this.state === "active") {
      this.o.logger.warn({ callId: this.o.callId, sipCallId: this.sipCallId, method, status: rs.status }, "dialog lost");
      this.terminate("dialog-lost");
    }
    return rs;
  }

  private waitUntilNoIncomingInvite(): Promise<void> {
    if (!this.incomingInvite) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.incomingInvite || this.outgoingInvite) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Ends the session: timers cleared, drachtio-srf's listeners dropped, the owner told once. */
  terminate(reason: SipEndReason): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    this.timeouts.clearAll();
    this.settleAck(false);
    for (const r of this.refers) r.dialogEnded();
    this.refers.clear();
    this.endedResolve(reason);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
    this.o.hooks.onEnded(reason);
  }

  private send(res: SrfServerResponse, status: number, reasonOrOpts?: string | { headers?: Record<string, string>; body?: string }, opts?: { headers?: Record<string, string>; body?: string }): void {
    const reason = typeof reasonOrOpts === "string" ? reasonOrOpts : undefined;
    const o = (typeof reasonOrOpts === "string" ? opts : reasonOrOpts) ?? {};
    const withUa = { ...o, headers: { "User-Agent": this.o.userAgent, ...o.headers } };
    try {
      if (reason !== undefined) res.send(status, reason, withUa);
      else res.send(status, withUa);
    } catch (err) {
      this.o.logger.debug({ err, sipCallId: this.sipCallId, status }, "response could not be sent");
    }
  }
}

/** A final response made up here for a request that got none. */
function localFailure(status: number, reason: string): SrfResponse {
  return {
    status,
    reason,
    body: "",
    raw: "",
    source: "application",
    source_address: "",
    source_port: 0,
    protocol: "",
    get: () => undefined,
    has: () => false,
  };
}
