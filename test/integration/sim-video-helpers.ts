import {
  H264Packetizer,
  MediaStream,
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  useSdesMid,
  type RtcpPacket,
  type RTCRtpTransceiver,
  type RTCTrackEvent,
} from "werift";
import { loopbackIceConfig } from "../../sim/loopback-ice.js";
import { OPUS_SAMPLE_RATE, OpusPcmRecorder, OpusToneEncoder } from "../../sim/consumer-audio.js";
import type { VideoClip } from "../../sim/video-clip.js";
import { keyframeRequestFor, type KeyframeRequestKind } from "../../sim/video-feedback.js";
import { simVideoCodecOf, type SimVideoCodec } from "../../sim/video-codecs.js";
import { detectTone, type ToneDetection } from "../../transcode/tone.js";
import { VideoDepacketizer, type EncodedVideoFrame } from "../../transcode/video/depacketizer.js";

const FEEDBACK = [{ type: "ccm", parameter: "fir" }, { type: "nack" }, { type: "nack", parameter: "pli" }];

/** What a business leg offers: Opus, and the five video codecs under its own payload type numbers. */
function businessCodecs(): { audio: RTCRtpCodecParameters[]; video: RTCRtpCodecParameters[] } {
  const video = (mimeType: string, payloadType: number, parameters?: string): RTCRtpCodecParameters =>
    new RTCRtpCodecParameters({ mimeType, clockRate: 90000, payloadType, rtcpFeedback: FEEDBACK, ...(parameters ? { parameters } : {}) });
  return {
    audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2, payloadType: 111, parameters: "minptime=10;useinbandfec=1" })],
    video: [
      video("video/H264", 102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
      video("video/VP8", 100),
      video("video/VP9", 101, "profile-id=0"),
      video("video/AV1", 35),
      video("video/H265", 104),
    ],
  };
}

/** Video one mid of the business received, depacketized by the gateway's own depacketizer. */
export interface MidVideo {
  codec: SimVideoCodec;
  packets: number;
  frames: EncodedVideoFrame[];
  /** Epoch ms at which each keyframe was complete. */
  keyframesAt: number[];
}

/**
 * The business's media leg as a bare werift offerer: full ICE, BUNDLE, Opus and five video codecs. It
 * answers Meta's re-offers locally, speaks a tone, depacketizes the video the consumer sends and can send
 * H.264 of its own.
 */
export class TestBusiness {
  readonly pc: RTCPeerConnection;
  readonly audio: RTCRtpTransceiver;
  private readonly heard = new Map<string, OpusPcmRecorder>();
  private readonly audioPackets = new Map<string, number>();
  private readonly video = new Map<string, MidVideo>();
  private readonly depacketizers = new Map<string, VideoDepacketizer>();
  /** Keyframe requests the consumer sent for our video. */
  readonly keyframeRequests: KeyframeRequestKind[] = [];
  private timers: NodeJS.Timeout[] = [];
  videoTransceiver: RTCRtpTransceiver | undefined;
  /** Send a PLI when the depacketizer waits for a keyframe (joining a stream mid-way). */
  autoPli = true;
  private watchingRtcp = false;
  /** A video transceiver whose offer was rolled back before it was ever negotiated. */
  private unsentVideo: RTCRtpTransceiver | undefined;

  constructor(stunUrl: string) {
    const sdesMid = useSdesMid();
    this.pc = new RTCPeerConnection({
      ...loopbackIceConfig(stunUrl),
      bundlePolicy: "max-bundle",
      codecs: businessCodecs(),
      headerExtensions: { audio: [sdesMid], video: [sdesMid] },
    });
    this.pc.ontrack = (event: RTCTrackEvent) => this.onTrack(event);
    const track = new MediaStreamTrack({ kind: "audio" });
    this.audio = this.pc.addTransceiver(track, { direction: "sendrecv", streams: [new MediaStream({ id: "gw", tracks: [track] })] });
  }

  async offer(): Promise<string> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.pc.localDescription?.sdp ?? "";
  }

  async applyAnswer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** Meta's re-offers are answered locally; the answer never goes back (as in Meta's docs). */
  async answerLocally(offer: string): Promise<void> {
    const parked = this.unsentVideo;
    this.unsentVideo = undefined;
    parked?.setDirection("recvonly");
    await this.pc.setRemoteDescription({ type: "offer", sdp: offer });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (!parked) return;
    if (parked.currentDirection === null) parked.setDirection("sendrecv");
    else if (this.videoTransceiver === parked) this.videoTransceiver = undefined;
  }

  /** Adds a sendrecv video m-line (msid stream "gw-video") and returns the new offer. */
  async offerVideo(): Promise<string> {
    if (!this.videoTransceiver) {
      const track = new MediaStreamTrack({ kind: "video" });
      this.videoTransceiver = this.pc.addTransceiver(track, { direction: "sendrecv", streams: [new MediaStream({ id: "gw-video", tracks: [track] })] });
    }
    if (!this.watchingRtcp) {
      this.watchingRtcp = true;
      this.pc.dtlsTransports.at(0)?.onRtcp.subscribe((packet: RtcpPacket) => {
        const ssrc = this.videoTransceiver?.sender.ssrc;
        const kind = ssrc === undefined ? undefined : keyframeRequestFor(packet, ssrc);
        if (kind) this.keyframeRequests.push(kind);
      });
    }
    return this.offer();
  }

  /**
   * Rolls our pending offer back. werift keeps the video transceiver that offer added, with its mid, and
   * pairs it with the next video m-line Meta offers (by mid, or by kind once the mid is cleared), even
   * though it came from addTransceiver. answerLocally() therefore parks it as recvonly while Meta's offer
   * is applied, and lets it go if it was taken.
   */
  async rollback(): Promise<void> {
    await this.pc.setLocalDescription({ type: "rollback", sdp: "" });
    if (this.videoTransceiver && this.videoTransceiver.currentDirection === null) this.unsentVideo = this.videoTransceiver;
  }

  speak(hz: number): void {
    const encoder = new OpusToneEncoder(hz, 0.3);
    let seq = 1;
    this.timers.push(
      setInterval(() => {
        const { payload, timestampOffset } = encoder.nextFrame();
        const header = new RtpHeader({ payloadType: 111, sequenceNumber: seq++ & 0xffff, timestamp: timestampOffset });
        void this.audio.sender.sendRtp(new RtpPacket(header, payload));
      }, 20),
    );
  }

  /** Loops an H.264 clip on our video m-line at its frame rate (the PBX's camera). */
  sendH264(clip: VideoClip): void {
    const transceiver = this.videoTransceiver;
    if (!transceiver) throw new Error("no video m-line");
    const packetizer = new H264Packetizer({ maxPayloadSize: 1200, inputFormat: "annexb" });
    let index = 0;
    let sent = 0;
    this.timers.push(
      setInterval(() => {
        if (index >= clip.frames.length) index = 0;
        const frame = clip.frames[index++]!;
        for (const packet of packetizer.packetize(frame.data, (sent++ * 3000) >>> 0, { isKeyframe: frame.keyframe })) {
          void transceiver.sender.sendRtp(packet);
        }
      }, 1000 / clip.spec.fps),
    );
  }

  heardOn(mid: string): ToneDetection {
    return detectTone(this.heard.get(mid)?.pcm(1) ?? new Int16Array(0), OPUS_SAMPLE_RATE);
  }

  audioPacketsOn(mid: string): number {
    return this.audioPackets.get(mid) ?? 0;
  }

  videoOn(mid: string): MidVideo | undefined {
    return this.video.get(mid);
  }

  /** Sends a PLI for the video arriving on `mid`; resolves with when it left. */
  sendPli(mid: string): number {
    const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid);
    const ssrc = transceiver?.receiver.tracks[0]?.ssrc;
    if (!transceiver || ssrc === undefined) throw new Error(`no video received on mid ${mid}`);
    transceiver.receiver.sendRtcpPLI(ssrc);
    return Date.now();
  }

  /** Waits until `mid` has `count` frames of `codec` (any when left out), at least one of them a keyframe. */
  async waitForFrames(mid: string, count: number, timeoutMs: number, codec?: SimVideoCodec): Promise<MidVideo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const video = this.video.get(mid);
      const right = video && (codec === undefined || video.codec === codec);
      if (video && right && video.frames.length >= count && video.keyframesAt.length > 0) return video;
      if (Date.now() > deadline) throw new Error(`mid ${mid}: ${video?.frames.length ?? 0}/${count} frames, ${video?.keyframesAt.length ?? 0} keyframes`);
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.pc.close();
  }

  private onTrack(event: RTCTrackEvent): void {
    const transceiver = event.transceiver;
    if (event.track.kind === "audio") {
      event.track.onReceiveRtp.subscribe((rtp) => {
        const mid = transceiver.mid ?? "?";
        let recorder = this.heard.get(mid);
        if (!recorder) this.heard.set(mid, (recorder = new OpusPcmRecorder(10)));
        recorder.push(rtp.payload);
        this.audioPackets.set(mid, (this.audioPackets.get(mid) ?? 0) + 1);
      });
      return;
    }
    event.track.onReceiveRtp.subscribe((rtp) => {
      const mid = transceiver.mid ?? "?";
      const mime = transceiver.codecs.find((c) => c.payloadType === rtp.header.payloadType)?.mimeType;
      const codec = mime ? simVideoCodecOf(mime) : undefined;
      if (!codec) return;
      let video = this.video.get(mid);
      if (!video || video.codec !== codec) {
        video = { codec, packets: 0, frames: [], keyframesAt: [] };
        this.video.set(mid, video);
        this.depacketizers.set(mid, this.newDepacketizer(mid, video));
      }
      video.packets++;
      this.depacketizers.get(mid)?.push(rtp);
    });
  }

  private newDepacketizer(mid: string, video: MidVideo): VideoDepacketizer {
    const depacketizer = new VideoDepacketizer({ codec: video.codec });
    // Joining mid-stream, as a gateway does: ask for the keyframe that was missed.
    depacketizer.on("keyframe-request", () => {
      if (this.autoPli) this.sendPli(mid);
    });
    depacketizer.on("frame", (frame) => {
      video.frames.push(frame);
      if (frame.keyframe) video.keyframesAt.push(Date.now());
    });
    return depacketizer;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
