import { checkUserPart } from "../caller-input.js";
import { randomToken } from "../random-token.js";
import { dialogListeners } from "../dialog-events.js";
import { SipArgumentError, SipHeaderError } from "../errors.js";
import { parseOptionTags } from "../option-tags.js";
import { OutgoingCallCore } from "../outgoing-call-core.js";
import { classifyRSeq, formatRAck, parseRSeq } from "../reliable-provisional.js";
import { overlapRetryAfter } from "../session-timeouts.js";
import { retryAfter422, timerFromUacResponse } from "../session-timer.js";
import { chosenSipCallId, failureKindForStatus, type OutgoingSipCall, type PlaceCallOptions, type SipDialogId } from "../signaling.js";
import { DigestAuthenticator } from "./authenticator.js";
import type { CallContext, DialogOwner, LiveCall } from "./call-context.js";
import { DialogSession } from "./dialog-session.js";
import { acceptRemoteCSeq, dialogFromUacResponse, dialogKey, inDialogRequest, refreshTarget, type Dialog } from "./dialog.js";
import { answerEarlyUpdate, type EarlyUpdateSlot } from "./early-update.js";
import {
  ALLOWED_METHODS,
  checkExtraHeaders,
  checkSipUri,
  fromWire,
  headerText,
  quoteDisplayName,
  SUPPORTED,
  tagOf,
  toWire,
  type SipRequest,
  type SipResponse,
} from "./message.js";
import type { ClientTransactionHandle, OutgoingRequest } from "./stack.js";
import { allowsUpdate, minSeOf, sessionExpiresOf } from "./timer-headers.js";

const MAX_AUTH_ROUNDS = 3;
/** 422 retries (RFC 4028 §7.4): each must raise the interval, so two is plenty. */
const MAX_422_ROUNDS = 2;

/** One early dialog (a tagged 1xx) of our INVITE: PRACK bookkeeping and early offer/answer. */
interface EarlyDialog {
  dialog: Dialog;
  key: string;
  owner: DialogOwner;
  /** RSeq of the last reliable 1xx we PRACKed (RFC 3262 §4). */
  lastRSeq: number | undefined;
  /** The answer to our offer from a reliable 1xx, or the latest offer/answer of an UPDATE: settled SDP. */
  settledRemoteSdp: string | undefined;
  /** SDP of the latest unreliable 1xx: a preview of the answer (RFC 3261 §13.2.1). */
  previewSdp: string | undefined;
  /** Our side of the early offer/answer (changes when we answer an UPDATE). */
  localSdp: string;
  /** An UPDATE offer on this early dialog not yet answered. */
  update: EarlyUpdateSlot;
}

/**
 * A call we place to the PBX (UAC side of RFC 3261 §13.2): the INVITE with our offer, provisional
 * responses (PRACKed when sent reliably, RFC 3262), digest retries, a retry with a longer session
 * interval after 422 (RFC 4028), CANCEL (only after a provisional, §9.1), the 2xx ACK through the
 * route set, and a BYE for any extra 2xx from a forking proxy. Early dialogs take UPDATE and INFO.
 * Once answered, a DialogSession carries the call.
 */
export class EmbeddedOutgoingCall extends OutgoingCallCore<DialogSession> implements OutgoingSipCall, LiveCall {
  private readonly uri: string;
  private readonly localTag = randomToken();
  private readonly localAddr: string;
  private readonly remoteAddr: string;
  private readonly extraHeaders: Record<string, string>;
  private readonly auth: DigestAuthenticator;
  private readonly contact: string;
  private cseq = 1 + Math.floor(Math.random() * 10_000);
  private authRounds = 0;
  private timerRounds = 0;
  /** Session-Expires we ask for (0: none) and our Min-SE, raised by a 422. */
  private sessionExpiresS: number;
  private minSeS: number;
  private readonly early = new Map<string, EarlyDialog>();
  private lastEarly: EarlyDialog | undefined;
  private invite: OutgoingRequest | undefined;
  private inviteHandle: ClientTransactionHandle | undefined;
  /** Bounds the INVITE transaction after our CANCEL; outlives done() since the CANCEL may still be answered. */
  private giveUpTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: CallContext,
    o: PlaceCallOptions,
    defaultFromUser: string,
  ) {
    const target = checkSipUri(o.uri, { tls: ctx.stack.supports("TLS") });
    const user = o.from?.user ?? defaultFromUser;
    checkUserPart(user);
    const extraHeaders = checkExtraHeaders(o.headers);
    if (typeof o.sdp !== "string" || o.sdp.trim() === "") throw new SipArgumentError("placeCall needs an SDP offer");
    const sipCallId = chosenSipCallId(o, () => `${randomToken(12)}@${ctx.stack.host}`);
    super(sipCallId, o.callId ?? sipCallId, o, ctx.logger, ctx.timers.defaultRingTimeoutMs);
    this.extraHeaders = extraHeaders;
    this.uri = o.uri;
    const display = o.from?.displayName;
    this.localAddr = `${display ? `${quoteDisplayName(display)} ` : ""}<sip:${user}@${ctx.stack.host}>`;
    // To carries the target without URI parameters such as transport (they belong to the R-URI).
    this.remoteAddr = `<${target.schema}:${target.user ? `${target.user}@` : ""}${target.host}${target.port ? `:${target.port}` : ""}>`;
    this.auth = new DigestAuthenticator(o.auth);
    this.contact = ctx.stack.contact(user, ctx.stack.protocolFor(o.uri), target.schema === "sips");
    this.sessionExpiresS = ctx.timers.sessionExpiresS;
    this.minSeS = ctx.timers.minSeS;
    ctx.callStarted(this);
    this.begin();
  }

  get dialogId(): SipDialogId | undefined {
    const d = this.session?.dialog ?? this.lastEarly?.dialog;
    return d && { callId: d.callId, localTag: d.localTag, remoteTag: d.remoteTag };
  }

  protected sendInitialInvite(): void {
    this.sendInvite();
  }

  private sendInvite(): void {
    const rq: OutgoingRequest = {
      method: "INVITE",
      uri: this.uri,
      headers: {
        from: `${this.localAddr};tag=${this.localTag}`,
        to: this.remoteAddr,
        "call-id": this.sipCallId,
        cseq: { seq: this.cseq, method: "INVITE" },
        contact: this.contact,
        allow: ALLOWED_METHODS,
        supported: SUPPORTED,
        ...(this.sessionExpiresS > 0 ? { "session-expires": String(this.sessionExpiresS), "Min-SE": String(Math.min(this.minSeS, this.sessionExpiresS)) } : {}),
        ...this.extraHeaders,
        "content-type": "application/sdp",
      },
      content: toWire(this.o.sdp),
    };
    if (this.authRounds > 0) this.auth.apply(rq);
    this.invite = rq;
    this.ctx.logger.debug({ callId: this.callId, sipCallId: this.sipCallId, uri: this.uri, cseq: this.cseq }, "INVITE sent");
    this.inviteHandle = this.ctx.stack.sendRequest(rq, (rs, fromNetwork) => this.onInviteResponse(rq, rs, fromNetwork));
  }

  private onInviteResponse(rq: OutgoingRequest, rs: SipResponse, fromNetwork: boolean): void {
    const status = rs.status;
    if (status >= 200) this.inviteSettled(rq);
    if (status >= 200 && status < 300) {
      this.on2xx(rq, rs);
      return;
    }
    if (rq !== this.invite) return;
    if (status < 200) {
      this.provisionalSeen = true;
      // A cancel asked for before any provisional goes out now, even if the caller was already
      // told the call failed: otherwise the PBX would ring on.
      if (this.cancelRequested && !this.cancelSent) this.sendCancel();
      const fresh = status > 100 ? this.onTaggedProvisional(rq, rs) : true;
      if (this.currentState === "terminated" || !fresh) return;
      if (this.currentState === "calling") this.setState("proceeding");
      if (status > 100 && tagOf(rs.headers.to) && this.currentState === "proceeding") this.setState("early");
      if (status > 100) {
        const body = fromWire(rs.content);
        this.emit("provisional", status, rs.reason, body || undefined);
      }
      return;
    }
    this.closeEarlyDialogs();
    if (this.currentState === "terminated") return;
    if (status === 422 && !this.cancelRequested && this.timerRounds < MAX_422_ROUNDS) {
      const next = retryAfter422(this.sessionExpiresS, minSeOf(rs));
      if (next !== undefined) {
        this.timerRounds++;
        this.sessionExpiresS = next;
        this.minSeS = Math.max(this.minSeS, next);
        this.cseq++;
        this.provisionalSeen = false;
        this.sendInvite();
        return;
      }
    }
    if ((status === 401 || status === 407) && !this.cancelRequested && this.authRounds < MAX_AUTH_ROUNDS && this.auth.accept(rs)) {
      this.authRounds++;
      this.cseq++;
      this.provisionalSeen = false;
      this.sendInvite();
      return;
    }
    if (this.cancelRequested) {
      this.failCancelled(status, rs.reason);
    } else if (!fromNetwork) {
      // Timer B or a transport error: nothing (more) came back from the PBX.
      this.fail(status, rs.reason || "No Response", "unreachable");
    } else {
      this.fail(status, rs.reason, failureKindForStatus(status));
    }
  }

  /** The INVITE transaction has its final response: no need to give it up any more. */
  private inviteSettled(rq: OutgoingRequest): void {
    if (rq === this.invite && this.giveUpTimer) {
      clearTimeout(this.giveUpTimer);
      this.giveUpTimer = undefined;
      if (this.currentState === "terminated") this.ctx.callEnded(this);
    }
  }

  private on2xx(rq: OutgoingRequest, rs: SipResponse): void {
    const remoteTag = tagOf(rs.headers.to) ?? "";
    if (this.session) {
      if (this.session.dialog.remoteTag === remoteTag) this.session.handleStrayResponse(rs);
      else this.ackAndBye(rq, rs);
      return;
    }
    if (this.currentState === "terminated") {
      this.ackAndBye(rq, rs);
      return;
    }
    const early = this.early.get(remoteTag);
    // PRACKs and UPDATEs on the early dialog used CSeq numbers after the INVITE's.
    const cseq = Math.max(rq.headers.cseq.seq, early?.dialog.localCSeq ?? 0);
    const dialog = dialogFromUacResponse(
      { callId: this.sipCallId, localTag: this.localTag, localAddr: this.localAddr, remoteAddr: this.remoteAddr, cseq, uri: this.uri },
      rs,
    );
    if (early) dialog.remoteCSeq = early.dialog.remoteCSeq;
    const ack = this.buildAck(rq, dialog);
    // RFC 3261 §13.2.1 / RFC 6337 §3.1: the 2xx's SDP is the answer when it has one (a UAS that
    // moves its media at answer time is followed); without one, the answer is the one the early
    // dialog settled (reliable 1xx, UPDATE), else what an unreliable 183 previewed.
    const body = fromWire(rs.content) || early?.settledRemoteSdp || early?.previewSdp || "";
    this.session = new DialogSession(this.ctx, dialog, {
      callId: this.callId,
      contact: this.contact,
      localSdp: early?.localSdp ?? this.o.sdp,
      remoteSdp: body || undefined,
      credentials: this.o.auth,
      ownsCallId: true,
      call: this,
      timer: timerFromUacResponse(sessionExpiresOf(rs)),
      minSeS: this.minSeS,
      peerAllowsUpdate: allowsUpdate(rs) ?? false,
      origin: rs,
      hooks: dialogListeners(this, (reason) => this.onSessionEnded(reason)),
    });
    this.closeEarlyDialogs();
    this.session.rememberAck(rq.headers.cseq.seq, ack);
    this.ctx.stack.sendAck(ack);
    this.stopRingTimer();
    if (this.cancelRequested) {
      // The answer crossed our CANCEL: the call exists now and must be ended with BYE (§9.1).
      void this.session.hangup();
      this.failCancelled();
      return;
    }
    if (!body) {
      void this.session.hangup();
      this.fail(rs.status, "answer without SDP", "failed");
      return;
    }
    this.remote = body;
    this.setState("confirmed");
    this.emit("answered", body);
  }

  // ------------------------------------------------------------------------------------------
  // Early dialogs

  /**
   * A 101–199 to our INVITE: its early dialog (when tagged) is created or its target refreshed,
   * a reliable one is PRACKed (RFC 3262 §4). Returns false for what must not be reported again:
   * a retransmitted reliable 1xx, or one out of sequence (the UAS resends the missing one).
   */
  private onTaggedProvisional(rq: OutgoingRequest, rs: SipResponse): boolean {
    const remoteTag = tagOf(rs.headers.to);
    if (!remoteTag || this.session) return true;
    const early = this.earlyDialog(rq, rs, remoteTag);
    refreshTarget(early.dialog, rs);
    const body = fromWire(rs.content);
    let rseq: number | undefined;
    if (parseOptionTags(headerText(rs, "require")).has("100rel")) {
      try {
        rseq = parseRSeq(headerText(rs, "rseq"));
      } catch (err) {
        if (!(err instanceof SipHeaderError)) throw err;
      }
      if (rseq === undefined) this.ctx.logger.warn({ sipCallId: this.sipCallId, status: rs.status }, "reliable provisional without a usable RSeq; taken as unreliable");
    }
    if (rseq === undefined) {
      if (body) early.previewSdp = body;
      return true;
    }
    const kind = classifyRSeq(early.lastRSeq, rseq);
    if (kind !== "new") return false;
    early.lastRSeq = rseq;
    // RFC 3262 §5: an answer in a reliable 1xx completes the INVITE's offer/answer.
    if (body && early.settledRemoteSdp === undefined) early.settledRemoteSdp = body;
    this.sendPrack(early, rseq, rq.headers.cseq.seq);
    return true;
  }

  private earlyDialog(rq: OutgoingRequest, rs: SipResponse, remoteTag: string): EarlyDialog {
    const known = this.early.get(remoteTag);
    if (known) {
      this.lastEarly = known;
      return known;
    }
    const dialog = dialogFromUacResponse(
      { callId: this.sipCallId, localTag: this.localTag, localAddr: this.localAddr, remoteAddr: this.remoteAddr, cseq: rq.headers.cseq.seq, uri: this.uri },
      rs,
    );
    const key = dialogKey(dialog.callId, dialog.localTag, dialog.remoteTag);
    const early: EarlyDialog = {
      dialog,
      key,
      owner: {
        handleRequest: (m) => this.onEarlyRequest(early, m),
        handleStrayResponse: () => {},
        dialogInfo: () => ({ call: this, phase: "early", weAreUac: true }),
      },
      lastRSeq: undefined,
      settledRemoteSdp: undefined,
      previewSdp: undefined,
      localSdp: this.o.sdp,
      update: { guard: undefined },
    };
    this.early.set(remoteTag, early);
    this.lastEarly = early;
    this.ctx.registerDialog(key, early.owner);
    return early;
  }

  private sendPrack(early: EarlyDialog, rseq: number, inviteCSeq: number): void {
    const prack = inDialogRequest(early.dialog, "PRACK");
    prack.headers.RAck = formatRAck({ rseq, cseq: inviteCSeq, method: "INVITE" });
    // Retransmitted by its own non-INVITE transaction until answered (RFC 3261 §17.1.2).
    this.ctx.stack.sendRequest(prack, (rs) => {
      if (rs.status >= 300) this.ctx.logger.warn({ sipCallId: this.sipCallId, status: rs.status, reason: rs.reason }, "PRACK refused");
    });
  }

  /** The early dialogs are over once the INVITE has its final answer. */
  private closeEarlyDialogs(): void {
    for (const e of this.early.values()) {
      clearTimeout(e.update.guard);
      this.ctx.unregisterDialog(e.key, e.owner);
    }
    this.early.clear();
  }

  private onEarlyRequest(early: EarlyDialog, rq: SipRequest): void {
    const stack = this.ctx.stack;
    if (rq.method === "ACK") return;
    if (this.currentState === "terminated" || this.session) {
      stack.respond(rq, 481, "Call/Transaction Does Not Exist");
      return;
    }
    if (!acceptRemoteCSeq(early.dialog, rq)) {
      stack.respond(rq, 500, "CSeq Out of Order");
      return;
    }
    switch (rq.method) {
      case "UPDATE":
        this.onEarlyUpdate(early, rq);
        return;
      case "INFO":
        stack.respond(rq, 200, "OK");
        this.emit("info", headerText(rq, "content-type") ?? "", fromWire(rq.content));
        return;
      case "OPTIONS":
        stack.respond(rq, 200, "OK", { headers: { allow: ALLOWED_METHODS, accept: "application/sdp", supported: SUPPORTED } });
        return;
      default:
        stack.respond(rq, 405, "Method Not Allowed", { headers: { allow: ALLOWED_METHODS } });
    }
  }

  /**
   * RFC 3311 §5.2 on an early dialog of ours: a refresh is answered at once; an offer is refused
   * 491 while our INVITE's offer has no reliable answer yet, and 500 with Retry-After while an
   * earlier UPDATE offer is still being answered.
   */
  private onEarlyUpdate(early: EarlyDialog, rq: SipRequest): void {
    const stack = this.ctx.stack;
    const offer = fromWire(rq.content);
    const headers = { contact: this.contact, allow: ALLOWED_METHODS, supported: SUPPORTED };
    refreshTarget(early.dialog, rq);
    if (!offer) {
      stack.respond(rq, 200, "OK", { headers });
      return;
    }
    if (early.settledRemoteSdp === undefined) {
      stack.respond(rq, 491, "Request Pending");
      return;
    }
    if (early.update.guard) {
      stack.respond(rq, 500, "Server Internal Error", { headers: { "retry-after": overlapRetryAfter() } });
      return;
    }
    answerEarlyUpdate(this.ctx, this, rq, offer, headers, {
      slot: early.update,
      open: () => this.currentState !== "terminated",
      settled: (answer) => {
        early.settledRemoteSdp = offer;
        early.localSdp = answer;
      },
    });
  }

  private buildAck(rq: OutgoingRequest, dialog: ReturnType<typeof dialogFromUacResponse>): OutgoingRequest {
    const ack = inDialogRequest(dialog, "ACK", rq.headers.cseq.seq);
    // §13.2.2.4: the ACK carries the INVITE's credentials.
    for (const h of ["authorization", "proxy-authorization"]) if (typeof rq.headers[h] === "string") ack.headers[h] = rq.headers[h];
    return ack;
  }

  /** An extra or late 2xx: acknowledge it and end that dialog at once. */
  private ackAndBye(rq: OutgoingRequest, rs: SipResponse): void {
    const dialog = dialogFromUacResponse(
      { callId: this.sipCallId, localTag: this.localTag, localAddr: this.localAddr, remoteAddr: this.remoteAddr, cseq: rq.headers.cseq.seq, uri: this.uri },
      rs,
    );
    this.ctx.stack.sendAck(this.buildAck(rq, dialog));
    this.ctx.stack.sendRequest(inDialogRequest(dialog, "BYE"), () => {});
  }

  protected sendCancel(): void {
    const invite = this.invite;
    const topVia = invite?.headers.via?.[0];
    if (!invite || !topVia) return;
    this.cancelSent = true;
    const cancel: OutgoingRequest = {
      method: "CANCEL",
      uri: invite.uri,
      headers: {
        // §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via (branch) as the INVITE.
        via: [{ ...topVia, params: { ...topVia.params } }],
        from: invite.headers.from,
        to: invite.headers.to,
        "call-id": invite.headers["call-id"],
        cseq: { seq: invite.headers.cseq.seq, method: "CANCEL" },
      },
    };
    if (invite.headers.route !== undefined) cancel.headers.route = invite.headers.route;
    this.ctx.stack.sendRequest(cancel, () => {});
    // §9.1: without a final response 64·T1 after the CANCEL, the INVITE transaction is given up.
    this.giveUpTimer = setTimeout(() => {
      this.giveUpTimer = undefined;
      this.inviteHandle?.shutdown();
      this.failCancelled();
      this.ctx.callEnded(this);
    }, 64 * this.ctx.timers.t1Ms);
    // Stays known to the stack (so stop() clears the timer) until the INVITE settles.
    this.ctx.callStarted(this);
  }

  protected stopUnanswered(): void {
    if (this.currentState !== "terminated" && this.provisionalSeen && !this.cancelSent) this.sendCancel();
    if (this.giveUpTimer) clearTimeout(this.giveUpTimer);
    this.giveUpTimer = undefined;
    this.inviteHandle?.shutdown();
    this.fail(503, "Signalling Stopped", "failed");
    this.ctx.callEnded(this);
  }

  protected released(): void {
    this.closeEarlyDialogs();
    // A CANCELled INVITE still waiting for its 487 stays known to the stack until it settles.
    if (!this.giveUpTimer) this.ctx.callEnded(this);
  }
}
