import sip from "sip";
import { randomToken } from "../random-token.js";
import { dialogListeners } from "../dialog-events.js";
import { SipCallStateError, SipHeaderError } from "../errors.js";
import { IncomingCallCore } from "../incoming-call-core.js";
import { parseRAck } from "../reliable-provisional.js";
import { overlapRetryAfter } from "../session-timeouts.js";
import type { UasTimerDecision } from "../session-timer.js";
import type { IncomingSipCall, SipDialogId, SipParty, SipReplaces } from "../signaling.js";
import type { CallContext, DialogOwner, LiveCall } from "./call-context.js";
import { DialogSession } from "./dialog-session.js";
import { acceptRemoteCSeq, dialogFromUasRequest, dialogKey, type Dialog } from "./dialog.js";
import { answerEarlyUpdate, type EarlyUpdateSlot } from "./early-update.js";
import {
  ALLOWED_METHODS,
  fromWire,
  headerText,
  readDisplayName,
  recordRoutes,
  SUPPORTED,
  type RemoteInfo,
  type SipRequest,
} from "./message.js";
import { ReliableProvisionalSender } from "./reliable-sender.js";
import { allowsUpdate, timerAnswerHeaders } from "./timer-headers.js";

/** What the stack learnt from the INVITE's extension headers before handing the call up. */
export interface IncomingCallExtensions {
  /** RFC 4028 §9 outcome for the INVITE (never "too-small": that was answered 422). */
  timer: UasTimerDecision;
  /** Min-SE in force for the dialog. */
  minSeS: number;
  /** The INVITE required 100rel: our provisionals go reliably (RFC 3262 §3). */
  reliableProvisionals: boolean;
  replaces: SipReplaces | undefined;
}

/**
 * A call the PBX places to us (UAS side of RFC 3261 §13.3): 100 Trying at once, then 18x (reliable
 * when the INVITE requires 100rel), 2xx (retransmitted until the ACK) or a rejection; a CANCEL, or
 * a BYE on the early dialog, before our final answer is met with 200 + 487. The early dialog takes
 * PRACK, UPDATE and INFO. Once accepted, a DialogSession carries the call.
 */
export class EmbeddedIncomingCall extends IncomingCallCore<DialogSession> implements IncomingSipCall, LiveCall {
  readonly from: SipParty;
  readonly to: SipParty;
  readonly requestUri: string;
  readonly source: { address: string; port: number; transport: "udp" | "tcp" | "tls" };
  readonly replaces: SipReplaces | undefined;
  private readonly localTag = randomToken();
  private readonly contact: string;
  private accepting = false;
  private readonly reliable: ReliableProvisionalSender | undefined;
  private early: { dialog: Dialog; key: string; owner: DialogOwner } | undefined;
  /** An UPDATE offer on the early dialog not yet answered. */
  private readonly earlyUpdate: EarlyUpdateSlot = { guard: undefined };

  constructor(
    private readonly ctx: CallContext,
    private readonly invite: SipRequest,
    remote: RemoteInfo,
    private readonly onFinished: () => void,
    private readonly ext: IncomingCallExtensions,
  ) {
    super(invite.headers["call-id"], invite.headers["call-id"], ctx.logger);
    this.source = { address: remote.address, port: remote.port, transport: remote.protocol === "TLS" ? "tls" : remote.protocol === "TCP" ? "tcp" : "udp" };
    this.requestUri = invite.uri;
    this.from = party(invite.headers.from);
    this.to = party(invite.headers.to);
    this.replaces = ext.replaces;
    this.offered = fromWire(invite.content) || undefined;
    const requestUri = sip.parseUri(invite.uri);
    const user = requestUri?.user ?? "gateway";
    const via = invite.headers.via[0]?.protocol.toUpperCase();
    this.contact = ctx.stack.contact(user, via === "TLS" || via === "TCP" ? via : "UDP", requestUri?.schema === "sips");
    if (ext.reliableProvisionals) {
      this.reliable = new ReliableProvisionalSender(invite.headers.cseq.seq, ctx.timers.t1Ms, () => {
        this.ctx.logger.warn({ sipCallId: this.sipCallId }, "reliable provisional never acknowledged; rejecting the call");
        this.reject(504, "Provisional Response Not Acknowledged");
      });
    }
    ctx.callStarted(this);
    ctx.stack.respond(invite, 100, "Trying");
    this.armAnswerTimer(ctx.timers.incomingAnswerTimeoutMs);
  }

  get dialogId(): SipDialogId | undefined {
    const d = this.session?.dialog ?? this.early?.dialog;
    return d && { callId: d.callId, localTag: d.localTag, remoteTag: d.remoteTag };
  }

  header(name: string): string | undefined {
    const v = headerText(this.invite, name);
    return v === undefined ? undefined : fromWire(v);
  }

  ringing(sdp?: string): void {
    if (!this.answerable || this.accepting) return;
    this.openEarlyDialog();
    const status = sdp ? 183 : 180;
    const reason = sdp ? "Session Progress" : "Ringing";
    const headers: Record<string, string> = { contact: this.contact, allow: ALLOWED_METHODS, supported: SUPPORTED };
    if (this.reliable) {
      this.reliable.send((rseq) => {
        const rs = this.ctx.stack.buildResponse(this.invite, status, reason, {
          toTag: this.localTag,
          headers: { ...headers, require: "100rel", RSeq: String(rseq) },
          body: sdp,
        });
        return () => this.ctx.stack.sendResponse(rs);
      }, !!sdp);
    } else {
      this.ctx.stack.respond(this.invite, status, reason, { toTag: this.localTag, headers, body: sdp });
    }
    this.setState("early");
  }

  async accept(sdp: string): Promise<boolean> {
    if (!this.answerable || this.accepting) throw new SipCallStateError(this.callId, this.sipCallId, `cannot accept in state ${this.currentState}`);
    const dialog = dialogFromUasRequest(this.invite, this.localTag, 1 + Math.floor(Math.random() * 10_000));
    if (!dialog) throw new SipCallStateError(this.callId, this.sipCallId, "INVITE lacks From tag or Contact");
    this.accepting = true;
    // RFC 3262 §3: no 2xx before the PRACK of a reliable provisional that carried SDP.
    if (this.reliable) await this.reliable.sdpAcknowledged();
    if (!this.answerable) return false;
    this.reliable?.stop();
    this.clearAnswerTimer();
    if (this.early) dialog.remoteCSeq = this.early.dialog.remoteCSeq;
    this.localAnswer = sdp;
    this.session = new DialogSession(this.ctx, dialog, {
      callId: this.callId,
      contact: this.contact,
      localSdp: sdp,
      remoteSdp: this.offered,
      credentials: undefined,
      ownsCallId: false,
      call: this,
      timer: this.ext.timer.kind === "timer" ? this.ext.timer.timer : undefined,
      minSeS: this.ext.minSeS,
      peerAllowsUpdate: allowsUpdate(this.invite) ?? false,
      origin: this.invite,
      hooks: { ...dialogListeners(this, (reason) => this.onSessionEnded(reason)), onPrack: (rq) => this.onPrack(rq) },
    });
    const headers: Record<string, string> = { contact: this.contact, allow: ALLOWED_METHODS, supported: SUPPORTED, ...timerAnswerHeaders(this.ext.timer) };
    const rr = recordRoutes(this.invite);
    if (rr.length) headers["record-route"] = rr.join(", ");
    const rs = this.ctx.stack.respond(this.invite, 200, "OK", { toTag: this.localTag, headers, body: sdp, contentType: "application/sdp" });
    this.setState("accepted");
    return this.session.awaitAck(this.invite.headers.cseq.seq, () => this.ctx.stack.sendResponse(rs), !this.offered).then(
      () => {
        if (this.currentState === "accepted") {
          this.setState("confirmed");
          this.emit("confirmed");
        }
        return true;
      },
      () => false,
    );
  }

  protected sendRejection(status: number, reason: string, headers: Record<string, string | readonly string[]> | undefined): void {
    this.reliable?.stop();
    this.ctx.stack.respond(this.invite, status, reason, { toTag: this.localTag, headers });
  }

  /** A CANCEL matching our INVITE transaction (already known to match by the caller). */
  handleCancel(cancel: SipRequest): void {
    this.ctx.stack.respond(cancel, 200, "OK", { toTag: this.localTag });
    this.withdrawn();
  }

  /** The caller gave up before our final answer (CANCEL, or BYE on the early dialog): 487 to the INVITE. */
  private withdrawn(): void {
    if (!this.answerable) return; // already answered: no effect (§9.2)
    this.reliable?.stop();
    this.ctx.stack.respond(this.invite, 487, "Request Terminated", { toTag: this.localTag });
    this.setState("terminated");
    this.emit("cancel");
    this.done();
  }

  // ------------------------------------------------------------------------------------------
  // The early dialog (after our first tagged provisional)

  private openEarlyDialog(): void {
    if (this.early) return;
    const dialog = dialogFromUasRequest(this.invite, this.localTag, 0);
    if (!dialog) return;
    const key = dialogKey(dialog.callId, dialog.localTag, dialog.remoteTag);
    const owner: DialogOwner = {
      handleRequest: (rq) => this.onEarlyRequest(rq),
      handleStrayResponse: () => {},
      dialogInfo: () => ({ call: this, phase: this.session ? "confirmed" : "early", weAreUac: false }),
    };
    this.early = { dialog, key, owner };
    this.ctx.registerDialog(key, owner);
  }

  private onEarlyRequest(rq: SipRequest): void {
    const stack = this.ctx.stack;
    if (rq.method === "ACK") return;
    if (!this.answerable || !this.early) {
      stack.respond(rq, 481, "Call/Transaction Does Not Exist");
      return;
    }
    if (!acceptRemoteCSeq(this.early.dialog, rq)) {
      stack.respond(rq, 500, "CSeq Out of Order");
      return;
    }
    switch (rq.method) {
      case "PRACK":
        if (!this.onPrack(rq)) stack.respond(rq, 481, "Call/Transaction Does Not Exist");
        return;
      case "UPDATE":
        this.onEarlyUpdate(rq);
        return;
      case "INFO":
        stack.respond(rq, 200, "OK");
        this.emit("info", headerText(rq, "content-type") ?? "", fromWire(rq.content));
        return;
      case "OPTIONS":
        stack.respond(rq, 200, "OK", { headers: { allow: ALLOWED_METHODS, accept: "application/sdp", supported: SUPPORTED } });
        return;
      case "BYE":
        // RFC 3261 §15: the caller may end an early dialog with BYE; for us that is a CANCEL.
        stack.respond(rq, 200, "OK");
        this.withdrawn();
        return;
      default:
        stack.respond(rq, 405, "Method Not Allowed", { headers: { allow: ALLOWED_METHODS } });
    }
  }

  /**
   * RFC 3311 §5.1–5.2 on the early dialog: a refresh (no body) is answered at once; an offer only
   * once the INVITE's offer/answer is complete (a PRACKed reliable 1xx with SDP), otherwise 500
   * with Retry-After since we still owe the INVITE an answer.
   */
  private onEarlyUpdate(rq: SipRequest): void {
    const stack = this.ctx.stack;
    const offer = fromWire(rq.content);
    const headers = { contact: this.contact, allow: ALLOWED_METHODS, supported: SUPPORTED };
    if (!offer) {
      stack.respond(rq, 200, "OK", { headers });
      return;
    }
    if (!this.reliable?.sdpAcked || this.earlyUpdate.guard || this.accepting) {
      stack.respond(rq, 500, "Server Internal Error", { headers: { "retry-after": overlapRetryAfter() } });
      return;
    }
    answerEarlyUpdate(this.ctx, this, rq, offer, headers, {
      slot: this.earlyUpdate,
      open: () => this.answerable,
      settled: (answer) => {
        this.offered = offer;
        this.localAnswer = answer;
      },
    });
  }

  /** A PRACK for one of our reliable provisionals: true when answered here, false when it matches none. */
  private onPrack(rq: SipRequest): boolean {
    if (!this.reliable) return false;
    let rack;
    try {
      rack = parseRAck(headerText(rq, "rack"));
    } catch (err) {
      if (!(err instanceof SipHeaderError)) throw err;
      this.ctx.stack.respond(rq, 400, "Bad RAck");
      return true;
    }
    if (!rack) {
      this.ctx.stack.respond(rq, 400, "Missing RAck");
      return true;
    }
    if (this.reliable.prack(rack) === "unknown") return false;
    this.ctx.stack.respond(rq, 200, "OK");
    return true;
  }

  protected released(): void {
    clearTimeout(this.earlyUpdate.guard);
    if (this.early) this.ctx.unregisterDialog(this.early.key, this.early.owner);
    this.ctx.callEnded(this);
    this.onFinished();
  }
}

function party(a: sip.NameAddr): SipParty {
  return { uri: fromWire(a.uri), user: sip.parseUri(a.uri)?.user, displayName: readDisplayName(a.name) };
}
