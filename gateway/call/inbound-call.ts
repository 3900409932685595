import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { CallError } from "../errors.js";
import { GraphApiError } from "../meta/graph-errors.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import { CallMedia } from "./call-media.js";
import type { InboundSignalling } from "./inbound-signalling.js";
import { containWith } from "./contain.js";
import { callEndRecord, type CallEndInfo, type CallOutcome, type MetaCall, type PbxDialogInfo } from "./meta-call.js";
import type { PbxMediaStats } from "./pbx-media.js";
import { SerialQueue } from "./serial-queue.js";
import type { CallTransfers, TransferredParty } from "./call-transfer.js";
import type { FarMedia } from "./far-media.js";
import type { CallTarget, RingInfo, TargetFailure } from "./target.js";
import type { SipReferRequest } from "../../sip/signaling.js";

/**
 * Named states of a consumer-initiated call:
 * - `ringing`: the connect webhook arrived, the target is ringing, our SDP is ready (Messenger: our
 *   offer; WhatsApp: our answer, pre-accepted);
 * - `accepting`: the target answered, `accept` is in flight;
 * - `connecting`: Meta's SDP applied, waiting for ICE/DTLS;
 * - `active`: media flows both ways;
 * - `ended`: both legs are down and every resource is released.
 */
export type InboundCallState = "ringing" | "accepting" | "connecting" | "active" | "ended";

export interface InboundCallEvents {
  state: [InboundCallState];
  ended: [CallEndInfo];
}

export interface InboundCallOptions {
  callId: string;
  /** Who is calling, for the target's INVITE. */
  ring: RingInfo;
  leg: MetaMediaLeg;
  target: CallTarget;
  /** How a REFER from the answered party is followed. */
  transfers: CallTransfers;
  /** What the platform (Messenger, WhatsApp) does at Meta. */
  signalling: InboundSignalling;
  log: Logger;
  /** Meta gives 60 s to accept; give up (reject) before that. */
  acceptTimeoutMs: number;
  /** From accept to DTLS up. */
  connectTimeoutMs: number;
  /** Ends an active call when the consumer's RTP stops for this long. */
  mediaTimeoutMs: number;
}


/**
 * A consumer calls the business. The target rings at once, and the call is accepted at Meta when
 * it answers (so the consumer's "connected" means someone is there); what the platform does in
 * between (Messenger offers, WhatsApp answers and pre-accepts) is its InboundSignalling.
 */
export class InboundCall extends EventEmitter<InboundCallEvents> implements MetaCall {
  readonly direction = "inbound";
  private _state: InboundCallState = "ringing";
  private readonly queue: SerialQueue;
  private readonly startedAt = Date.now();
  private acceptTimer: NodeJS.Timeout | undefined;
  private readonly media: CallMedia;
  /** The party the consumer is bridged to: the target, or whoever a transfer moved the call to. */
  private target: CallTarget;

  constructor(private readonly o: InboundCallOptions) {
    super();
    this.target = o.target;
    this.queue = new SerialQueue((err) => this.failFromError(err));
    this.media = new CallMedia({
      leg: o.leg,
      meta: o.signalling.media,
      queue: this.queue,
      log: o.log,
      callId: () => o.callId,
      mediaTimeoutMs: o.mediaTimeoutMs,
      onMediaTimeout: (detail) => void this.queue.push(() => this.endBoth("media-timeout", detail)),
      onError: (err) => this.failFromError(err),
    });
  }

  get callId(): string {
    return this.o.callId;
  }

  get businessId(): string {
    return this.o.signalling.businessId;
  }

  get state(): InboundCallState {
    return this._state;
  }

  /**
   * Rings the target and prepares the platform's SDP. Resolves when both are under way. On
   * Messenger the INVITE goes first: gathering and certificate work take milliseconds per call and,
   * when many calls arrive at once, would otherwise queue every INVITE behind every offer. WhatsApp
   * pre-accepts first, so media connects while the PBX rings. Target events are queued behind this
   * task, so an answer always finds the SDP ready.
   */
  start(): Promise<void> {
    return this.queue.push(async () => {
      const { leg, target, log, signalling } = this.o;
      if (signalling.prepareBeforeRinging) await signalling.prepare(leg);
      const c = containWith((err) => this.failFromError(err));
      // Bridged at once: what the far end says from now on is held for the consumer, not lost.
      target.on(
        "earlyMedia",
        c((far) => {
          this.media.bridge(far);
          void this.queue.push(() => this.onTargetEarlyMedia());
        }),
      );
      target.on(
        "answered",
        c((far) => {
          this.media.bridge(far);
          this.watchTransfers(far);
          void this.queue.push(() => this.onTargetAnswered());
        }),
      );
      target.on("failed", (why, detail) => void this.queue.push(() => this.onTargetFailed(why, detail)));
      target.on("ended", (detail) => void this.queue.push(() => this.hangUpFromTarget(detail)));
      leg.on("state", (s) => {
        if (s === "failed") void this.queue.push(() => this.endBoth("media-failed", "ICE/DTLS toward Meta failed"));
      });
      this.acceptTimer = setTimeout(
        () => void this.queue.push(() => this.onTargetFailed("no-answer", `not answered within ${this.o.acceptTimeoutMs} ms`)),
        this.o.acceptTimeoutMs,
      );
      log.info({ target: target.kind }, "call ringing target");
      target.ring(this.o.ring);
      if (!signalling.prepareBeforeRinging) await signalling.prepare(leg);
    });
  }

  /** The consumer (or Meta) ended the call: terminate webhook. */
  onMetaTerminate(status: string, errors?: string): Promise<void> {
    return this.queue.push(async () => {
      if (this._state === "ended") return;
      // Messenger writes `Completed`, WhatsApp `COMPLETED` (lower-cased by its parser).
      const outcome: CallOutcome = this._state === "active" || status.toLowerCase() === "completed" ? "completed-consumer-hangup" : "consumer-gone";
      await this.finish(outcome, terminateDetail(status, errors), { tellMeta: false });
    });
  }

  /** A media_update webhook: Meta's new offer, under the version rules (CallMedia). */
  onMetaMediaUpdate(version: number, sdp: string): Promise<void> {
    return this.queue.push(async () => {
      if (this._state !== "active" && this._state !== "connecting") return;
      await this.media.applyMetaOffer(version, sdp);
    });
  }

  pbxMediaStats(): PbxMediaStats | undefined {
    return this.media.farStats();
  }

  whenEnded(listener: (info: CallEndInfo) => void): void {
    this.once("ended", listener);
  }

  /** call_status belongs to calls the business placed; a consumer's call never gets one. */
  async onMetaCallStatus(status: "ringing" | "accepted" | "rejected"): Promise<void> {
    this.o.log.warn({ status }, "call_status for a consumer-initiated call ignored");
  }

  /** Ends the call from our side (operator, shutdown). */
  hangup(detail = "local hangup"): Promise<void> {
    return this.queue.push(() => this.endBoth("completed-local-hangup", detail));
  }

  /** ACCEPT_ON=early-media: the consumer is accepted on the PBX's prompts or ringback. */
  private async onTargetEarlyMedia(): Promise<void> {
    if (this._state !== "ringing") return;
    this.o.log.info("accepting on the PBX's early media");
    await this.acceptAtMeta();
  }

  private async onTargetAnswered(): Promise<void> {
    if (this._state !== "ringing") {
      if (!this.isEnded()) this.o.log.info("PBX answered after its early media");
      return;
    }
    await this.acceptAtMeta();
  }

  private async acceptAtMeta(): Promise<void> {
    this.clearAcceptTimer();
    this.setState("accepting");
    const { leg, signalling, log } = this.o;
    try {
      await signalling.accept(correlationId(this.target));
    } catch (err) {
      await this.onAcceptFailed(err);
      return;
    }
    if (this.isEnded()) return;
    this.setState("connecting");
    try {
      await signalling.completeAccept(leg);
    } catch (err) {
      // Meta accepted: the call is up there, so it is terminated, not rejected.
      log.warn({ err: (err as Error).message }, "Meta's SDP in the accept response is unusable");
      await this.endBoth("accept-failed", `Meta's SDP in the accept response is unusable: ${(err as Error).message}`);
      return;
    }
    // Waiting for DTLS happens outside the queue: a terminate arriving meanwhile must not wait
    // behind the handshake.
    leg.waitConnected(this.o.connectTimeoutMs).then(
      () => void this.queue.push(() => this.onMediaConnected()),
      (err: unknown) => void this.queue.push(() => this.endBoth("media-failed", (err as Error).message)),
    );
  }

  private onMediaConnected(): void {
    if (this._state !== "connecting") return;
    this.setState("active");
    this.media.startFlowing();
    this.o.log.info({ setupMs: Date.now() - this.startedAt }, "call active");
  }

  private async onAcceptFailed(err: unknown): Promise<void> {
    const { signalling, log } = this.o;
    const gerr = err instanceof GraphApiError ? err : undefined;
    log.warn(
      { err: gerr ? { kind: gerr.kind, code: gerr.code, subcode: gerr.subcode, fbtraceId: gerr.fbtraceId, class: gerr.errorClass } : err },
      "accept failed",
    );
    if (gerr?.errorClass !== "call-gone") {
      // A definite refusal leaves the consumer ringing: reject. After a timeout nobody knows whether
      // the accept took, and a reply we cannot use came with a success: only terminate ends both a
      // ringing and an accepted call.
      const end = gerr?.kind === "graph" ? signalling.reject : signalling.terminate;
      await end.call(signalling).catch((e: unknown) => log.warn({ err: e }, "could not end the call at Meta"));
    }
    await this.finish("accept-failed", gerr ? gerr.message : String(err), { tellMeta: false });
  }

  private async onTargetFailed(why: TargetFailure, detail: string): Promise<void> {
    if (this.isEnded()) return;
    if (this._state !== "ringing") {
      // Accepted on early media, then the PBX never answered: the call is up at Meta, terminate it.
      await this.endBoth(`target-${why}`, detail);
      return;
    }
    await this.o.signalling.reject().catch((e: unknown) => this.o.log.warn({ err: e }, "reject failed"));
    await this.finish(`target-${why}`, detail, { tellMeta: false });
  }

  pbxDialog(): PbxDialogInfo | undefined {
    const id = this.target.dialogId;
    return id === undefined || this._state !== "active" ? undefined : { ...id, hosts: this.o.transfers.pbxHosts };
  }

  replaceParty(party: TransferredParty): Promise<void> {
    return this.queue.push(() => this.switchTo(party));
  }

  /** A REFER from the party the consumer is bridged to. */
  private watchTransfers(far: FarMedia): void {
    far.on("refer", (request) => void this.onRefer(request));
  }

  private onRefer(request: SipReferRequest): Promise<void> {
    return this.o.transfers.handle(request, {
      active: this._state === "active",
      ring: this.o.ring,
      log: this.o.log,
      inQueue: (step) => this.queue.push(step),
      switchTo: (party) => this.switchTo(party),
      end: (detail) => this.endBoth("completed-target-hangup", detail),
    });
  }

  private async switchTo(party: TransferredParty): Promise<void> {
    if (this.isEnded()) {
      await party.target.hangup("the call ended during the transfer");
      return;
    }
    const previous = this.target;
    this.target = party.target;
    party.target.on("ended", (detail) => void this.queue.push(() => this.hangUpFromTarget(detail)));
    this.watchTransfers(party.far);
    this.media.replaceFar(party.far);
    await previous.hangup("transferred");
    this.o.log.info("transfer complete: the consumer is with the new party");
  }

  private async hangUpFromTarget(detail: string): Promise<void> {
    if (this.isEnded()) return;
    if (this.o.transfers.partyLeft()) {
      this.o.log.info({ detail }, "the transferring party hung up; the consumer waits for the new party");
      return;
    }
    await this.endBoth("completed-target-hangup", detail);
  }

  /** Ends the call on both legs, telling Meta in the way that fits the state. */
  private async endBoth(outcome: CallOutcome, detail: string): Promise<void> {
    if (this.isEnded()) return;
    await this.finish(outcome, detail, { tellMeta: true });
  }

  private async finish(outcome: CallOutcome, detail: string, opts: { tellMeta: boolean }): Promise<void> {
    if (this.isEnded()) return;
    const wasState = this._state;
    this.setState("ended");
    this.clearAcceptTimer();
    this.media.close();
    const { signalling, leg, log } = this.o;
    const { target } = this;
    if (opts.tellMeta) {
      const end = wasState === "ringing" ? signalling.reject : signalling.terminate;
      await end.call(signalling).catch((e: unknown) => log.warn({ err: e }, "could not end the call at Meta"));
    }
    await Promise.allSettled([target.hangup(detail), leg.close()]);
    this.queue.close();
    this.emit("ended", callEndRecord({ callId: this.o.callId, platform: this.o.signalling.platform, businessId: this.o.signalling.businessId, outcome, detail, startedAt: this.startedAt, mediaFlowed: this.media.mediaFlowed, leg, pbx: this.pbxMediaStats(), log }));
    this.removeAllListeners();
  }

  private failFromError(err: unknown): void {
    if (this.isEnded()) return;
    this.o.log.error({ err }, "call step failed");
    const detail = err instanceof CallError || err instanceof Error ? err.message : String(err);
    // Runs outside the queue: the failing step is over, and finishing must not wait behind it.
    void this.finish("error", detail, { tellMeta: true });
  }

  private clearAcceptTimer(): void {
    if (this.acceptTimer) clearTimeout(this.acceptTimer);
    this.acceptTimer = undefined;
  }

  private isEnded(): boolean {
    return this._state === "ended";
  }

  private setState(s: InboundCallState): void {
    if (this._state === s) return;
    this._state = s;
    this.o.log.debug({ state: s }, "call state");
    this.emit("state", s);
  }
}

/**
 * What Meta echoes back to identify the call on our side (WhatsApp's biz_opaque_callback_data):
 * the SIP Call-ID of the PBX leg, which the integrator's PBX logs too.
 */
function correlationId(target: CallTarget): string | undefined {
  return target.dialogId?.callId;
}

/** The end record's detail for Meta's terminate webhook. */
export function terminateDetail(status: string, errors: string | undefined): string {
  return `terminate webhook (${status}${errors ? `: ${errors}` : ""})`;
}
