import { EventEmitter } from "node:events";
import { throughSession, type AnsweredSession } from "./answered-session.js";
import type { SipLogger } from "./logger.js";
import type { IncomingCallState, IncomingSipCallEvents, SipEndReason } from "./signaling.js";

/**
 * A call the PBX places to us, as both SIP backends run it around their own wire work: the named
 * states, the answer deadline (480 when the gateway neither accepts nor rejects in time), a final
 * rejection, BYE or decline on hangup, re-INVITE and INFO through the accepted dialog's session,
 * and one `ended` at the end. A backend sends the provisionals, the 2xx and the rejection, and says
 * what ending the call releases.
 */
export abstract class IncomingCallCore<Session extends AnsweredSession> extends EventEmitter<IncomingSipCallEvents> {
  protected currentState: IncomingCallState = "offered";
  /** The accepted dialog's session; undefined until our 2xx goes out. */
  protected session: Session | undefined;
  /** The PBX's offer (the INVITE's SDP, or a later early offer); undefined for an offerless INVITE. */
  protected offered: string | undefined;
  /** Our answer, once we accept. */
  protected localAnswer = "";
  private answerTimer: NodeJS.Timeout | undefined;

  protected constructor(
    readonly sipCallId: string,
    readonly callId: string,
    protected readonly logger: SipLogger,
  ) {
    super();
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

  /** Sends the final non-2xx answer to the INVITE (the status is already within 300–699). */
  protected abstract sendRejection(status: number, reason: string, headers: Record<string, string | readonly string[]> | undefined): void;
  /** The call is over: what the backend holds for it goes. */
  protected abstract released(): void;

  /** Starts the deadline for the gateway's answer; called once the call is fully built. */
  protected armAnswerTimer(timeoutMs: number): void {
    this.answerTimer = setTimeout(() => {
      this.answerTimer = undefined;
      this.logger.warn({ sipCallId: this.sipCallId }, "incoming call neither accepted nor rejected; answering 480");
      this.reject(480, "Temporarily Unavailable");
    }, timeoutMs);
  }

  protected setState(s: IncomingCallState): void {
    if (this.currentState === s) return;
    this.currentState = s;
    this.emit("state", s);
  }

  /** No final answer sent yet. */
  protected get answerable(): boolean {
    return this.currentState === "offered" || this.currentState === "early";
  }

  reject(status: number, reason?: string, headers?: Record<string, string | readonly string[]>): void {
    if (!this.answerable) return;
    const code = status >= 300 && status <= 699 ? status : 603;
    this.sendRejection(code, reason ?? "Decline", headers);
    this.setState("terminated");
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
    return throughSession(this, this.currentState, ["confirmed"], this.session, "re-INVITE", (s) => s.reinvite(sdp));
  }

  sendInfo(contentType: string, body: string): Promise<number> {
    return throughSession(this, this.currentState, ["accepted", "confirmed"], this.session, "send INFO", (s) => s.sendInfo(contentType, body));
  }

  /** Ends the call at once (503 before our answer, BYE after): the signalling is stopping. */
  shutdown(): void {
    if (this.answerable) {
      this.reject(503, "Service Unavailable");
      return;
    }
    if (this.session) this.session.shutdown();
    else if (this.currentState === "accepted") {
      // Our 2xx was on its way and no dialog came of it yet.
      this.setState("terminated");
      this.done();
    }
  }

  protected onSessionEnded(reason: SipEndReason): void {
    if (this.currentState === "terminated") return;
    this.setState("terminated");
    this.emit("ended", reason);
    this.done();
  }

  protected clearAnswerTimer(): void {
    if (this.answerTimer) clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
  }

  protected done(): void {
    this.clearAnswerTimer();
    this.released();
  }
}
