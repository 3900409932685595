import type { Logger } from "pino";
import { SdpError } from "../errors.js";
import { GraphApiError } from "../meta/graph-errors.js";
import { MediaVersionMachine, type LocalOutcome, type RemoteOffer } from "../meta/media-version.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import { videoCodecFromEncodingName, type VideoCodec } from "../../transcode/video/video-codec.js";
import { ConsumerMedia } from "./consumer-media.js";
import { containWith, type Contain } from "./contain.js";
import type { FarMedia } from "./far-media.js";
import { watchMetaMedia } from "./media-watchdog.js";
import type { PbxMediaStats } from "./pbx-media.js";
import type { SerialQueue } from "./serial-queue.js";

export type TrackStatus = {
  msid: string;
  label: "default_audio" | "default_video" | "screen_audio" | "screen_video";
  status: "enabled" | "disabled";
};

/** The Graph API calls a call makes to change media once it is up; the GraphClient provides them. */
export interface MetaMediaControl {
  mediaUpdate(o: { callId: string; fromVersion: number; toVersion: number; sdpOffer: string; tracks?: TrackStatus[] }): Promise<{ answer?: string; reoffer?: string }>;
  /** `tracks` only: no renegotiation, the version stays. */
  updateTracks(o: { callId: string; version: number; tracks: TrackStatus[] }): Promise<void>;
}

export interface CallMediaOptions {
  leg: MetaMediaLeg;
  /** Media changes at Meta; undefined where the platform has none (WhatsApp: audio only, no renegotiation). */
  meta: MetaMediaControl | undefined;
  /** The call's serial queue: every media step runs in it, after and before the call's own steps. */
  queue: SerialQueue;
  log: Logger;
  /** Meta's call id; an agent's call learns it from connect's response. */
  callId: () => string;
  mediaTimeoutMs: number;
  /** The consumer's media stopped for mediaTimeoutMs: the call must end. */
  onMediaTimeout: (detail: string) => void;
  /** An exception in one of the media handlers: the call must end (and only this call). */
  onError: (err: unknown) => void;
}

/**
 * Named states: `waiting` (no far end yet), `bridged` (the far end answered; what it says for the
 * consumer is held until the Meta leg is up), `flowing` (media both ways, media updates both
 * ways), `closed`.
 */
export type CallMediaState = "waiting" | "bridged" | "flowing" | "closed";

/** How long a collided media_update waits for Meta's own offer before it retries anyway. */
const COLLISION_WAIT_MS = 2000;
/** Keyframe requests toward Meta closer than this are served by the keyframe already asked for. */
const KEYFRAME_REQUEST_SPACING_MS = 500;

/** Meta's answer to a media_update that crossed one of its own: "conflicting media status". */
function isMediaConflict(err: unknown): boolean {
  return err instanceof GraphApiError && err.kind === "graph" && /conflict/i.test(err.message);
}

/**
 * What a call does with media once it is up, the same for both call directions: audio, digits and
 * video between the Meta leg and the far end; Meta's versioned media_update offers applied and
 * answered locally; our own media_update when the far end starts or stops video (collisions
 * rolled back and retried, tracks-only once Meta knows our video); keyframes and bandwidth both
 * ways; and the watchdog that ends a call whose consumer media stopped.
 */
export class CallMedia {
  private _state: CallMediaState = "waiting";
  private readonly consumer: ConsumerMedia;
  private readonly mediaVersion = new MediaVersionMachine();
  private far: FarMedia | undefined;
  private consumerVideo: VideoCodec | undefined;
  /** A change of our own video toward the consumer, waiting for (or retrying) its media_update. */
  private pendingVideoChange: { send: boolean; done: (accepted: boolean) => void; attempts: number } | undefined;
  private collisionTimer: NodeJS.Timeout | undefined;
  private stopWatchdog: (() => void) | undefined;
  private lastKeyframeRequestAt = Number.NEGATIVE_INFINITY;
  /** Every listener this session attaches runs through this: an exception ends the call, not the process. */
  private readonly contain: Contain;

  constructor(private readonly o: CallMediaOptions) {
    this.contain = containWith(o.onError);
    this.consumer = new ConsumerMedia(o.leg, o.log, o.onError);
    const { leg } = o;
    const c = this.contain;
    leg.on(
      "rtp",
      c((inbound) => {
        if (inbound.kind === "video" && this._state === "flowing") this.far?.sendVideo?.(inbound.packet, inbound.arrivalMs);
      }),
    );
    leg.on("keyframeRequest", c(() => this.far?.requestKeyframe?.()));
    leg.on("bitrateLimit", c((bps) => this.far?.limitVideoBitrate?.(bps)));
    // Toward whichever party the consumer is bridged to now.
    this.consumer.on("audio", c((frame) => this.far?.sendAudio(frame)));
    this.consumer.on("dtmf", c((digit, ms) => this.far?.sendDtmf(digit, ms)));
  }

  get state(): CallMediaState {
    return this._state;
  }

  /** Meta's media version (meta-calling-api.md §6): 0 until the first media_update is applied. */
  get version(): number {
    return this.mediaVersion.version;
  }

  /** Whether the consumer's audio reached us at least once. */
  get mediaFlowed(): boolean {
    return this.consumer.mediaFlowed;
  }

  /** The far end answered: bridge its media to the consumer's. */
  bridge(far: FarMedia): void {
    if (this._state !== "waiting") return;
    this._state = "bridged";
    this.wire(far);
  }

  /**
   * The consumer moves to another party (a transfer): its media is bridged from now on, with video
   * renegotiated toward it; the old party no longer reaches the consumer, and closing it is the
   * caller's. Our video toward the consumer (the old party's) is switched off until the new party
   * sends its own.
   */
  replaceFar(far: FarMedia): void {
    if (this._state === "waiting" || this._state === "closed" || far === this.far) return;
    this.wire(far);
    this.consumerVideo = undefined;
    void this.o.queue.push(() => this.followConsumerVideo());
    if (this.o.leg.sendsVideo) {
      this.pendingVideoChange?.done(false);
      this.pendingVideoChange = { send: false, done: () => undefined, attempts: 0 };
      void this.o.queue.push(() => this.tryVideoChange());
    }
  }

  /** Listens to `far`; events of a party the consumer was moved away from are ignored. */
  private wire(far: FarMedia): void {
    this.far = far;
    const { leg, queue } = this.o;
    const c = this.contain;
    const current = <A extends unknown[]>(listener: (...args: A) => void): ((...args: A) => void) =>
      c((...args: A) => {
        if (this.far === far) listener(...args);
      });
    far.on("audio", current((frame) => this.consumer.send(frame)));
    far.on("dtmf", current((digit, ms) => this.consumer.sendDtmf(digit, ms)));
    far.on("keyframeRequest", current(() => this.requestConsumerKeyframe()));
    far.on(
      "video",
      current((p) => {
        if (this._state === "flowing") leg.sendVideo(p.payload, p.timestamp, p.marker);
      }),
    );
    far.on("silent", current((detail) => this.o.onMediaTimeout(detail)));
    far.on("fault", current((err) => this.o.onError(err)));
    far.on(
      "farVideo",
      current((on, done) => {
        this.pendingVideoChange?.done(false);
        this.pendingVideoChange = { send: on, done, attempts: 0 };
        void queue.push(() => this.tryVideoChange());
      }),
    );
  }

  /** The Meta leg is up and the far end bridged: media flows both ways from now on. */
  startFlowing(): void {
    if (this._state !== "bridged") return;
    this._state = "flowing";
    this.consumer.startFlowing();
    this.startWatchdog();
    // The consumer's camera may already be on in the offer that set the call up.
    void this.o.queue.push(() => this.followConsumerVideo());
  }

  /**
   * Ends the call when no consumer media arrives for the configured time, counted from now. Started
   * when media starts to flow, or earlier by a direction that must not wait for that.
   */
  startWatchdog(context?: string): void {
    if (this.stopWatchdog || this._state === "closed") return;
    this.stopWatchdog = watchMetaMedia(this.o.leg, this.o.mediaTimeoutMs, (detail) => {
      this.o.onMediaTimeout(context && !this.consumer.mediaFlowed ? `${detail} ${context}` : detail);
    });
  }

  /**
   * A media_update webhook: Meta's new offer, applied and answered locally under the version rules
   * (stale and duplicate versions dropped; the highest wins). Resolves true when it was applied.
   * An offer the leg refuses is logged and dropped: the call keeps the media it has.
   */
  async applyMetaOffer(version: number, sdp: string): Promise<boolean> {
    if (this._state === "closed") return false;
    const { log } = this.o;
    const decision = this.mediaVersion.onWebhook({ version, sdp });
    if (decision.kind !== "apply") {
      log.info({ version, current: this.mediaVersion.version, decision: decision.kind === "drop" ? decision.reason : "held" }, "media_update not applied");
      return false;
    }
    if (!(await this.applyRemote(decision.offer))) return false;
    log.info({ version }, "media_update applied");
    await this.followConsumerVideo();
    // A media_update of ours that collided with this one goes again from the new version.
    if (this.pendingVideoChange && this.mediaVersion.readyToRetry) await this.tryVideoChange();
    return true;
  }

  farStats(): PbxMediaStats | undefined {
    return this.far?.stats?.();
  }

  /** Stops every timer and the consumer's media; the legs themselves are closed by the call. */
  close(): void {
    if (this._state === "closed") return;
    this._state = "closed";
    this.stopWatchdog?.();
    this.consumer.stop();
    if (this.collisionTimer) clearTimeout(this.collisionTimer);
    this.collisionTimer = undefined;
    this.pendingVideoChange?.done(false);
    this.pendingVideoChange = undefined;
  }

  /** PLI toward the consumer, paced: one keyframe serves every request made while it is on its way. */
  private requestConsumerKeyframe(): void {
    const now = performance.now();
    if (now - this.lastKeyframeRequestAt < KEYFRAME_REQUEST_SPACING_MS) return;
    this.lastKeyframeRequestAt = now;
    this.o.leg.requestKeyframe();
  }

  /** Applies one of Meta's offers; false (logged) when the leg refused it. */
  private async applyRemote(offer: RemoteOffer): Promise<boolean> {
    try {
      await this.o.leg.applyOffer(offer.sdp);
    } catch (err) {
      if (!(err instanceof SdpError)) throw err;
      // Meta counted this version; ours follows so the next exchange starts from the same number.
      this.mediaVersion.remoteApplied(offer.version);
      this.o.log.warn({ version: offer.version, err: err.message }, "media_update refused: the call keeps its current media");
      return false;
    }
    this.mediaVersion.remoteApplied(offer.version);
    return true;
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
    if (!change || this._state !== "flowing") {
      change?.done(false);
      this.pendingVideoChange = undefined;
      return;
    }
    if (this.collisionTimer) clearTimeout(this.collisionTimer);
    this.collisionTimer = undefined;
    const { leg, meta, log } = this.o;
    if (!meta) {
      // Nothing can carry the far end's video to the consumer: its re-INVITE is answered without it.
      this.pendingVideoChange = undefined;
      log.info({ send: change.send }, "the far end's video is not carried: this platform has no media updates");
      change.done(false);
      return;
    }
    const callId = this.o.callId();
    // Once Meta agreed to our video m-line, on and off are a track status: nothing to renegotiate.
    const trackMsid = leg.videoOutMsid;
    if (trackMsid !== undefined && leg.sendsVideo) {
      this.pendingVideoChange = undefined;
      const status = change.send ? "enabled" : "disabled";
      try {
        await meta.updateTracks({ callId, version: this.mediaVersion.version, tracks: [{ msid: trackMsid, label: "default_video", status }] });
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
        callId,
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
      if (decision.reoffer) await this.applyRemote(decision.reoffer);
      await this.applyHeld(decision.heldOffers);
      this.pendingVideoChange = undefined;
      const accepted = leg.sendsVideo === change.send;
      log.info({ sendVideo: change.send, version: this.mediaVersion.version, accepted }, "media_update done");
      change.done(accepted);
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
      void this.o.queue.push(() => this.tryVideoChange());
    }, COLLISION_WAIT_MS);
  }

  private async applyHeld(offers: RemoteOffer[]): Promise<void> {
    let applied = false;
    for (const offer of offers) applied = (await this.applyRemote(offer)) || applied;
    if (applied) await this.followConsumerVideo();
  }

  /** Video on or off at the consumer's side is carried to the far end (a re-INVITE for a PBX). */
  private async followConsumerVideo(): Promise<void> {
    if (this._state !== "flowing") return;
    const name = this.o.leg.inboundVideoCodec();
    const codec = name === undefined ? undefined : videoCodecFromEncodingName(name);
    if (codec === this.consumerVideo) return;
    this.consumerVideo = codec;
    this.o.log.info({ codec: codec ?? "off" }, "consumer video changed");
    await this.far?.setConsumerVideo?.(codec);
  }
}
