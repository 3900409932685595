import { EventEmitter } from "node:events";
import sip from "sip";
import { SipCallStateError } from "../errors.js";
import type { IncomingCallState, IncomingSipCall, IncomingSipCallEvents, SipEndReason, SipParty } from "../signaling.js";
import type { CallContext, LiveCall } from "./call-context.js";
import { DialogSession } from "./dialog-session.js";
import { dialogFromUasRequest } from "./dialog.js";
import { ALLOWED_METHODS, fromWire, headerText, randomToken, readDisplayName, recordRoutes, type SipRequest, type RemoteInfo } from "./message.js";

/**
 * A call the PBX places to us (UAS side of RFC 3261 §13.3): 100 Trying at once, then 18x,
 * 2xx (retransmitted until the ACK) or a rejection; a CANCEL before our final answer is met
 * with 200 + 487. Once accepted, a DialogSession carries the call.
 */
export class EmbeddedIncomingCall extends EventEmitter<IncomingSipCallEvents> implements IncomingSipCall, LiveCall {
  readonly sipCallId: string;
  readonly callId: string;
  readonly from: SipParty;
  readonly to: SipParty;
  readonly requestUri: string;
  readonly source: { address: string; port: number; transport: "udp" | "tcp" };
  private currentState: IncomingCallState = "offered";
  private readonly localTag = randomToken();
  private readonly contact: string;
  private session: DialogSession | undefined;
  private answerTimer: NodeJS.Timeout | undefined;
  private offered: string | undefined;
  private localAnswer = "";

  constructor(
    private readonly ctx: CallContext,
    private readonly invite: SipRequest,
    remote: RemoteInfo,
    private readonly onFinished: () => void,
  ) {
    super();
    this.source = { address: remote.address, port: remote.port, transport: remote.protocol === "TCP" ? "tcp" : "udp" };
    this.sipCallId = invite.headers["call-id"];
    this.callId = this.sipCallId;
    this.requestUri = invite.uri;
    this.from = party(invite.headers.from);
    this.to = party(invite.headers.to);
    this.offered = fromWire(invite.content) || undefined;
    const user = sip.parseUri(invite.uri)?.user ?? "gateway";
    this.contact = ctx.stack.contact(user, invite.headers.via[0]?.protocol.toUpperCase() === "TCP" ? "TCP" : "UDP");
    ctx.callStarted(this);
    ctx.stack.respond(invite, 100, "Trying");
    this.answerTimer = setTimeout(() => {
      this.answerTimer = undefined;
      this.ctx.logger.warn({ sipCallId: this.sipCallId }, "incoming call neither accepted nor rejected; answering 480");
      this.reject(480, "Temporarily Unavailable");
    }, ctx.timers.incomingAnswerTimeoutMs);
  }

  get state(): IncomingCallState {
    return this.currentState;
  }
  get localSdp(): string {
    return this.session?.localSdp ?? this.localAnswer;
  }
  get remoteSdp(): string | undefined {
    return this.session?.remoteSdp ?? this.offered;
  }

  header(name: string): string | undefined {
    const v = headerText(this.invite, name);
    return v === undefined ? undefined : fromWire(v);
  }

  private setState(s: IncomingCallState): void {
    if (this.currentState === s) return;
    this.currentState = s;
    this.emit("state", s);
  }

  private get answerable(): boolean {
    return this.currentState === "offered" || this.currentState === "early";
  }

  ringing(sdp?: string): void {
    if (!this.answerable) return;
    this.ctx.stack.respond(this.invite, sdp ? 183 : 180, sdp ? "Session Progress" : "Ringing", {
      toTag: this.localTag,
      headers: { contact: this.contact },
      body: sdp,
    });
    this.setState("early");
  }

  accept(sdp: string): Promise<boolean> {
    if (!this.answerable) return Promise.reject(new SipCallStateError(this.callId, this.sipCallId, `cannot accept in state ${this.currentState}`));
    const dialog = dialogFromUasRequest(this.invite, this.localTag, 1 + Math.floor(Math.random() * 10_000));
    if (!dialog) return Promise.reject(new SipCallStateError(this.callId, this.sipCallId, "INVITE lacks From tag or Contact"));
    this.clearAnswerTimer();
    this.localAnswer = sdp;
    this.session = new DialogSession(this.ctx, dialog, {
      callId: this.callId,
      contact: this.contact,
      localSdp: sdp,
      remoteSdp: this.offered,
      credentials: undefined,
      ownsCallId: false,
      hooks: {
        onReinvite: (offer, respond) => {
          if (this.listenerCount("reinvite") === 0) return false;
          this.emit("reinvite", offer, respond);
          return true;
        },
        onInfo: (contentType, body) => this.emit("info", contentType, body),
        onEnded: (reason) => this.onSessionEnded(reason),
      },
    });
    const headers: Record<string, string> = { contact: this.contact, allow: ALLOWED_METHODS };
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

  reject(status: number, reason?: string, headers?: Record<string, string | readonly string[]>): void {
    if (!this.answerable) return;
    const code = status >= 300 && status <= 699 ? status : 603;
    this.ctx.stack.respond(this.invite, code, reason ?? "Decline", { toTag: this.localTag, headers });
    this.setState("terminated");
    this.done();
  }

  /** A CANCEL matching our INVITE transaction (already known to match by the caller). */
  handleCancel(cancel: SipRequest): void {
    this.ctx.stack.respond(cancel, 200, "OK", { toTag: this.localTag });
    if (!this.answerable) return; // already answered: the CANCEL has no effect (§9.2)
    this.ctx.stack.respond(this.invite, 487, "Request Terminated", { toTag: this.localTag });
    this.setState("terminated");
    this.emit("cancel");
    this.done();
  }

  hangup(): Promise<void> {
    if (this.answerable) {
      this.reject(603, "Decline");
      return Promise.resolve();
    }
    if (this.session && (this.currentState === "accepted" || this.currentState === "confirmed")) {
      this.setState("terminating");
      return this.session.hangup();
    }
    return Promise.resolve();
  }

  reinvite(sdp: string): Promise<string> {
    if (this.currentState !== "confirmed" || !this.session) {
      return Promise.reject(new SipCallStateError(this.callId, this.sipCallId, `cannot re-INVITE in state ${this.currentState}`));
    }
    return this.session.reinvite(sdp);
  }

  sendInfo(contentType: string, body: string): Promise<number> {
    if ((this.currentState !== "confirmed" && this.currentState !== "accepted") || !this.session) {
      return Promise.reject(new SipCallStateError(this.callId, this.sipCallId, `cannot send INFO in state ${this.currentState}`));
    }
    return this.session.sendInfo(contentType, body);
  }

  shutdown(): void {
    if (this.answerable) {
      this.reject(503, "Service Unavailable");
      return;
    }
    this.session?.shutdown();
  }

  private onSessionEnded(reason: SipEndReason): void {
    if (this.currentState === "terminated") return;
    this.setState("terminated");
    this.emit("ended", reason);
    this.done();
  }

  private clearAnswerTimer(): void {
    if (this.answerTimer) clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
  }

  private done(): void {
    this.clearAnswerTimer();
    this.ctx.callEnded(this);
    this.onFinished();
  }
}

function party(a: sip.NameAddr): SipParty {
  return { uri: fromWire(a.uri), user: sip.parseUri(a.uri)?.user, displayName: readDisplayName(a.name) };
}
