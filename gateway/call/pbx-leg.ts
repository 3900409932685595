import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { readRemoteMedia } from "../../sip/sdp.js";
import type { ReinviteResponder, SipDialogCall, SipReferRequest } from "../../sip/signaling.js";
import type { RtpPacketLike } from "../../transcode/video/depacketizer.js";
import type { VideoCodec } from "../../transcode/video/video-codec.js";
import { containWith } from "./contain.js";
import type { FarMedia, FarMediaEvents } from "./far-media.js";
import type { PbxMedia, PbxMediaStats } from "./pbx-media.js";
import type { Digit, OpusFrame } from "./target.js";
import { VideoToPbx } from "./video-to-pbx.js";

/** What a PBX leg needs of an answered SIP dialog, whichever side placed the call. */
export interface PbxDialog extends SipDialogCall {
  on(event: "reinvite", listener: (offerSdp: string, respond: ReinviteResponder) => void): unknown;
  on(event: "info", listener: (contentType: string, body: string) => void): unknown;
  on(event: "refer", listener: (request: SipReferRequest) => void): unknown;
  on(event: "refreshed", listener: (by: "local" | "remote") => void): unknown;
}

/**
 * The answered SIP side of a call, in either direction: its dialog and its RTP. Audio is bridged
 * through PbxMedia; the consumer's video goes to the phone as H.264 (passthrough or transcoded);
 * the phone's video and its re-INVITEs that start or stop it are reported as `farVideo`, and the
 * consumer's side decides.
 */
export class PbxLeg extends EventEmitter<FarMediaEvents> implements FarMedia {
  /** The consumer's video on its way to the phone. */
  private video: VideoToPbx | undefined;
  /** Whether the phone's video currently goes to the consumer. */
  private pbxVideoOn = false;
  /** A start of the phone's video reported and not yet decided on. */
  private farVideoPending = false;
  private closed = false;
  private readonly silenceTimer: NodeJS.Timeout;
  /** Session refreshes (RFC 4028) that succeeded, by either side. */
  private refreshes = 0;

  /** `mediaTimeoutMs`: no RTP or RTCP from a PBX that should be sending for this long ends the call. */
  constructor(
    private readonly dialog: PbxDialog,
    private readonly media: PbxMedia,
    private readonly log: Logger,
    mediaTimeoutMs: number,
  ) {
    super();
    this.silenceTimer = watchPbxMedia(media, mediaTimeoutMs, (detail) => this.emit("silent", detail));
    const c = containWith((err) => this.emit("fault", err));
    media.on("audio", c((frame) => this.emit("audio", frame)));
    media.on("dtmf", c((digit, ms) => this.emit("dtmf", digit, ms)));
    media.on("videoIn", c((p) => this.emit("video", p)));
    media.on("fault", (err) => this.emit("fault", err));
    // The phone asks for a keyframe of the consumer's video: our encoder makes one, or (passthrough)
    // the consumer is asked through VideoToPbx's keyframeNeeded.
    media.on("keyframeRequest", c(() => this.video?.requestKeyframe()));
    media.on("bitrateLimit", c((bps) => this.video?.setBitrateLimit(bps)));
    dialog.on(
      "reinvite",
      c((offerSdp, respond) => {
        this.onReinvite(offerSdp, respond).catch((err: unknown) => {
          this.log.warn({ err }, "PBX re-INVITE failed");
          respond({ status: 500, reason: "Server Internal Error" });
        });
      }),
    );
    dialog.on("info", c((contentType, body) => media.onInfo(contentType, body)));
    dialog.on("refreshed", () => this.refreshes++);
    // Without a listener (a call that does not transfer) the REFER is declined.
    dialog.on(
      "refer",
      c((request) => {
        if (this.listenerCount("refer") === 0) request.reject(603, "Decline");
        else this.emit("refer", request);
      }),
    );
  }

  sendAudio(frame: OpusFrame): void {
    this.media.sendAudio(frame);
  }

  sendDtmf(digit: Digit, durationMs: number): void {
    this.media.sendDtmf(digit, durationMs);
  }

  /**
   * The consumer turned video on or off: re-INVITE the phone adding H.264 video (or removing it).
   * The call's audio is untouched by either. A phone that answers with video of its own has it
   * reported as `farVideo`, as if it had re-INVITEd.
   */
  async setConsumerVideo(codec: VideoCodec | undefined): Promise<void> {
    const { media } = this;
    if (this.closed || codec === this.video?.codec) return;
    const previous = this.video;
    this.video = undefined;
    await previous?.close();
    if (codec === undefined) {
      if (!this.pbxVideoOn) await media.closeVideo();
      await this.renegotiate();
      this.log.info("consumer video off: video removed toward the PBX");
      return;
    }
    await media.openVideo();
    await this.renegotiate();
    if (!media.pbxTakesVideo) {
      this.log.info("the PBX declined video");
      if (!this.pbxVideoOn) await media.closeVideo();
      return;
    }
    const video = new VideoToPbx(codec, this.log);
    video.on("packet", (p) => media.sendVideo(p));
    video.on("keyframeNeeded", () => this.emit("keyframeRequest"));
    try {
      await video.start();
    } catch (err) {
      this.log.error({ err }, "video toward the PBX could not start");
      await video.close();
      return;
    }
    if (this.closed) {
      await video.close();
      return;
    }
    this.video = video;
    const untick = media.addTicker(containWith((err) => this.emit("fault", err))((now) => video.tick(now)));
    video.once("closed", untick);
    // The phone's decoder needs a keyframe to start.
    this.emit("keyframeRequest");
    if (media.pbxSendsVideo) this.reportFarVideo(true);
  }

  sendVideo(packet: RtpPacketLike, arrivalMs: number): void {
    this.video?.push(packet, arrivalMs);
  }

  requestKeyframe(): void {
    this.media.requestKeyframeFromPbx();
  }

  limitVideoBitrate(bps: number): void {
    this.media.limitPbxVideoBitrate(bps);
  }

  stats(): PbxMediaStats {
    return { ...this.media.stats(), consumerVideo: this.video?.stats(), sessionRefreshes: this.refreshes };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.silenceTimer);
    const video = this.video;
    this.video = undefined;
    this.removeAllListeners();
    await video?.close();
    await this.media.close();
  }

  /**
   * A re-INVITE from the phone. When it starts or stops sending video, the consumer's side is asked
   * first (a media_update to Meta) and the answer says what was agreed.
   */
  private async onReinvite(offerSdp: string, respond: ReinviteResponder): Promise<void> {
    if (offerSdp && !this.closed) {
      let sendsVideo = false;
      try {
        const video = readRemoteMedia(offerSdp).video;
        sendsVideo = video?.h264 !== undefined && (video.direction === "sendrecv" || video.direction === "sendonly");
      } catch {
        // An unusable offer is refused by answerReinvite below.
      }
      if (sendsVideo !== this.pbxVideoOn && this.listenerCount("farVideo") > 0) {
        if (sendsVideo) await this.media.openVideo();
        const accepted = await new Promise<boolean>((resolve) => this.emit("farVideo", sendsVideo, resolve));
        this.pbxVideoOn = sendsVideo && accepted;
        this.log.info({ pbxVideo: this.pbxVideoOn }, "PBX video toward the consumer");
        if (!this.pbxVideoOn && !this.video) await this.media.closeVideo();
        this.media.answerReinvite(offerSdp, respond);
        if (this.pbxVideoOn) this.refreshPbxVideo();
        return;
      }
    }
    this.media.answerReinvite(offerSdp, respond);
  }

  /**
   * The phone's video now reaches the consumer. Whatever it sent before was dropped, its keyframe
   * with it: ask for a new one. A phone that has sent nothing yet starts with a keyframe anyway.
   */
  private refreshPbxVideo(): void {
    if (this.media.receivingPbxVideo) this.media.requestKeyframeFromPbx();
  }

  /** The phone's answer to our re-INVITE says it sends video too: carry it to the consumer. */
  private reportFarVideo(on: boolean): void {
    if (this.pbxVideoOn === on || this.farVideoPending || this.listenerCount("farVideo") === 0) return;
    this.farVideoPending = true;
    // Not awaited: the consumer's side decides in its own queue, after the step that called us.
    this.emit("farVideo", on, (accepted) => {
      this.farVideoPending = false;
      this.pbxVideoOn = on && accepted;
      this.log.info({ pbxVideo: this.pbxVideoOn }, "PBX video toward the consumer");
      if (this.pbxVideoOn) this.refreshPbxVideo();
    });
  }

  private async renegotiate(): Promise<void> {
    try {
      const answer = await this.dialog.reinvite(this.media.offer());
      this.media.setRemote(readRemoteMedia(answer));
    } catch (err) {
      this.log.warn({ err }, "re-INVITE toward the PBX failed; the call goes on as it was");
    }
  }
}

/**
 * Reports a PBX that stopped sending RTP and RTCP while its SDP says it sends audio. A PBX on hold
 * (sendonly from us, inactive, 0.0.0.0) may send nothing at all: the count starts again when it
 * resumes.
 */
function watchPbxMedia(media: PbxMedia, timeoutMs: number, onSilent: (detail: string) => void): NodeJS.Timeout {
  let lastPackets = -1;
  let lastChangeAt = Date.now();
  const timer = setInterval(() => {
    const { packets, pbxSends } = media.liveness();
    const now = Date.now();
    if (packets !== lastPackets || !pbxSends) {
      lastPackets = packets;
      lastChangeAt = now;
      return;
    }
    if (now - lastChangeAt > timeoutMs) onSilent(`no RTP or RTCP from the PBX for ${timeoutMs} ms`);
  }, Math.min(1_000, timeoutMs));
  timer.unref();
  return timer;
}
