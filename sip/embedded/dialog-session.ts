import type { DialogListeners } from "../dialog-events.js";
import { SipCallStateError, SipHeaderError, SipRequestError } from "../errors.js";
import { answerOffer, type AnswerOfferOptions } from "../listener-answer.js";
import { parseReferTo } from "../refer.js";
import { glareDelayMs, overlapRetryAfter, reinviteRetryDelayMs, SessionTimeouts } from "../session-timeouts.js";
import {
  decideAsUas,
  expiryDelayMs,
  formatSessionExpires,
  refreshDelayMs,
  refresherParam,
  retryAfter422,
  timerFromUacResponse,
  type SessionTimer,
  type UasTimerDecision,
} from "../session-timer.js";
import type { ReinviteAnswer, SipDialogCall, SipEndReason, SipReferTarget } from "../signaling.js";
import { AnswerRetransmitter } from "./answer-retransmitter.js";
import { DigestAuthenticator } from "./authenticator.js";
import type { CallContext, DialogInfo, DialogOwner } from "./call-context.js";
import { acceptRemoteCSeq, dialogKey, inDialogRequest, refreshTarget, type Dialog } from "./dialog.js";
import { ALLOWED_METHODS, fromWire, headerText, SUPPORTED, toWire, type RemoteInfo, type SipRequest, type SipResponse } from "./message.js";
import { ReferSubscription, type ReferHost } from "../refer-subscription.js";
import type { OutgoingRequest } from "./stack.js";
import type { FlowLease } from "./transport.js";
import { allowsUpdate, minSeOf, sessionExpiresOf, timerAnswerHeaders, timerRequestOf } from "./timer-headers.js";

const SIPFRAG = "message/sipfrag;version=2.0";

/** SIP methods of the IANA registry (RFC 3261 and its extensions) that a dialog may receive. */
const KNOWN_METHODS: ReadonlySet<string> = new Set(["MESSAGE", "SUBSCRIBE", "PUBLISH", "REGISTER"]);

/** What a session reports to the call object that owns it. */
export interface SessionHooks extends DialogListeners {
  /** A PRACK that reached the confirmed dialog (late, for a reliable 1xx we sent); false: not ours (481). */
  onPrack?(rq: SipRequest): boolean;
}

export interface SessionOptions {
  callId: string;
  contact: string;
  localSdp: string;
  remoteSdp: string | undefined;
  credentials: { username: string; password: string } | undefined;
  /** We generated the Call-ID (we placed the call): decides the 491 back-off range. */
  ownsCallId: boolean;
  hooks: SessionHooks;
  /** The call object the gateway holds, for findDialog and Replaces. */
  call: SipDialogCall;
  /** The session timer the dialog-creating INVITE negotiated (RFC 4028), if any. */
  timer: SessionTimer | undefined;
  /** Min-SE in force: ours, raised by what the peer asked for or a 422 told us. */
  minSeS: number;
  /** The peer listed UPDATE in Allow: refreshes use UPDATE rather than re-INVITE. */
  peerAllowsUpdate: boolean;
  /** The INVITE or 2xx that set the dialog up: its TCP/TLS connection is held while the dialog lives. */
  origin: SipRequest | SipResponse;
}

export type SessionState = "active" | "terminating" | "terminated";

interface PendingAck {
  cseq: number;
  retransmitter: AnswerRetransmitter;
  resolve: () => void;
  reject: (err: Error) => void;
  /** We put an offer in the 2xx, so the ACK carries the answer. */
  expectsAnswer: boolean;
  /** Settles (never rejects) when the ACK arrives or will not. */
  settled: Promise<void>;
}

/**
 * The confirmed part of a call, the same whichever side placed it: BYE in both directions,
 * re-INVITE in both directions with RFC 3261 §14 rules (one INVITE transaction at a time, 491
 * for glare with the randomized retry, 500 + Retry-After for overlapping offers), UPDATE
 * (RFC 3311), session timers (RFC 4028: refresh at half the interval as refresher, BYE when the
 * peer's refresh is overdue), REFER (RFC 3515) with its NOTIFYs, INFO, in-dialog OPTIONS, and
 * retransmission of our 2xx answers until their ACK.
 */
export class DialogSession implements DialogOwner {
  state: SessionState = "active";
  localSdp: string;
  remoteSdp: string | undefined;
  private readonly key: string;
  private readonly auth: DigestAuthenticator;
  private pendingAck: PendingAck | undefined;
  /** An incoming re-INVITE we have not answered yet. */
  private incomingInvite: { rq: SipRequest; respond: (a: ReinviteAnswer) => void } | undefined;
  /** An incoming UPDATE offer we have not answered yet. */
  private incomingUpdate: { respond: (a: ReinviteAnswer) => void } | undefined;
  private outgoingInvite = false;
  private sessionTimer: SessionTimer | undefined;
  /** Bumped whenever the session timer restarts, so a refresh already overtaken is not sent. */
  private timerGeneration = 0;
  private sessionTimerHandle: NodeJS.Timeout | undefined;
  private minSeS: number;
  /** Interval a 422 demanded while no timer ran; our next INVITE/UPDATE asks for it. */
  private demandedIntervalS: number | undefined;
  private peerAllowsUpdate: boolean;
  private readonly refers = new Set<ReferSubscription>();
  private idleWaiters: (() => void)[] = [];
  /** ACKs we sent for our INVITEs' 2xx, by CSeq, to repeat when the 2xx is retransmitted. */
  private readonly sentAcks = new Map<number, OutgoingRequest>();
  private reinviteChain: Promise<unknown> = Promise.resolve();
  private hangupPromise: Promise<void> | undefined;
  private readonly timeouts: SessionTimeouts;
  private endedResolve!: (reason: SipEndReason) => void;
  /** Settles when the session ends; lets in-flight requests give up at once. */
  private readonly ended: Promise<SipEndReason>;
  /** The connection the dialog was set up on, never closed as idle and kept alive while it lives. */
  private readonly flow: FlowLease | undefined;

  constructor(
    private readonly ctx: CallContext,
    readonly dialog: Dialog,
    private readonly options: SessionOptions,
  ) {
    this.localSdp = options.localSdp;
    this.remoteSdp = options.remoteSdp;
    this.auth = new DigestAuthenticator(options.credentials);
    this.key = dialogKey(dialog.callId, dialog.localTag, dialog.remoteTag);
    this.ended = new Promise((resolve) => (this.endedResolve = resolve));
    this.timeouts = new SessionTimeouts(this.ended);
    this.minSeS = options.minSeS;
    this.peerAllowsUpdate = options.peerAllowsUpdate;
    ctx.registerDialog(this.key, this);
    this.applyTimer(options.timer, undefined);
    // A lost connection does not end the call: in-dialog requests open a new one to the peer.
    this.flow = ctx.stack.leaseFlow(options.origin, () => {
      if (this.state === "active") ctx.logger.info({ callId: options.callId, sipCallId: dialog.callId }, "SIP connection of a live call closed; later requests open a new one");
    });
  }

  private get ids(): [string, string] {
    return [this.options.callId, this.dialog.callId];
  }

  dialogInfo(): DialogInfo {
    return { call: this.options.call, phase: this.state === "active" ? "confirmed" : "ending", weAreUac: this.options.ownsCallId };
  }

  /** The session timer in force (for tests and logs). */
  get negotiatedTimer(): SessionTimer | undefined {
    return this.sessionTimer;
  }

  // ------------------------------------------------------------------------------------------
  // Our 2xx waiting for its ACK

  /**
   * Starts retransmitting a 2xx we sent (initial INVITE or re-INVITE) until the ACK with this
   * CSeq arrives. Resolves on the ACK; on timeout the session sends BYE and ends ('ack-timeout').
   */
  awaitAck(cseq: number, resend: () => void, expectsAnswer: boolean): Promise<void> {
    let settle!: () => void;
    const settled = new Promise<void>((r) => (settle = r));
    const acked = new Promise<void>((resolveAck, rejectAck) => {
      const resolve = (): void => (resolveAck(), settle());
      const reject = (err: Error): void => (rejectAck(err), settle());
      const retransmitter = new AnswerRetransmitter(resend, this.ctx.timers.t1Ms, this.ctx.timers.t2Ms, () => {
        this.pendingAck = undefined;
        reject(new SipCallStateError(...this.ids, "no ACK for our 2xx"));
        this.notifyIdle();
        this.ctx.logger.warn({ sipCallId: this.dialog.callId }, "no ACK for our 2xx; ending the call");
        void this.sendBye("ack-timeout");
      });
      this.pendingAck = { cseq, retransmitter, resolve, reject, expectsAnswer, settled };
      retransmitter.start();
    });
    return acked;
  }

  /** Remembers the ACK sent for a 2xx to our INVITE so a retransmitted 2xx gets it again. */
  rememberAck(cseq: number, ack: OutgoingRequest): void {
    this.sentAcks.set(cseq, ack);
  }

  // ------------------------------------------------------------------------------------------
  // Requests from the peer

  handleRequest(rq: SipRequest, _remote: RemoteInfo): void {
    const stack = this.ctx.stack;
    if (rq.method === "ACK") {
      this.onAck(rq);
      return;
    }
    if (this.state === "terminated") {
      stack.respond(rq, 481, "Call/Transaction Does Not Exist");
      return;
    }
    if (!acceptRemoteCSeq(this.dialog, rq)) {
      stack.respond(rq, 500, "CSeq Out of Order");
      return;
    }
    switch (rq.method) {
      case "BYE":
        stack.respond(rq, 200, "OK");
        this.incomingInvite?.respond({ status: 487, reason: "Request Terminated" });
        this.terminate("remote-bye");
        return;
      case "INVITE":
        this.onReinvite(rq);
        return;
      case "UPDATE":
        this.onUpdate(rq);
        return;
      case "REFER":
        this.onRefer(rq);
        return;
      case "PRACK":
        if (!this.options.hooks.onPrack?.(rq)) stack.respond(rq, 481, "Call/Transaction Does Not Exist");
        return;
      case "NOTIFY":
        // We never subscribe nor send REFER (RFC 6665 §4.1.3); a 481 ends only that usage.
        stack.respond(rq, 481, "Subscription Does Not Exist");
        return;
      case "INFO": {
        stack.respond(rq, 200, "OK");
        this.options.hooks.onInfo(headerText(rq, "content-type") ?? "", fromWire(rq.content));
        return;
      }
      case "OPTIONS":
        stack.respond(rq, 200, "OK", { headers: { allow: ALLOWED_METHODS, accept: "application/sdp", supported: SUPPORTED } });
        return;
      case "CANCEL":
        // A CANCEL of a re-INVITE we are still thinking about.
        stack.respond(rq, 200, "OK");
        this.incomingInvite?.respond({ status: 487, reason: "Request Terminated" });
        return;
      default:
        // RFC 3261 §8.2.1: a method we know but do not take here is 405 with Allow (as outside a
        // dialog); only one we do not know at all is 501.
        if (KNOWN_METHODS.has(rq.method.toUpperCase())) stack.respond(rq, 405, "Method Not Allowed", { headers: { allow: ALLOWED_METHODS } });
        else stack.respond(rq, 501, "Not Implemented", { headers: { allow: ALLOWED_METHODS } });
    }
  }

  private onAck(rq: SipRequest): void {
    const pending = this.pendingAck;
    if (!pending || rq.headers.cseq.seq !== pending.cseq) return;
    pending.retransmitter.stop();
    this.pendingAck = undefined;
    if (pending.expectsAnswer) {
      const body = fromWire(rq.content);
      if (body) this.remoteSdp = body;
    }
    pending.resolve();
    this.notifyIdle();
  }

  private onReinvite(rq: SipRequest): void {
    const stack = this.ctx.stack;
    if (this.outgoingInvite) {
      stack.respond(rq, 491, "Request Pending");
      return;
    }
    if (this.incomingInvite || this.pendingAck || this.incomingUpdate) {
      stack.respond(rq, 500, "Server Internal Error", { headers: { "retry-after": overlapRetryAfter() } });
      return;
    }
    const decision = this.uasTimerDecision(rq);
    if (!decision) return;
    stack.respond(rq, 100, "Trying");
    refreshTarget(this.dialog, rq);
    this.notePeerAllow(rq);
    const offer = fromWire(rq.content);
    this.offerToHooks("re-INVITE", {
      settle: () => {
        this.incomingInvite = undefined;
        return this.state !== "terminated";
      },
      refuse: (status, reason) => {
        stack.respond(rq, status, reason);
        this.notifyIdle();
      },
      accept: (answer) => {
        this.localSdp = answer;
        if (offer) this.remoteSdp = offer;
        const rs = stack.respond(rq, 200, "OK", {
          headers: this.answerHeaders(decision),
          body: answer,
          contentType: "application/sdp",
        });
        this.applyTimer(decision.kind === "timer" ? decision.timer : undefined, "remote");
        this.awaitAck(rq.headers.cseq.seq, () => stack.sendResponse(rs), offer === "").catch(() => {});
      },
      hold: (respond) => (this.incomingInvite = { rq, respond }),
      deliver: (respond) => this.options.hooks.onReinvite(offer, respond),
    });
  }

  /**
   * RFC 3311 §5.2: an UPDATE without a body refreshes the session and moves the target; one with
   * an offer is answered like a re-INVITE, refused 491 while our own offer is out and 500 with
   * Retry-After while we still owe an answer.
   */
  private onUpdate(rq: SipRequest): void {
    const stack = this.ctx.stack;
    const offer = fromWire(rq.content);
    if (offer) {
      if (this.outgoingInvite) {
        stack.respond(rq, 491, "Request Pending");
        return;
      }
      if (this.incomingInvite || this.incomingUpdate || this.pendingAck?.expectsAnswer) {
        stack.respond(rq, 500, "Server Internal Error", { headers: { "retry-after": overlapRetryAfter() } });
        return;
      }
    }
    const decision = this.uasTimerDecision(rq);
    if (!decision) return;
    refreshTarget(this.dialog, rq);
    this.notePeerAllow(rq);
    if (!offer) {
      stack.respond(rq, 200, "OK", { headers: this.answerHeaders(decision) });
      this.applyTimer(decision.kind === "timer" ? decision.timer : undefined, "remote");
      return;
    }
    this.offerToHooks("UPDATE", {
      settle: () => {
        this.incomingUpdate = undefined;
        return this.state !== "terminated";
      },
      refuse: (status, reason) => stack.respond(rq, status, reason),
      accept: (answer) => {
        this.localSdp = answer;
        this.remoteSdp = offer;
        stack.respond(rq, 200, "OK", { headers: this.answerHeaders(decision), body: answer, contentType: "application/sdp" });
        this.applyTimer(decision.kind === "timer" ? decision.timer : undefined, "remote");
      },
      hold: (respond) => (this.incomingUpdate = { respond }),
      deliver: (respond) => this.options.hooks.onUpdate(offer, respond),
    });
  }

  /** The peer's offer to the call's listeners, under the session's deadline; the current SDP when nobody listens. */
  private offerToHooks(method: "re-INVITE" | "UPDATE", o: Omit<AnswerOfferOptions, "timeoutMs" | "timers" | "threw" | "fallback">): void {
    answerOffer({
      ...o,
      timeoutMs: this.ctx.timers.reinviteAnswerTimeoutMs,
      timers: this.timeouts,
      threw: (err) => this.ctx.logger.error({ err, sipCallId: this.dialog.callId }, `${method} listener threw`),
      fallback: () => this.localSdp,
    });
  }

  private onRefer(rq: SipRequest): void {
    const stack = this.ctx.stack;
    const text = headerText(rq, "refer-to");
    if (text === undefined) {
      stack.respond(rq, 400, "Missing Refer-To");
      return;
    }
    let target: SipReferTarget;
    try {
      target = parseReferTo(fromWire(text));
    } catch (err) {
      if (!(err instanceof SipHeaderError)) throw err;
      this.ctx.logger.warn({ sipCallId: this.dialog.callId, err: err.message }, "REFER with an unreadable Refer-To");
      stack.respond(rq, 400, "Bad Refer-To");
      return;
    }
    const referredBy = headerText(rq, "referred-by");
    const request = new ReferSubscription(
      this.referHost(rq),
      target,
      referredBy === undefined ? undefined : fromWire(referredBy),
      this.ctx.timers.referSubscriptionS,
      this.ctx.timers.reinviteAnswerTimeoutMs,
    );
    this.refers.add(request);
    let listened = false;
    try {
      listened = this.options.hooks.onRefer(request);
    } catch (err) {
      this.ctx.logger.error({ err, sipCallId: this.dialog.callId }, "REFER listener threw");
      request.reject(500, "Server Internal Error");
      return;
    }
    if (!listened) request.reject(603, "Decline");
  }

  private referHost(rq: SipRequest): ReferHost {
    const isActive = (): boolean => this.state === "active";
    return {
      logger: this.ctx.logger,
      ids: this.ids,
      get active() {
        return isActive();
      },
      header: (name) => {
        const v = headerText(rq, name);
        return v === undefined ? undefined : fromWire(v);
      },
      cseq: rq.headers.cseq.seq,
      respond: (status, reason, noSubscription) =>
        this.ctx.stack.respond(rq, status, reason, { headers: { contact: this.options.contact, ...(noSubscription ? { "refer-sub": "false" } : {}) } }),
      sendNotify: (event, subscriptionState, sipfrag) =>
        this.request("NOTIFY", { headers: { event, "subscription-state": subscriptionState }, body: sipfrag, contentType: SIPFRAG }, false, { dialogUsage: false }),
    };
  }

  /** RFC 4028 §9 for a re-INVITE or UPDATE; answers 400/422 itself and returns undefined then. */
  private uasTimerDecision(rq: SipRequest): UasTimerDecision | undefined {
    let decision: UasTimerDecision;
    try {
      const timerRq = timerRequestOf(rq);
      if (timerRq.minSeS !== undefined) this.minSeS = Math.max(this.minSeS, timerRq.minSeS);
      decision = decideAsUas(timerRq, this.ctx.timers.minSeS, this.sessionTimer);
    } catch (err) {
      if (!(err instanceof SipHeaderError)) throw err;
      this.ctx.stack.respond(rq, 400, `Bad ${err.header}`);
      return undefined;
    }
    if (decision.kind === "too-small") {
      this.ctx.stack.respond(rq, 422, "Session Interval Too Small", { headers: { "Min-SE": String(decision.minSeS) } });
      return undefined;
    }
    return decision;
  }

  private answerHeaders(decision: UasTimerDecision): Record<string, string> {
    return { contact: this.options.contact, allow: ALLOWED_METHODS, supported: SUPPORTED, ...timerAnswerHeaders(decision) };
  }

  private notePeerAllow(m: SipRequest | SipResponse): void {
    const allows = allowsUpdate(m);
    if (allows !== undefined) this.peerAllowsUpdate = allows;
  }

  // ------------------------------------------------------------------------------------------
  // Session timer (RFC 4028)

  /** Restarts the session timer after a successful session-refresh transaction (or stops it). */
  private applyTimer(timer: SessionTimer | undefined, by: "local" | "remote" | undefined): void {
    this.sessionTimer = timer;
    const generation = ++this.timerGeneration;
    if (this.sessionTimerHandle) this.timeouts.clear(this.sessionTimerHandle);
    this.sessionTimerHandle = undefined;
    if (!timer || this.state !== "active") return;
    if (timer.intervalS >= this.minSeS) this.demandedIntervalS = undefined;
    this.sessionTimerHandle = timer.weRefresh
      ? this.timeouts.start(() => this.refreshSession(generation), refreshDelayMs(timer.intervalS))
      : this.timeouts.start(() => this.expire(generation), expiryDelayMs(timer.intervalS));
    if (by) {
      try {
        this.options.hooks.onRefreshed(by);
      } catch (err) {
        this.ctx.logger.error({ err, sipCallId: this.dialog.callId }, "refreshed listener threw");
      }
    }
  }

  /** Session-Expires and Min-SE on our INVITEs and UPDATEs while a timer runs (or a 422 asked for one). */
  private timerRequestHeaders(): Record<string, string> {
    const h: Record<string, string> = { supported: SUPPORTED };
    const t = this.sessionTimer;
    if (t) {
      h["session-expires"] = formatSessionExpires({ seconds: Math.max(t.intervalS, this.minSeS), refresher: refresherParam(t.weRefresh, true) });
      h["Min-SE"] = String(this.minSeS);
    } else if (this.demandedIntervalS !== undefined) {
      h["session-expires"] = String(this.demandedIntervalS);
      h["Min-SE"] = String(this.minSeS);
    }
    return h;
  }

  /** A 422 to our request: raise Min-SE to what it names, or false when that would not change anything. */
  private raiseFor422(rs: SipResponse): boolean {
    const current = this.sessionTimer ? Math.max(this.sessionTimer.intervalS, this.minSeS) : (this.demandedIntervalS ?? 0);
    const next = retryAfter422(current, minSeOf(rs));
    if (next === undefined) return false;
    this.minSeS = Math.max(this.minSeS, next);
    if (!this.sessionTimer) this.demandedIntervalS = next;
    return true;
  }

  private onUacRefreshAnswer(rs: SipResponse): void {
    this.notePeerAllow(rs);
    this.applyTimer(timerFromUacResponse(sessionExpiresOf(rs)), "local");
  }

  private refreshSession(generation: number): void {
    this.sessionTimerHandle = undefined;
    if (this.state !== "active" || generation !== this.timerGeneration) return;
    const attempt = this.peerAllowsUpdate ? this.refreshWithUpdate(generation) : this.queueReinvite(undefined, generation).then(() => true);
    attempt
      .catch((err: unknown) => {
        this.ctx.logger.debug({ err, sipCallId: this.dialog.callId }, "session refresh failed");
        return false;
      })
      .then((ok) => {
        if (ok || this.state !== "active") return;
        this.ctx.logger.warn({ sipCallId: this.dialog.callId, method: this.peerAllowsUpdate ? "UPDATE" : "INVITE" }, "session refresh failed; ending the call");
        void this.sendBye("refresh-failed");
      })
      .catch(() => {});
  }

  private async refreshWithUpdate(generation: number): Promise<boolean> {
    const maxAttempts = 4;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (this.state !== "active" || generation !== this.timerGeneration) return true;
      const rs = await this.request("UPDATE", { headers: this.timerRequestHeaders() }, false, { dialogUsage: false });
      if (rs.status >= 200 && rs.status < 300) {
        refreshTarget(this.dialog, rs);
        this.onUacRefreshAnswer(rs);
        return true;
      }
      if (rs.status === 422 && this.raiseFor422(rs)) continue;
      if (rs.status === 491 && attempt < maxAttempts) {
        await this.timeouts.sleep(this.refreshRetryDelayMs());
        continue;
      }
      this.ctx.logger.warn({ sipCallId: this.dialog.callId, status: rs.status, reason: rs.reason }, "session refresh (UPDATE) refused");
      return false;
    }
    return false;
  }

  /** A 491 to a refresh is retried sooner than §14.1 says, so the retry lands before expiry. */
  private refreshRetryDelayMs(): number {
    const intervalS = this.sessionTimer?.intervalS ?? this.minSeS;
    return Math.min(glareDelayMs(this.options.ownsCallId), refreshDelayMs(intervalS) / 4);
  }

  private expire(generation: number): void {
    this.sessionTimerHandle = undefined;
    if (this.state !== "active" || generation !== this.timerGeneration) return;
    this.ctx.logger.warn({ sipCallId: this.dialog.callId, intervalS: this.sessionTimer?.intervalS }, "no session refresh from the peer in time; ending the call");
    void this.sendBye("session-expired");
  }

  handleStrayResponse(rs: SipResponse): void {
    if (rs.headers.cseq.method !== "INVITE" || rs.status < 200 || rs.status >= 300) return;
    const ack = this.sentAcks.get(rs.headers.cseq.seq);
    if (ack) this.ctx.stack.sendAck(ack);
  }

  // ------------------------------------------------------------------------------------------
  // Our requests

  /** Sends BYE (once the ACK for our 2xx is in, per §15) and ends the session. */
  hangup(): Promise<void> {
    return this.sendBye("local-bye");
  }

  private sendBye(reason: SipEndReason): Promise<void> {
    if (this.state === "terminated") return Promise.resolve();
    this.hangupPromise ??= (async () => {
      this.state = "terminating";
      if (this.pendingAck && reason !== "ack-timeout") {
        // RFC 3261 §15: a UAS must not send BYE before the ACK for its 2xx (or its timeout).
        await this.pendingAck.settled;
      }
      if (this.isTerminated()) return;
      this.incomingInvite?.respond({ status: 487, reason: "Request Terminated" });
      try {
        await this.request("BYE", {});
      } catch (err) {
        this.ctx.logger.debug({ err, sipCallId: this.dialog.callId }, "BYE failed; ending anyway");
      }
      this.terminate(reason);
    })();
    return this.hangupPromise;
  }

  /** Sends BYE without waiting, and ends now (the stack is stopping). */
  shutdown(): void {
    if (this.state === "terminated") return;
    if (this.state === "active") {
      try {
        this.ctx.stack.sendRequest(inDialogRequest(this.dialog, "BYE"), () => {});
      } catch {
        // best effort
      }
    }
    this.terminate("stopped");
  }

  reinvite(sdp: string): Promise<string> {
    return this.queueReinvite(sdp, undefined);
  }

  /**
   * `sdp` undefined: a session refresh, re-offering the current local SDP unchanged (same
   * o= version, RFC 3264 §8) and skipped when another refresh got there first (`generation`).
   */
  private queueReinvite(sdp: string | undefined, generation: number | undefined): Promise<string> {
    const run = this.reinviteChain.then(() => this.reinviteNow(sdp, generation));
    this.reinviteChain = run.catch(() => {});
    return run;
  }

  private async reinviteNow(sdpOrRefresh: string | undefined, generation: number | undefined): Promise<string> {
    const maxAttempts = 4;
    const refresh = sdpOrRefresh === undefined;
    let retried422 = false;
    for (let attempt = 1; ; attempt++) {
      await this.waitUntilNoInviteTransaction();
      if (this.state !== "active") throw new SipCallStateError(...this.ids, `cannot re-INVITE a ${this.state} call`);
      if (refresh && generation !== this.timerGeneration) return this.remoteSdp ?? "";
      const sdp = sdpOrRefresh ?? this.localSdp;
      this.outgoingInvite = true;
      let rs: SipResponse;
      try {
        rs = await this.request("INVITE", { body: sdp, contentType: "application/sdp", headers: this.timerRequestHeaders() }, false, { dialogUsage: !refresh });
      } finally {
        this.outgoingInvite = false;
        this.notifyIdle();
      }
      if (rs.status >= 200 && rs.status < 300) {
        const answer = fromWire(rs.content);
        this.localSdp = sdp;
        if (answer) this.remoteSdp = answer;
        this.onUacRefreshAnswer(rs);
        return answer;
      }
      if (rs.status === 422 && !retried422 && this.raiseFor422(rs)) {
        retried422 = true;
        continue;
      }
      const retryMs = reinviteRetryDelayMs(rs.status, headerText(rs, "retry-after"), () =>
        refresh ? this.refreshRetryDelayMs() : glareDelayMs(this.options.ownsCallId),
      );
      if (retryMs !== undefined && attempt < maxAttempts) {
        await this.timeouts.sleep(retryMs);
        continue;
      }
      throw new SipRequestError(...this.ids, "INVITE", rs.status, rs.reason);
    }
  }

  async sendInfo(contentType: string, body: string): Promise<number> {
    if (this.state !== "active") throw new SipCallStateError(...this.ids, `cannot send INFO on a ${this.state} call`);
    const rs = await this.request("INFO", { body, contentType });
    if (rs.status >= 300) throw new SipRequestError(...this.ids, "INFO", rs.status, rs.reason);
    return rs.status;
  }

  /**
   * Sends an in-dialog request and resolves with its final response, answering digest challenges.
   * For INVITE the 2xx is acknowledged here (and again for each retransmission). A 481 or 408
   * means the dialog is gone (§12.2.1.2) and ends the session.
   */
  private request(
    method: string,
    o: { body?: string; contentType?: string; headers?: Record<string, string> },
    isRetry = false,
    usage: { dialogUsage: boolean } = { dialogUsage: true },
  ): Promise<SipResponse> {
    const rq = inDialogRequest(this.dialog, method);
    // Target refresh requests (INVITE, UPDATE; NOTIFY per RFC 6665) carry our Contact.
    if (method === "INVITE" || method === "UPDATE" || method === "NOTIFY") rq.headers.contact = this.options.contact;
    if (method === "INVITE" || method === "UPDATE") rq.headers.allow = ALLOWED_METHODS;
    for (const [k, v] of Object.entries(o.headers ?? {})) rq.headers[k] = v;
    if (o.body !== undefined) {
      rq.headers["content-type"] = o.contentType ?? "application/sdp";
      rq.content = toWire(o.body);
    }
    if (isRetry) this.auth.apply(rq);
    const response = new Promise<SipResponse>((resolve) => {
      let settled = false;
      this.ctx.stack.sendRequest(rq, (rs) => {
        if (rs.status < 200) return;
        if (method === "INVITE" && rs.status < 300) {
          const known = this.sentAcks.get(rq.headers.cseq.seq);
          if (known) {
            this.ctx.stack.sendAck(known);
          } else {
            const lateAnswer = this.state === "terminated";
            if (!lateAnswer) refreshTarget(this.dialog, rs);
            const ack = inDialogRequest(this.dialog, "ACK", rq.headers.cseq.seq);
            copyAuth(rq, ack);
            this.rememberAck(rq.headers.cseq.seq, ack);
            this.ctx.stack.sendAck(ack);
            // The session ended while this re-INVITE was out: the PBX still thinks the call is up.
            if (lateAnswer) this.ctx.stack.sendRequest(inDialogRequest(this.dialog, "BYE"), () => {});
          }
        }
        if (settled) return;
        settled = true;
        resolve(rs);
      });
    });
    return Promise.race([response, this.ended.then((reason) => makeLocalFailure(rq, reason))]).then(async (rs) => {
      if ((rs.status === 401 || rs.status === 407) && !isRetry && this.state !== "terminated" && this.auth.accept(rs)) {
        return this.request(method, o, true, usage);
      }
      // A NOTIFY's or refresh's 481/408 is judged by its caller (RFC 5057: the subscription
      // usage alone dies; a failed refresh ends the call with BYE).
      if ((rs.status === 481 || rs.status === 408) && usage.dialogUsage && method !== "BYE" && this.state === "active") {
        this.ctx.logger.warn({ sipCallId: this.dialog.callId, method, status: rs.status }, "dialog lost");
        this.terminate("dialog-lost");
      }
      return rs;
    });
  }

  // ------------------------------------------------------------------------------------------
  // Bookkeeping

  private waitUntilNoInviteTransaction(): Promise<void> {
    if (!this.incomingInvite && !this.pendingAck) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.incomingInvite || this.pendingAck || this.outgoingInvite) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Ends the session: timers cleared, dialog unregistered, owner told once. */
  terminate(reason: SipEndReason): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    this.timeouts.clearAll();
    if (this.pendingAck) {
      this.pendingAck.retransmitter.stop();
      this.pendingAck.reject(new SipCallStateError(...this.ids, `call ended (${reason}) before the ACK`));
      this.pendingAck = undefined;
    }
    this.sessionTimerHandle = undefined;
    this.flow?.release();
    for (const r of this.refers) r.dialogEnded();
    this.refers.clear();
    this.ctx.unregisterDialog(this.key, this);
    this.endedResolve(reason);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
    this.options.hooks.onEnded(reason);
  }

  private isTerminated(): boolean {
    return this.state === "terminated";
  }
}

function copyAuth(from: OutgoingRequest, to: OutgoingRequest): void {
  for (const h of ["authorization", "proxy-authorization"]) {
    if (typeof from.headers[h] === "string") to.headers[h] = from.headers[h];
  }
}

function makeLocalFailure(rq: OutgoingRequest, reason: SipEndReason): SipResponse {
  return {
    status: 487,
    reason: `Call Ended (${reason})`,
    headers: {
      via: [],
      to: { uri: "", params: {} },
      from: { uri: "", params: {} },
      "call-id": rq.headers["call-id"],
      cseq: rq.headers.cseq,
    },
  };
}
