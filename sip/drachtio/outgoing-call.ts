import { randomUUID } from "node:crypto";
import { checkUserPart } from "../caller-input.js";
import { dialogListeners } from "../dialog-events.js";
import { SipArgumentError } from "../errors.js";
import type { SipLogger } from "../logger.js";
import { OutgoingCallCore } from "../outgoing-call-core.js";
import { chosenSipCallId, failureKindForStatus, type OutgoingSipCall, type PlaceCallOptions, type SipDialogId } from "../signaling.js";
import { ALLOWED_METHODS, DigestAnswers, checkExtraHeaders, checkSipUri, quoteDisplayName } from "./message.js";
import { DrachtioSession } from "./session.js";
import { isSrfSipError, type Srf, type SrfDialog, type SrfRequest, type SrfResponse } from "./srf.js";

const MAX_AUTH_ROUNDS = 3;

/** What a call gets from the signalling that created it. */
export interface DrachtioCallContext {
  readonly srf: Srf;
  readonly logger: SipLogger;
  readonly userAgent: string;
  readonly reinviteAnswerTimeoutMs: number;
  readonly referSubscriptionS: number;
  readonly defaultRingTimeoutMs: number;
  /** Outbound proxy every INVITE outside a dialog goes through; undefined = straight to the target. */
  readonly outboundProxy: string | undefined;
  /** Whether the control connection to drachtio-server is up. */
  isConnected(): boolean;
  callEnded(call: DrachtioLiveCall): void;
}

/** A call as the signalling sees it when stopping or when drachtio-server goes away. */
export interface DrachtioLiveCall {
  /** Ends the call at once, BYE or CANCEL sent best effort: the signalling is stopping. */
  shutdown(): void;
  /** The call's dialog as a Replaces header names it, and where it stands; undefined before one exists. */
  dialogInfo(): { id: SipDialogId; phase: "early" | "confirmed" | "ending"; weAreUac: boolean } | undefined;
  /**
   * The connection to drachtio-server is gone: ends the call here without a word on the wire.
   * Returns the id of a dialog drachtio-server may still hold, to BYE once it is back.
   */
  connectionLost(): string | undefined;
}

/**
 * A call we place to the PBX through drachtio-server: createUAC with our offer, provisionals,
 * our own digest answers (SHA-256 and MD5, as the embedded backend), CANCEL only after a
 * provisional (RFC 3261 §9.1), a BYE for a 2xx that crosses our CANCEL.
 */
export class DrachtioOutgoingCall extends OutgoingCallCore<DrachtioSession> implements OutgoingSipCall, DrachtioLiveCall {
  private readonly headers: Record<string, string>;
  private readonly auth: DigestAnswers;
  /** Bumped for each INVITE sent: a late answer to an INVITE we replaced is not this call's. */
  private attempt = 0;
  private authRounds = 0;
  private request: SrfRequest | undefined;
  /** The PBX's To tag from a provisional: the early dialog. */
  private earlyRemoteTag: string | undefined;

  constructor(
    private readonly ctx: DrachtioCallContext,
    o: PlaceCallOptions,
    defaultFromUser: string,
  ) {
    checkSipUri(o.uri);
    const user = o.from?.user ?? defaultFromUser;
    checkUserPart(user);
    const extra = checkExtraHeaders(o.headers);
    if (typeof o.sdp !== "string" || o.sdp.trim() === "") throw new SipArgumentError("placeCall needs an SDP offer");
    const sipCallId = chosenSipCallId(o, () => randomUUID());
    super(sipCallId, o.callId ?? sipCallId, o, ctx.logger, ctx.defaultRingTimeoutMs);
    const display = o.from?.displayName;
    // drachtio-server writes its own address where a From or Contact names `localhost`.
    const local = `<sip:${user}@localhost>`;
    this.headers = {
      From: `${display ? `${quoteDisplayName(display)} ` : ""}${local};tag=${randomUUID().slice(0, 13)}`,
      Contact: local,
      "Call-ID": this.sipCallId,
      "User-Agent": ctx.userAgent,
      Allow: ALLOWED_METHODS,
      ...extra,
    };
    this.auth = new DigestAnswers(o.auth);
    this.begin();
  }

  get dialogId(): SipDialogId | undefined {
    if (this.session) return this.session.dialogId;
    const localTag = /;\s*tag=([^;>\s]+)/i.exec(this.headers.From ?? "")?.[1];
    return this.earlyRemoteTag && localTag ? { callId: this.sipCallId, localTag, remoteTag: this.earlyRemoteTag } : undefined;
  }

  dialogInfo(): { id: SipDialogId; phase: "early" | "confirmed" | "ending"; weAreUac: boolean } | undefined {
    const id = this.dialogId;
    if (!id || this.currentState === "terminated") return undefined;
    const phase = this.currentState === "confirmed" ? "confirmed" : this.currentState === "terminating" || this.currentState === "cancelling" ? "ending" : "early";
    return { id, phase, weAreUac: true };
  }

  protected sendInitialInvite(): void {
    this.sendInvite({});
  }

  private sendInvite(extra: Record<string, string>): void {
    const attempt = ++this.attempt;
    this.request = undefined;
    this.provisionalSeen = false;
    if (!this.ctx.isConnected()) {
      this.ctx.logger.warn({ callId: this.callId, sipCallId: this.sipCallId }, "no connection to drachtio-server; call not placed");
      this.fail(503, "SIP Server Unreachable", "unreachable");
      return;
    }
    this.ctx.logger.debug({ callId: this.callId, sipCallId: this.sipCallId, uri: this.o.uri, attempt }, "INVITE sent");
    try {
      this.ctx.srf.createUAC(
        this.o.uri,
        { localSdp: this.o.sdp, headers: { ...this.headers, ...extra }, ...(this.ctx.outboundProxy ? { proxy: this.ctx.outboundProxy } : {}) },
        {
          cbRequest: (err, req) => {
            if (err || !req || attempt !== this.attempt) return;
            this.request = req;
            if (this.cancelRequested && this.provisionalSeen && !this.cancelSent) this.sendCancel();
          },
          cbProvisional: (res) => {
            if (attempt === this.attempt) this.onProvisional(res);
          },
        },
        (err, dialog) => {
          if (dialog) this.onAnswered(attempt, dialog);
          else if (attempt === this.attempt) this.onFailure(err);
        },
      );
    } catch (err) {
      // No connection to drachtio-server: nothing was sent.
      this.ctx.logger.warn({ callId: this.callId, sipCallId: this.sipCallId, err: (err as Error).message }, "INVITE could not be sent");
      this.fail(503, "SIP Server Unreachable", "unreachable");
    }
  }

  private onProvisional(res: SrfResponse): void {
    this.provisionalSeen = true;
    // A cancel asked for before any provisional goes out now, even if the caller was already told
    // the call failed: otherwise the PBX would ring on.
    if (this.cancelRequested && !this.cancelSent && this.request) this.sendCancel();
    if (this.currentState === "terminated" || this.currentState === "cancelling") return;
    if (this.currentState === "calling") this.setState("proceeding");
    const toTag = /;\s*tag=([^;>\s]+)/i.exec(res.get("to") ?? "")?.[1];
    if (toTag && res.status > 100) this.earlyRemoteTag = toTag;
    if (res.status > 100 && toTag && this.currentState === "proceeding") this.setState("early");
    if (res.status > 100) this.emit("provisional", res.status, res.reason, res.body || undefined);
  }

  private onFailure(err: Error | null): void {
    if (this.currentState === "terminated") return;
    if (!isSrfSipError(err)) {
      this.ctx.logger.warn({ callId: this.callId, sipCallId: this.sipCallId, err: err?.message }, "INVITE failed before any response");
      this.fail(503, "SIP Server Unreachable", "unreachable");
      return;
    }
    const status = err.status;
    const reason = err.reason ?? err.res?.reason ?? "";
    if ((status === 401 || status === 407) && err.res && !this.cancelRequested && this.authRounds < MAX_AUTH_ROUNDS) {
      const auth = this.auth.answer(err.res, "INVITE", this.o.uri);
      const sent = this.request;
      if (auth && sent) {
        this.authRounds++;
        // The same call (Call-ID, From tag) with the next CSeq, as RFC 3261 §22.2 asks.
        const cseq = Number.parseInt(sent.get("cseq") ?? "", 10);
        const headers: Record<string, string> = { From: sent.get("from") ?? this.headers.From!, [auth.header]: auth.value };
        if (Number.isFinite(cseq)) headers.CSeq = `${cseq + 1} INVITE`;
        this.sendInvite(headers);
        return;
      }
    }
    if (this.cancelRequested) {
      this.failCancelled(status, reason);
    } else {
      this.fail(status, reason, failureKindForStatus(status));
    }
  }

  private onAnswered(attempt: number, dialog: SrfDialog): void {
    const stale = attempt !== this.attempt || this.session !== undefined;
    if (stale || this.currentState === "terminated" || this.cancelRequested) {
      // An answer that crossed our CANCEL (or came after we gave up): the call exists at the PBX
      // now and must be ended with BYE (§9.1).
      this.byeAndForget(dialog);
      if (!stale && this.currentState !== "terminated") this.failCancelled();
      return;
    }
    const body = dialog.remote.sdp;
    this.stopRingTimer();
    this.session = new DrachtioSession(dialog, {
      callId: this.callId,
      localSdp: this.o.sdp,
      remoteSdp: body || undefined,
      credentials: this.o.auth,
      ownsCallId: true,
      awaitingAck: false,
      userAgent: this.ctx.userAgent,
      logger: this.ctx.logger,
      reinviteAnswerTimeoutMs: this.ctx.reinviteAnswerTimeoutMs,
      referSubscriptionS: this.ctx.referSubscriptionS,
      hooks: dialogListeners(this, (reason) => this.onSessionEnded(reason)),
    });
    if (!body) {
      void this.session.hangup();
      this.fail(200, "answer without SDP", "failed");
      return;
    }
    this.remote = body;
    this.setState("confirmed");
    this.emit("answered", body);
  }

  private byeAndForget(dialog: SrfDialog): void {
    try {
      dialog.destroy({ headers: { "User-Agent": this.ctx.userAgent } }, () => {});
    } catch {
      // no connection: drachtio-server's own timers end it
    }
  }

  /** A CANCEL needs the INVITE's request, which drachtio-server hands over once it has sent it. */
  protected override canCancelNow(): boolean {
    return this.provisionalSeen && this.request !== undefined;
  }

  protected sendCancel(): void {
    const req = this.request;
    if (!req || this.cancelSent) return;
    this.cancelSent = true;
    try {
      req.cancel((err) => {
        if (err) this.ctx.logger.debug({ err, sipCallId: this.sipCallId }, "CANCEL not sent");
      });
    } catch (err) {
      this.ctx.logger.debug({ err, sipCallId: this.sipCallId }, "CANCEL not sent");
    }
  }

  protected stopUnanswered(): void {
    if (this.currentState !== "terminated" && this.provisionalSeen) this.sendCancel();
    this.fail(503, "Signalling Stopped", "failed");
  }

  connectionLost(): string | undefined {
    if (this.session && (this.currentState === "confirmed" || this.currentState === "terminating")) {
      this.setState("terminating");
      const id = this.session.dialog.id;
      this.ctx.srf.removeDialog(this.session.dialog);
      this.session.terminate("signalling-lost");
      return id;
    }
    this.attempt++;
    this.fail(503, "SIP Server Connection Lost", "unreachable");
    return undefined;
  }

  protected released(): void {
    this.ctx.callEnded(this);
  }
}
