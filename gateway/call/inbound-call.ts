import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { CallError } from "../errors.js";
import { GraphApiError } from "../meta/graph-errors.js";
import { MediaVersionMachine, type LocalOutcome, type RemoteOffer } from "../meta/media-version.js";
import type { MetaLeg } from "../webrtc/meta-leg.js";
import { videoCodecFromEncodingName, type VideoCodec } from "../../transcode/video/video-codec.js";
import { ConsumerMedia } from "./consumer-media.js";
import { callEndRecord, type CallEndInfo, type CallOutcome, type MessengerCall } from "./messenger-call.js";
import type { PbxMediaStats } from "./pbx-media.js";
import { watchMetaMedia } from "./media-watchdog.js";
import { SerialQueue } from "./serial-queue.js";
import type { CallTarget, TargetFailure } from "./target.js";

type TrackStatus = { msid: string; label: "default_audio" | "default_video" | "screen_audio" | "screen_video"; status: "enabled" | "disabled" };

/** The Graph API calls a consumer-initiated call makes; the GraphClient provides them. */
export interface MetaCallControl {
  accept(callId: string, sdpOffer: string): Promise<{ answer: string; reoffer?: string }>;
  mediaUpdate(o: { callId: string; fromVersion: number; toVersion: number; sdpOffer: string; tracks?: TrackStatus[] }): Promise<{ answer?: string; reoffer?: string }>;
  /** `tracks` only: no renegotiation, the version stays. */
  updateTracks(o: { callId: string; version: number; tracks: TrackStatus[] }): Promise<void>;
  reject(callId: string): Promise<void>;
  terminate(callId: string): Promise<void>;
}

/**
 * Named states of a consumer-initiated Messenger call:
 * - `ringing`: the connect webhook arrived, our offer is built, the target is ringing;
 * - `accepting`: the target answered, `accept` with our offer is in flight;
 * - `connecting`: Meta's answer (and re-offer) applied, waiting for ICE/DTLS;
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
  psid: string;
  leg: MetaLeg;
  target: CallTarget;
  meta: MetaCallControl;
  log: Logger;
  /** Meta gives 60 s to accept; give up (reject) before that. */
  acceptTimeoutMs: number;
  /** From accept to DTLS up. */
  connectTimeoutMs: number;
  /** Ends an active call when the consumer's RTP stops for this long. */
  mediaTimeoutMs: number;
}


/** How long a collided media_update waits for Meta's own offer before it retries anyway. */
const COLLISION_WAIT_MS = 2000;

/** Meta's answer to a media_update that crossed one of its own: "conflicting media status". */
function isMediaConflict(err: unknown): boolean {
  return err instanceof GraphApiError && err.kind === "graph" && /conflict/i.test(err.message);
}

/**
 * A consumer calls the business on Messenger. The connect webhook carries no SDP: we offer, ring
 * the target at once, and `accept` with our offer when the target answers (so the consumer's
 * "connected" means someone is there). Meta answers in the HTTP response and re-offers; the
 * consumer's audio then arrives on the transceiver the re-offer added.
 */
export class InboundCall extends EventEmitter<InboundCallEvents> implements MessengerCall {
  readonly direction = "inbound";
  private _state: InboundCallState = "ringing";
  private readonly queue: SerialQueue;
  private readonly startedAt = Date.now();
  private offer: string | undefined;
  private acceptTimer: NodeJS.Timeout | undefined;
  private stopWatchdog: () => void = () => undefined;
  private readonly consumer: ConsumerMedia;
  private readonly mediaVersion = new MediaVersionMachine();
  private consumerVideo: VideoCodec | undefined;
  /** A change of our own video toward the consumer, waiting for (or retrying) its media_update. */
  private pendingVideoChange: { send: boolean; done: (accepted: boolean) => void; attempts: number } | undefined;
  private collisionTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: InboundCallOptions) {
    super();
    this.queue = new SerialQueue((err) => this.failFromError(err));
    this.consumer = new ConsumerMedia(o.leg, o.log);
  }

  get callId(): string {
    return this.o.callId;
  }

  get state(): InboundCallState {
    return this._state;
  }

  /**
   * Rings the target, then builds our offer while it rings. Resolves when both are under way.
   * The INVITE goes first: gathering and certificate work take milliseconds per call and, when many
   * calls arrive at once, would otherwise queue every INVITE behind every offer. Target events are
   * queued behind this task, so an answer always finds the offer ready.
   */
  start(): Promise<void> {
    return this.queue.push(async () => {
      const { leg, target, log } = this.o;
      target.on("answered", () => void this.queue.push(() => this.onTargetAnswered()));
      target.on("failed", (why, detail) => void this.queue.push(() => this.onTargetFailed(why, detail)));
      target.on("ended", (detail) => void this.queue.push(() => this.hangUpFromTarget(detail)));
      // Once the target answered, its audio is for the consumer (held until the Meta leg is up).
      target.on("audio", (frame) => {
        if (this._state !== "ringing" && this._state !== "ended") this.consumer.send(frame);
      });
      target.on("dtmf", (digit, durationMs) => this.consumer.sendDtmf(digit, durationMs));
      this.consumer.on("audio", (frame) => target.sendAudio(frame));
      this.consumer.on("dtmf", (digit, durationMs) => target.sendDtmf(digit, durationMs));
      target.on("keyframeRequest", () => leg.requestKeyframe());
      target.on("farVideo", (on, done) => {
        this.pendingVideoChange?.done(false);
        this.pendingVideoChange = { send: on, done, attempts: 0 };
        void this.queue.push(() => this.tryVideoChange());
      });
      target.on("video", (p) => {
        if (this._state === "active") leg.sendVideo(p.payload, p.timestamp, p.marker);
      });
      leg.on("keyframeRequest", () => target.requestFarKeyframe?.());
      leg.on("rtp", (inbound) => {
        if (inbound.kind === "video" && this._state === "active") target.sendVideo?.(inbound.packet, inbound.arrivalMs);
      });
      leg.on("state", (s) => {
        if (s === "failed") void this.queue.push(() => this.endBoth("media-failed", "ICE/DTLS toward Meta failed"));
      });
      this.acceptTimer = setTimeout(
        () => void this.queue.push(() => this.onTargetFailed("no-answer", `not answered within ${this.o.acceptTimeoutMs} ms`)),
        this.o.acceptTimeoutMs,
      );
      log.info({ target: target.kind }, "call ringing target");
      target.ring({ callId: this.o.callId, psid: this.o.psid });
      this.offer = await leg.createOffer();
    });
  }

  /** The consumer (or Meta) ended the call: terminate webhook. */
  onMetaTerminate(status: string): Promise<void> {
    return this.queue.push(async () => {
      if (this._state === "ended") return;
      const outcome: CallOutcome = this._state === "active" || status === "Completed" ? "completed-consumer-hangup" : "consumer-gone";
      await this.finish(outcome, `terminate webhook (${status})`, { tellMeta: false });
    });
  }

  /**
   * A media_update webhook: Meta's new offer, applied and answered locally under the version rules
   * (stale and duplicate versions dropped; the highest wins).
   */
  onMetaMediaUpdate(version: number, sdp: string): Promise<void> {
    return this.queue.push(async () => {
      if (this._state !== "active" && this._state !== "connecting") return;
      const decision = this.mediaVersion.onWebhook({ version, sdp });
      if (decision.kind !== "apply") {
        this.o.log.info({ version, current: this.mediaVersion.version, decision: decision.kind === "drop" ? decision.reason : "held" }, "media_update not applied");
        return;
      }
      await this.o.leg.applyOffer(decision.offer.sdp);
      this.mediaVersion.remoteApplied(decision.offer.version);
      this.o.log.info({ version }, "media_update applied");
      await this.followConsumerVideo();
      // A media_update of ours that collided with this one goes again from the new version.
      if (this.pendingVideoChange && this.mediaVersion.readyToRetry) await this.tryVideoChange();
    });
  }

  /**
   * Our own media_update: start or stop sending the far end's video to the consumer. The first start
   * offers a video m-line; a collision (Meta changed media at the same moment) rolls back, lets
   * Meta's offer apply, and tries again from the new version, a bounded number of times. Once Meta
   * accepted that m-line, stopping and starting again only change the track's status (`tracks`
   * without an offer), which keeps the media version.
   */
  private async tryVideoChange(): Promise<void> {
    const change = this.pendingVideoChange;
    if (!change || this._state !== "active") {
      change?.done(false);
      this.pendingVideoChange = undefined;
      return;
    }
    if (this.collisionTimer) clearTimeout(this.collisionTimer);
    this.collisionTimer = undefined;
    const { leg, meta, log } = this.o;
    // Once Meta agreed to our video m-line, on and off are a track status: nothing to renegotiate.
    const trackMsid = leg.videoOutMsid;
    if (trackMsid !== undefined && leg.sendsVideo) {
      this.pendingVideoChange = undefined;
      const status = change.send ? "enabled" : "disabled";
      try {
        await meta.updateTracks({ callId: this.o.callId, version: this.mediaVersion.version, tracks: [{ msid: trackMsid, label: "default_video", status }] });
      } catch (err) {
        log.warn({ err, status }, "Meta refused our video track status; the video stays as it was");
        change.done(false);
        return;
      }
      leg.pauseVideo(!change.send);
      log.info({ status, version: this.mediaVersion.version }, "our video track status changed at Meta");
      change.done(true);
      return;
    }
    change.attempts++;
    const versions = this.mediaVersion.beginLocalOffer();
    const { sdp, msid } = await leg.offerOutboundVideo(change.send);
    let outcome: LocalOutcome;
    try {
      const res = await meta.mediaUpdate({
        callId: this.o.callId,
        ...versions,
        sdpOffer: sdp,
        tracks: [{ msid, label: "default_video", status: change.send ? "enabled" : "disabled" }],
      });
      outcome = { kind: "response", answer: res.answer, reoffer: res.reoffer };
    } catch (err) {
      outcome = isMediaConflict(err) ? { kind: "conflict" } : { kind: "error" };
      log.info({ err: err instanceof GraphApiError ? err.message : String(err), ...versions }, "media_update refused");
    }
    const decision = this.mediaVersion.onLocalOutcome(outcome);
    if (decision.kind === "applied") {
      await leg.applyRenegotiationAnswer(decision.answer);
      if (decision.reoffer) {
        await leg.applyOffer(decision.reoffer.sdp);
        this.mediaVersion.remoteApplied(decision.reoffer.version);
      }
      await this.applyHeld(decision.heldOffers);
      this.pendingVideoChange = undefined;
      log.info({ sendVideo: change.send, version: this.mediaVersion.version, accepted: leg.sendsVideo === change.send }, "media_update done");
      change.done(leg.sendsVideo === change.send);
      return;
    }
    await leg.rollbackLocalOffer();
    await this.applyHeld(decision.heldOffers);
    if (decision.kind === "failed" || !decision.retry) {
      this.pendingVideoChange = undefined;
      change.done(false);
      return;
    }
    log.info({ attempt: change.attempts, version: this.mediaVersion.version }, "media_update collided; retrying after Meta's offer");
    if (this.mediaVersion.readyToRetry) {
      await this.tryVideoChange();
      return;
    }
    // Meta's own media_update is on its way; if it never comes, retry from where we are.
    this.collisionTimer = setTimeout(() => {
      this.collisionTimer = undefined;
      this.mediaVersion.giveUpWaiting();
      void this.queue.push(() => this.tryVideoChange());
    }, COLLISION_WAIT_MS);
  }

  private async applyHeld(offers: RemoteOffer[]): Promise<void> {
    for (const offer of offers) {
      await this.o.leg.applyOffer(offer.sdp);
      this.mediaVersion.remoteApplied(offer.version);
    }
    if (offers.length > 0) await this.followConsumerVideo();
  }

  /** Video on or off at the consumer's side is carried to the target (a re-INVITE for a PBX). */
  private async followConsumerVideo(): Promise<void> {
    const name = this.o.leg.inboundVideoCodec();
    const codec = name === undefined ? undefined : videoCodecFromEncodingName(name);
    if (codec !== this.consumerVideo) {
      this.consumerVideo = codec;
      this.o.log.info({ codec: codec ?? "off" }, "consumer video changed");
      await this.o.target.setConsumerVideo?.(codec);
    }
  }

  pbxMediaStats(): PbxMediaStats | undefined {
    return this.o.target.pbxMediaStats?.();
  }

  whenEnded(listener: (info: CallEndInfo) => void): void {
    this.once("ended", listener);
  }

  /** call_status belongs to calls the business placed; a consumer's call never gets one. */
  async onMetaCallStatus(status: "ringing" | "accepted"): Promise<void> {
    this.o.log.warn({ status }, "call_status for a consumer-initiated call ignored");
  }

  /** Ends the call from our side (operator, shutdown). */
  hangup(detail = "local hangup"): Promise<void> {
    return this.queue.push(() => this.endBoth("completed-local-hangup", detail));
  }

  private async onTargetAnswered(): Promise<void> {
    if (this._state !== "ringing") return;
    this.clearAcceptTimer();
    this.setState("accepting");
    const { leg, meta, log } = this.o;
    let answer: string;
    let reoffer: string | undefined;
    try {
      ({ answer, reoffer } = await meta.accept(this.o.callId, this.offer!));
    } catch (err) {
      await this.onAcceptFailed(err);
      return;
    }
    if (this.isEnded()) return;
    this.setState("connecting");
    await leg.applyAnswer(answer);
    if (reoffer) await leg.applyOffer(reoffer);
    else log.warn("accept response carried no sdp_renegotiation; consumer audio may not arrive");
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
    this.consumer.startFlowing();
    // The consumer's camera may already be on in the re-offer that came with accept.
    void this.queue.push(() => this.followConsumerVideo());
    this.stopWatchdog = watchMetaMedia(this.o.leg, this.o.mediaTimeoutMs, (detail) => void this.queue.push(() => this.endBoth("media-timeout", detail)));
    this.o.log.info({ setupMs: Date.now() - this.startedAt }, "call active");
  }

  private async onAcceptFailed(err: unknown): Promise<void> {
    const { meta, log } = this.o;
    const gerr = err instanceof GraphApiError ? err : undefined;
    log.warn(
      { err: gerr ? { kind: gerr.kind, code: gerr.code, subcode: gerr.subcode, fbtraceId: gerr.fbtraceId, class: gerr.errorClass } : err },
      "accept failed",
    );
    if (gerr?.errorClass !== "call-gone") {
      // A definite refusal leaves the consumer ringing: reject. After a timeout nobody knows whether
      // the accept took, and only terminate ends both a ringing and an accepted call.
      const end = gerr?.kind === "timeout" || gerr?.kind === "network" ? meta.terminate : meta.reject;
      await end.call(meta, this.o.callId).catch((e: unknown) => log.warn({ err: e }, "could not end the call at Meta"));
    }
    await this.finish("accept-failed", gerr ? gerr.message : String(err), { tellMeta: false });
  }

  private async onTargetFailed(why: TargetFailure, detail: string): Promise<void> {
    if (this._state !== "ringing") return;
    await this.o.meta.reject(this.o.callId).catch((e: unknown) => this.o.log.warn({ err: e }, "reject failed"));
    await this.finish(`target-${why}`, detail, { tellMeta: false });
  }

  private async hangUpFromTarget(detail: string): Promise<void> {
    if (this.isEnded()) return;
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
    this.stopWatchdog();
    this.consumer.stop();
    if (this.collisionTimer) clearTimeout(this.collisionTimer);
    this.collisionTimer = undefined;
    this.pendingVideoChange?.done(false);
    this.pendingVideoChange = undefined;
    const { meta, leg, target, log } = this.o;
    if (opts.tellMeta) {
      const end = wasState === "ringing" ? meta.reject : meta.terminate;
      await end.call(meta, this.o.callId).catch((e: unknown) => log.warn({ err: e }, "could not end the call at Meta"));
    }
    await Promise.allSettled([target.hangup(detail), leg.close()]);
    this.queue.close();
    this.emit("ended", callEndRecord({ callId: this.o.callId, outcome, detail, startedAt: this.startedAt, mediaFlowed: this.consumer.mediaFlowed, leg, log }));
    this.removeAllListeners();
  }

  private failFromError(err: unknown): void {
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
