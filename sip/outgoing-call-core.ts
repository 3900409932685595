import { EventEmitter } from "node:events";
import { throughSession, type AnsweredSession } from "./answered-session.js";
import type { SipLogger } from "./logger.js";
import type { OutgoingCallState, OutgoingSipCallEvents, PlaceCallOptions, SipEndReason, SipFailureKind } from "./signaling.js";

/**
 * A call we place, as both SIP backends run it around their own wire work: the named states, the
 * ring timer, CANCEL only after a provisional (RFC 3261 §9.1) with the failure reported at once
 * before one, BYE or CANCEL on hangup, re-INVITE and INFO through the answered dialog's session,
 * and exactly one `failed` or `ended`. A backend sends the INVITE and the CANCEL, answers what
 * comes back, and says what ending the call releases.
 */
export abstract class OutgoingCallCore<Session extends AnsweredSession> extends EventEmitter<OutgoingSipCallEvents> {
  protected currentState: OutgoingCallState = "calling";
  /** The answered dialog's session; undefined until the 2xx. */
  protected session: Session | undefined;
  protected provisionalSeen = false;
  protected cancelRequested = false;
  protected cancelSent = false;
  /** Why we are cancelling when it is not the caller's cancel() (ring timeout, stop). */
  protected cancelCause: { status: number; reason: string; kind: SipFailureKind } | undefined;
  /** The answer's SDP, kept once the call is answered. */
  protected remote: string | undefined;
  protected readonly finished: Promise<void>;
  private ringTimer: NodeJS.Timeout | undefined;
  private finishedResolve!: () => void;

  protected constructor(
    readonly sipCallId: string,
    readonly callId: string,
    protected readonly o: PlaceCallOptions,
    protected readonly logger: SipLogger,
    private readonly defaultRingTimeoutMs: number,
  ) {
    super();
    this.finished = new Promise((resolve) => (this.finishedResolve = resolve));
  }

  /**
   * Sends the INVITE on the next tick, so the caller can listen first. Called last in a backend's
   * constructor: a constructor that throws has placed no call.
   */
  protected begin(): void {
    process.nextTick(() => this.start());
  }

  get state(): OutgoingCallState {
    return this.currentState;
  }
  get localSdp(): string {
    return this.session?.localSdp ?? this.o.sdp;
  }
  get remoteSdp(): string | undefined {
    return this.session?.remoteSdp ?? this.remote;
  }

  /** Sends the first INVITE (the ring timer is running). */
  protected abstract sendInitialInvite(): void;
  /** Sends the CANCEL for the INVITE in progress (at most once). */
  protected abstract sendCancel(): void;
  /** The signalling is stopping and the call was never answered: CANCEL best effort and fail it. */
  protected abstract stopUnanswered(): void;
  /** The call is over: what the backend holds for it goes. */
  protected abstract released(): void;

  /** Whether a CANCEL can go out now: only once a provisional has arrived (§9.1). */
  protected canCancelNow(): boolean {
    return this.provisionalSeen;
  }

  protected setState(s: OutgoingCallState): void {
    if (this.currentState === s) return;
    this.currentState = s;
    this.emit("state", s);
  }

  private start(): void {
    if (this.currentState === "terminated") return;
    const ringMs = this.o.timeoutMs ?? this.defaultRingTimeoutMs;
    this.ringTimer = setTimeout(() => {
      this.ringTimer = undefined;
      this.cancelCause = { status: 408, reason: `No Answer within ${ringMs} ms`, kind: "no-answer" };
      void this.cancel();
    }, ringMs);
    this.sendInitialInvite();
  }

  cancel(): Promise<void> {
    switch (this.currentState) {
      case "calling":
      case "proceeding":
      case "early": {
        this.cancelRequested = true;
        this.setState("cancelling");
        this.stopRingTimer();
        if (this.canCancelNow()) {
          this.sendCancel();
        } else {
          // §9.1: no CANCEL before a provisional. The caller learns now; a late provisional still
          // gets its CANCEL, a late 2xx its ACK and BYE.
          this.failCancelled();
        }
        return this.finished;
      }
      case "confirmed":
        return this.hangup();
      default:
        return this.finished;
    }
  }

  hangup(): Promise<void> {
    if (this.currentState === "confirmed" && this.session) {
      this.setState("terminating");
      return this.session.hangup().then(() => this.finished);
    }
    if (this.currentState === "terminating") return this.finished;
    return this.cancel();
  }

  reinvite(sdp: string): Promise<string> {
    return throughSession(this, this.currentState, ["confirmed"], this.session, "re-INVITE", (s) => s.reinvite(sdp));
  }

  sendInfo(contentType: string, body: string): Promise<number> {
    return throughSession(this, this.currentState, ["confirmed"], this.session, "send INFO", (s) => s.sendInfo(contentType, body));
  }

  /** Ends the call at once (BYE or CANCEL sent best effort): the signalling is stopping. */
  shutdown(): void {
    switch (this.currentState) {
      case "confirmed":
      case "terminating":
        this.setState("terminating");
        this.session?.shutdown();
        return;
      default:
        this.stopUnanswered();
    }
  }

  protected onSessionEnded(reason: SipEndReason): void {
    if (this.currentState === "confirmed" || this.currentState === "terminating") {
      this.setState("terminated");
      this.emit("ended", reason);
      this.done();
    }
    // Otherwise the call already reported `failed` (a 2xx we are tearing down).
  }

  /** Fails the call with why it was cancelled, or with the given final response when nothing else is known. */
  protected failCancelled(status = 487, reason = "Request Terminated"): void {
    const cause = this.cancelCause;
    this.fail(cause?.status ?? status, cause?.reason ?? reason, cause?.kind ?? "cancelled");
  }

  protected fail(status: number, reason: string, kind: SipFailureKind): void {
    if (this.currentState === "terminated") return;
    this.logger.info({ callId: this.callId, sipCallId: this.sipCallId, status, reason, kind }, "SIP call failed");
    this.setState("terminated");
    this.emit("failed", status, reason, kind);
    this.done();
  }

  protected stopRingTimer(): void {
    if (this.ringTimer) clearTimeout(this.ringTimer);
    this.ringTimer = undefined;
  }

  private done(): void {
    this.stopRingTimer();
    this.released();
    this.finishedResolve();
  }
}
