import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { PortAllocator } from "../../sip/rtp/port-allocator.js";
import { readRemoteMedia } from "../../sip/sdp.js";
import type { OutgoingSipCall, ReinviteResponder, SipFailureKind, SipSignaling } from "../../sip/signaling.js";
import type { MediaTicker } from "./media-ticker.js";
import type { RtpPacketLike } from "../../transcode/video/depacketizer.js";
import type { VideoCodec } from "../../transcode/video/video-codec.js";
import { PbxMedia, type PbxMediaStats } from "./pbx-media.js";
import { VideoToPbx } from "./video-to-pbx.js";
import type { CallTarget, CallTargetEvents, Digit, OpusFrame, TargetFailure } from "./target.js";

export interface SipTargetOptions {
  signaling: SipSignaling;
  allocator: PortAllocator;
  ticker: MediaTicker;
  /** SIP URI consumer calls ring. */
  uri: string;
  auth: { username: string; password: string } | undefined;
  /** Address written in our SDP (public address, or the bind address). */
  mediaAddress: string;
  /** Ringing longer than this is given up (CANCEL) and reported as no answer. */
  ringTimeoutMs: number;
  pageId: string;
  log: Logger;
}

/**
 * Named states: `idle` → `ringing` (INVITE sent) → `answered` (media bridged) → `ended`;
 * a call that never answers goes `ringing` → `ended` through `failed`.
 */
export type SipTargetState = "idle" | "ringing" | "answered" | "ended";

export interface SipTargetStats extends Partial<PbxMediaStats> {
  state: SipTargetState;
  sipCallId: string | undefined;
}

/**
 * Rings the PBX over SIP for a consumer's call and bridges its audio through PbxMedia. The
 * consumer's PSID and the Messenger call id travel in headers the PBX can route on.
 */
export class SipTarget extends EventEmitter<CallTargetEvents> implements CallTarget {
  readonly kind = "sip";
  private _state: SipTargetState = "idle";
  private media: PbxMedia | undefined;
  private sip: OutgoingSipCall | undefined;
  private video: VideoToPbx | undefined;
  /** Whether the PBX's video currently goes to the consumer. */
  private pbxVideoOn = false;

  constructor(private readonly o: SipTargetOptions) {
    super();
  }

  get state(): SipTargetState {
    return this._state;
  }

  ring(info: { callId: string; psid: string }): void {
    if (this._state !== "idle") return;
    this._state = "ringing";
    void this.startRinging(info).catch((err: unknown) => {
      this.o.log.warn({ err }, "could not ring the PBX");
      this.fail("failed", (err as Error).message);
    });
  }

  sendAudio(frame: OpusFrame): void {
    if (this._state === "answered") this.media?.sendAudio(frame);
  }

  sendDtmf(digit: Digit, durationMs: number): void {
    if (this._state === "answered") this.media?.sendDtmf(digit, durationMs);
  }

  /**
   * The consumer turned video on or off: re-INVITE the PBX adding H.264 video (or removing it).
   * The call's audio is untouched by either.
   */
  async setConsumerVideo(codec: VideoCodec | undefined): Promise<void> {
    const { media, sip } = this;
    if (this._state !== "answered" || !media || !sip) return;
    if (codec === this.video?.codec) return;
    const previous = this.video;
    this.video = undefined;
    await previous?.close();
    if (codec === undefined) {
      if (!this.pbxVideoOn) await media.closeVideo();
      await this.renegotiate(media, sip);
      this.o.log.info("consumer video off: video removed toward the PBX");
      return;
    }
    await media.openVideo();
    await this.renegotiate(media, sip);
    if (!media.pbxTakesVideo) {
      this.o.log.info("the PBX declined video");
      await media.closeVideo();
      return;
    }
    const video = new VideoToPbx(codec, this.o.log);
    video.on("packet", (p) => media.sendVideo(p));
    video.on("keyframeNeeded", () => this.emit("keyframeRequest"));
    media.on("keyframeRequest", () => video.requestKeyframe());
    media.on("bitrateLimit", (bps) => video.setBitrateLimit(bps));
    try {
      await video.start();
    } catch (err) {
      this.o.log.error({ err }, "video toward the PBX could not start");
      await video.close();
      return;
    }
    this.video = video;
    const untick = this.o.ticker.add((now) => video.tick(now));
    video.once("closed", untick);
    // The PBX's decoder needs a keyframe to start.
    this.emit("keyframeRequest");
  }

  sendVideo(packet: RtpPacketLike, arrivalMs: number): void {
    this.video?.push(packet, arrivalMs);
  }

  async hangup(reason: string): Promise<void> {
    if (this._state === "ended") return;
    this._state = "ended";
    this.o.log.debug({ reason }, "SIP leg ending");
    if (this.sip) await this.sip.hangup().catch((err: unknown) => this.o.log.debug({ err }, "SIP hangup error"));
    await this.video?.close();
    await this.media?.close();
    this.removeAllListeners();
  }

  pbxMediaStats(): PbxMediaStats | undefined {
    return this.media?.stats();
  }

  stats(): SipTargetStats {
    return { state: this._state, sipCallId: this.sip?.sipCallId, ...this.media?.stats() };
  }

  private async startRinging(info: { callId: string; psid: string }): Promise<void> {
    const { log } = this.o;
    const media = await PbxMedia.open({
      allocator: this.o.allocator,
      ticker: this.o.ticker,
      mediaAddress: this.o.mediaAddress,
      log,
      sendInfo: (contentType, body) => this.sip?.sendInfo(contentType, body) ?? Promise.resolve(),
    });
    this.media = media;
    if (this._state === "ended") {
      await media.close();
      return;
    }
    media.on("audio", (frame) => this.emit("audio", frame));
    media.on("dtmf", (digit, ms) => this.emit("dtmf", digit, ms));
    const call = this.o.signaling.placeCall({
      uri: this.o.uri,
      sdp: media.offer(),
      callId: info.callId,
      from: { user: info.psid, displayName: "Messenger" },
      headers: { "X-Meta-PSID": info.psid, "X-Meta-Call-Id": info.callId, "X-Meta-Page-Id": this.o.pageId },
      timeoutMs: this.o.ringTimeoutMs,
      auth: this.o.auth,
    });
    this.sip = call;
    call.on("provisional", (status, reason) => log.debug({ status, reason }, "PBX provisional"));
    call.on("answered", (sdp) => this.onAnswered(sdp));
    call.on("failed", (status, reason, kind) => {
      log.info({ status, reason }, "PBX did not take the call");
      this.fail(failureOf(kind), `${status} ${reason}`);
    });
    call.on("ended", (reason) => {
      if (this._state === "ended") return;
      log.info({ reason }, "PBX leg ended");
      this._state = "ended";
      void this.video?.close();
      void media.close();
      this.emit("ended", reason === "remote-bye" ? "PBX hung up" : `SIP dialog ended (${reason})`);
    });
    call.on("reinvite", (offerSdp, respond) => void this.onPbxReinvite(media, offerSdp, respond));
    media.on("videoIn", (p) => this.emit("video", p));
    call.on("info", (contentType, body) => media.onInfo(contentType, body));
    log.info({ uri: this.o.uri, sipCallId: call.sipCallId }, "INVITE sent to PBX");
  }

  /**
   * A re-INVITE from the PBX. When it starts or stops sending video, the consumer's side is asked
   * first (a media_update to Meta) and the answer says what was agreed.
   */
  private async onPbxReinvite(media: PbxMedia, offerSdp: string, respond: ReinviteResponder): Promise<void> {
    if (offerSdp) {
      let sendsVideo = false;
      try {
        const video = readRemoteMedia(offerSdp).video;
        sendsVideo = video?.h264 !== undefined && (video.direction === "sendrecv" || video.direction === "sendonly");
      } catch {
        // An unusable offer is refused by answerReinvite below.
      }
      if (sendsVideo !== this.pbxVideoOn && this._state === "answered" && this.listenerCount("farVideo") > 0) {
        if (sendsVideo) await media.openVideo();
        const accepted = await new Promise<boolean>((resolve) => this.emit("farVideo", sendsVideo, resolve));
        this.pbxVideoOn = sendsVideo && accepted;
        this.o.log.info({ pbxVideo: this.pbxVideoOn }, "PBX video toward the consumer");
        if (!this.pbxVideoOn && !this.video) await media.closeVideo();
      }
    }
    media.answerReinvite(offerSdp, respond);
  }

  requestFarKeyframe(): void {
    this.media?.requestKeyframeFromPbx();
  }

  private async renegotiate(media: PbxMedia, sip: OutgoingSipCall): Promise<void> {
    try {
      const answer = await sip.reinvite(media.offer());
      media.setRemote(readRemoteMedia(answer));
    } catch (err) {
      this.o.log.warn({ err }, "re-INVITE toward the PBX failed; the call goes on as it was");
    }
  }

  private onAnswered(sdp: string): void {
    if (this._state !== "ringing" || !this.media) return;
    try {
      this.media.setRemote(readRemoteMedia(sdp));
    } catch (err) {
      this.o.log.warn({ err }, "PBX answer unusable");
      void this.sip?.hangup();
      this.fail("failed", `PBX answer unusable: ${(err as Error).message}`);
      return;
    }
    this.media.start();
    this._state = "answered";
    this.o.log.info({ codec: this.media.codec }, "PBX answered");
    this.emit("answered");
  }

  private fail(kind: TargetFailure, detail: string): void {
    if (this._state === "ended") return;
    const wasRinging = this._state === "ringing" || this._state === "idle";
    this._state = "ended";
    void this.media?.close();
    if (wasRinging) this.emit("failed", kind, detail);
    else this.emit("ended", detail);
  }
}

function failureOf(kind: SipFailureKind): TargetFailure {
  return kind === "cancelled" ? "failed" : kind;
}
