import { randomInt } from "node:crypto";
import { MediaStream, MediaStreamTrack, ReceiverEstimatedMaxBitrate, RtcpPayloadSpecificFeedback, type RTCPeerConnection, type RTCRtpTransceiver, type RTCTrackEvent } from "werift";
import { SimStateError } from "./errors.js";
import { DEFAULT_CLIP, loadVideoClip, type VideoClip } from "./video-clip.js";
import { metaVideoCodec, simVideoCodecOf, type SimVideoCodec } from "./video-codecs.js";
import { VideoFrameCollector, type ReceivedVideoFrame, type ReceivedVideoStats } from "./video-receiver.js";
import { VideoClipSender, type SentVideoStats } from "./video-sender.js";

export interface VideoSendOptions {
  codec: SimVideoCodec;
  /** Default 640x360 at 30 fps. */
  width?: number;
  height?: number;
  fps?: number;
}

/**
 * The consumer's camera:
 * - `off`: no video m-lines of its own;
 * - `pending`: turned on before Meta's first re-offer, which will carry it;
 * - `offered`: in Meta's latest offer, waiting for DTLS and the inferred answer before frames flow;
 * - `sending`: frames flowing on the video m-line;
 * - `stopped`: turned off; the m-lines stay, inactive, and can be turned on again.
 */
export type VideoSendState = "off" | "pending" | "offered" | "sending" | "stopped";

export interface ConsumerVideoStats {
  state: VideoSendState;
  /** Mids of the consumer's placeholder and real video m-lines, once they exist. */
  placeholderMid: string | undefined;
  sendMid: string | undefined;
  /** Undefined until frames were sent. */
  sent: SentVideoStats | undefined;
  received: ReceivedVideoStats;
}

interface SendTransceivers {
  /** Meta's `D3F4U1T_F8_TR4CK` m-line: sendonly, no track, never carries media. */
  placeholder: RTCRtpTransceiver;
  camera: RTCRtpTransceiver;
}

/**
 * The consumer's video on one peer connection: the two sendonly video m-lines Meta adds when the camera
 * turns on, the clip that plays on the second one, and the video the business sends. Offer/answer work
 * stays with SimConsumer, which calls in here inside its serialized negotiation.
 */
export class ConsumerVideo {
  private currentState: VideoSendState = "off";
  private clip: VideoClip | undefined;
  private transceivers: SendTransceivers | undefined;
  private sender: VideoClipSender | undefined;
  /** Stats of the previous sending run, so they survive a stop. */
  private lastSent: SentVideoStats | undefined;
  private readonly collector: VideoFrameCollector;
  private receiveTransceiver: RTCRtpTransceiver | undefined;
  private receiveSsrc: number | undefined;
  /** The business picks the payload types of the video it sends. */
  private payloadCodecs = new Map<number, SimVideoCodec>();

  constructor(
    private readonly pc: RTCPeerConnection,
    keepFrames: number,
  ) {
    this.collector = new VideoFrameCollector(keepFrames);
  }

  get state(): VideoSendState {
    return this.currentState;
  }

  get stats(): ConsumerVideoStats {
    return {
      state: this.currentState,
      placeholderMid: this.transceivers?.placeholder.mid ?? undefined,
      sendMid: this.transceivers?.camera.mid ?? undefined,
      sent: this.sender?.stats ?? this.lastSent,
      received: this.collector.stats,
    };
  }

  /** Mids to dress as Meta's placeholder in the next re-offer. */
  get placeholderMids(): string[] {
    const placeholder = this.transceivers?.placeholder;
    return placeholder?.mid && !placeholder.stopped ? [placeholder.mid] : [];
  }

  get receivedFrames(): readonly ReceivedVideoFrame[] {
    return this.collector.kept;
  }

  /** Encodes (or takes from cache) the clip for `options`; done before any SDP work so ffmpeg never stalls it. */
  static async loadClip(options: VideoSendOptions): Promise<VideoClip> {
    return loadVideoClip({
      codec: options.codec,
      width: options.width ?? DEFAULT_CLIP.width,
      height: options.height ?? DEFAULT_CLIP.height,
      fps: options.fps ?? DEFAULT_CLIP.fps,
      seconds: DEFAULT_CLIP.seconds,
    });
  }

  /** Camera on before Meta's first re-offer: remembered until addSendTransceivers() runs. */
  markPending(clip: VideoClip): void {
    this.clip = clip;
    this.currentState = "pending";
  }

  /** Camera off before Meta's first re-offer. */
  clearPending(): void {
    if (this.currentState === "pending") this.currentState = "off";
    this.clip = undefined;
  }

  /**
   * Adds the placeholder and camera m-lines (appended, in that order), or turns existing ones back on,
   * limited to the clip's codec.
   */
  activate(clip: VideoClip | undefined = this.clip): void {
    if (this.currentState === "offered" || this.currentState === "sending") {
      throw new SimStateError("the consumer's video is already on");
    }
    if (!clip) throw new SimStateError("no video clip to send");
    this.clip = clip;
    const codec = metaVideoCodec(clip.spec.codec);
    // A business that rejected the camera m-line (port 0) ended it for good: m-lines are appended anew.
    if (!this.transceivers || this.transceivers.camera.stopped) {
      const placeholder = this.pc.addTransceiver("video", { direction: "sendonly" });
      const track = new MediaStreamTrack({ kind: "video" });
      // Meta's stream ids look like "<number>:<token>:DEFAULT".
      const stream = new MediaStream({ id: `${randomInt(1, 2 ** 31)}:${randomInt(1, 2 ** 31).toString(36)}:DEFAULT`, tracks: [track] });
      const camera = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      this.transceivers = { placeholder, camera };
    }
    for (const transceiver of this.liveTransceivers()) {
      transceiver.setCodecPreferences([codec]);
      transceiver.setDirection("sendonly");
    }
    this.currentState = "offered";
  }

  /** Camera off: frames stop now and both video m-lines go inactive in the next re-offer. */
  deactivate(): void {
    if (!this.transceivers || (this.currentState !== "offered" && this.currentState !== "sending")) {
      throw new SimStateError("the consumer's video is not on");
    }
    this.stopSending();
    for (const transceiver of this.liveTransceivers()) transceiver.setDirection("inactive");
    this.currentState = "stopped";
  }

  /** Starts the clip once the camera m-line has a negotiated codec (the inferred answer is applied). */
  startIfReady(): void {
    const camera = this.transceivers?.camera;
    const clip = this.clip;
    if (this.currentState !== "offered" || !camera || !clip) return;
    const codec = camera.sender.codec;
    if (!codec || simVideoCodecOf(codec.mimeType) !== clip.spec.codec) return;
    this.sender = new VideoClipSender(clip, camera, codec.payloadType);
    this.sender.start();
    this.currentState = "sending";
  }

  /** Asks the clip sender for its keyframe, as a PLI from the business would. */
  sendKeyframe(): boolean {
    if (!this.sender) return false;
    this.sender.requestKeyframe("pli");
    return true;
  }

  /** The business's video payload types, from its latest offer. */
  setBusinessPayloadTypes(map: ReadonlyMap<number, SimVideoCodec>): void {
    if (map.size > 0) this.payloadCodecs = new Map(map);
  }

  onTrack(event: RTCTrackEvent): void {
    this.receiveTransceiver = event.transceiver;
    event.track.onReceiveRtp.subscribe((rtp) => {
      this.receiveSsrc = rtp.header.ssrc;
      this.collector.push(rtp, this.payloadCodecs.get(rtp.header.payloadType));
    });
  }

  /** Sends a PLI for the business's video; false when none has arrived yet. */
  requestKeyframe(): boolean {
    const transceiver = this.receiveTransceiver;
    const ssrc = this.receiveSsrc;
    if (!transceiver || ssrc === undefined) return false;
    transceiver.receiver.sendRtcpPLI(ssrc);
    return true;
  }

  /**
   * Caps the business's video with a REMB, as Meta's edge does from its bandwidth estimate; false
   * when none has arrived yet.
   */
  sendRemb(bps: number): boolean {
    const transceiver = this.receiveTransceiver;
    const ssrc = this.receiveSsrc;
    if (!transceiver || ssrc === undefined) return false;
    let brMantissa = Math.floor(bps);
    let brExp = 0;
    while (brMantissa >= 1 << 18) {
      brMantissa = Math.floor(brMantissa / 2);
      brExp++;
    }
    const remb = new ReceiverEstimatedMaxBitrate({ senderSsrc: transceiver.sender.ssrc, mediaSsrc: 0, ssrcNum: 1, brExp, brMantissa, ssrcFeedbacks: [ssrc] });
    transceiver.dtlsTransport.sendRtcp([new RtcpPayloadSpecificFeedback({ feedback: remb })]).catch(() => undefined);
    return true;
  }

  waitForFrames(count: number): { promise: Promise<void>; cancel: () => void } {
    return this.collector.waitForFrames(count);
  }

  close(): void {
    this.stopSending();
    this.collector.clear();
  }

  private liveTransceivers(): RTCRtpTransceiver[] {
    const t = this.transceivers;
    return t ? [t.placeholder, t.camera].filter((transceiver) => !transceiver.stopped) : [];
  }

  private stopSending(): void {
    if (!this.sender) return;
    this.sender.stop();
    this.lastSent = this.sender.stats;
    this.sender = undefined;
  }
}
