import { randomInt } from "node:crypto";
import {
  MediaStream,
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  useSdesMid,
  type RTCRtpTransceiver,
  type RTCTrackEvent,
} from "werift";
import type { ToneDetection } from "../transcode/tone.js";
import {
  FRAME_MS,
  OpusPcmRecorder,
  OpusToneEncoder,
  parseTelephoneEvent,
  type TelephoneEvent,
} from "./consumer-audio.js";
import type { ConsumerPeer } from "./consumer-peer.js";
import { ConsumerVideo, type ConsumerVideoStats, type VideoSendOptions } from "./consumer-video.js";
import { ConsumerClosedError, ConsumerNegotiationError, SimStateError, SimTimeoutError } from "./errors.js";
import { PacketWaiters } from "./packet-waiters.js";
import { loopbackIceConfig } from "./loopback-ice.js";
import { inferBusinessAnswer, META_OPUS_FMTP, META_OPUS_PAYLOAD_TYPE, shapeMetaAnswer, shapeMetaReoffer } from "./sdp-meta-style.js";
import { parseSdp, rtpMaps } from "./sdp-text.js";
import { metaVideoCodecs, simVideoCodecOf, type SimVideoCodec } from "./video-codecs.js";
import type { ReceivedVideoFrame } from "./video-receiver.js";

export interface ConsumerOptions {
  /** Frequency of the tone the consumer speaks, in Hz. */
  toneHz?: number;
  /** Peak amplitude of that tone as a fraction of full scale. */
  toneAmplitude?: number;
  /**
   * Also negotiate telephone-event (110/48000 as Meta's Messenger re-offers carry it, and 126/8000)
   * when the business offers it. Meta's sample answers carry Opus only, so this is off unless a
   * test wants DTMF in either direction.
   */
  telephoneEvent?: boolean;
  /** STUN URL on loopback; the ice-lite consumer never queries it, it only replaces werift's public default. */
  stunUrl?: string;
  /** How much received audio to keep, in seconds. */
  keepSeconds?: number;
  /** How many received video frames to keep (default 900, 30 s at 30 fps). */
  keepVideoFrames?: number;
}

/**
 * Where the consumer's media session stands:
 * - `idle`: no offer seen yet;
 * - `negotiating`: descriptions applied, waiting for ICE/DTLS from the business;
 * - `connected`: DTLS is up (media may flow);
 * - `failed`: ICE or DTLS failed;
 * - `closed`: everything released.
 */
export type ConsumerState = "idle" | "negotiating" | "connected" | "failed" | "closed";

/** Audio figures: video the business sends is counted in `videoStats.received` instead. */
export interface ConsumerStats {
  state: ConsumerState;
  packetsReceived: number;
  bytesReceived: number;
  /** Epoch ms of the first RTP packet from the business, if any. */
  firstPacketAt: number | undefined;
  lastPacketAt: number | undefined;
  payloadTypes: number[];
  ssrcs: number[];
  /** Mids of the consumer's transceivers that received RTP. */
  receivedOnMids: string[];
  decodeErrors: number;
  packetsSent: number;
  telephoneEvents: TelephoneEvent[];
}

const DEFAULT_TONE_HZ = 440;
const DEFAULT_TONE_AMPLITUDE = 0.3;
/** Frames sent in one timer tick at most; a longer stall skips ahead instead of bursting. */
const MAX_CATCH_UP_FRAMES = 5;

function metaOpus(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "audio/opus",
    clockRate: 48000,
    channels: 2,
    payloadType: META_OPUS_PAYLOAD_TYPE,
    parameters: META_OPUS_FMTP,
  });
}

function telephoneEvent48k(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 48000, payloadType: 110, parameters: "0-16" });
}

function telephoneEvent8k(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 8000, payloadType: 126, parameters: "0-16" });
}

/**
 * The consumer behind Meta's edge: an ice-lite werift peer that answers the business offer as
 * DTLS server (`a=setup:passive`), then re-offers with a split transceiver (mid 0 recvonly for the
 * business's audio, a new sendonly mid for its own), speaks a test tone there and records what the
 * business sends.
 */
export class SimConsumer implements ConsumerPeer {
  private readonly pc: RTCPeerConnection;
  private readonly toneHz: number;
  private readonly toneAmplitude: number;
  private readonly recorder: OpusPcmRecorder;
  private currentState: ConsumerState = "idle";
  private readonly closedSignal: Promise<never>;
  private rejectPending: (error: Error) => void = () => undefined;
  /** Serializes offer/answer work: werift must not see two description changes at once. */
  private queue: Promise<unknown> = Promise.resolve();
  private businessSdp: string | undefined;
  private opusPayloadTypes = new Set<number>([META_OPUS_PAYLOAD_TYPE]);
  private telephoneEventPayloadTypes = new Set<number>([126]);
  private sendTransceiver: RTCRtpTransceiver | undefined;
  /** Inferred business answer waiting for DTLS before it is applied (see applyInferredAnswer). */
  private pendingInferredAnswer: string | undefined;
  private toneTimer: NodeJS.Timeout | undefined;
  /** One sequence space for everything the consumer sends on its SSRC: audio and DTMF events. */
  private sequence = randomInt(0, 0x10000);
  private lastAudioTimestamp = 0;
  private readonly dtmfTimers = new Set<NodeJS.Timeout>();
  private readonly counters = {
    packetsReceived: 0,
    bytesReceived: 0,
    firstPacketAt: undefined as number | undefined,
    lastPacketAt: undefined as number | undefined,
    payloadTypes: new Set<number>(),
    ssrcs: new Set<number>(),
    mids: new Set<string>(),
    packetsSent: 0,
    telephoneEvents: [] as TelephoneEvent[],
    endedEventTimestamps: new Set<number>(),
  };
  private readonly packetWaiters = new PacketWaiters();
  private readonly video: ConsumerVideo;

  constructor(options: ConsumerOptions = {}) {
    this.toneHz = options.toneHz ?? DEFAULT_TONE_HZ;
    this.toneAmplitude = options.toneAmplitude ?? DEFAULT_TONE_AMPLITUDE;
    this.recorder = new OpusPcmRecorder(options.keepSeconds ?? 120);
    this.closedSignal = new Promise<never>((_resolve, reject) => {
      this.rejectPending = reject;
    });
    // Nobody may be awaiting it when close() runs; that must not surface as an unhandled rejection.
    this.closedSignal.catch(() => undefined);

    const sdesMid = useSdesMid();
    this.pc = new RTCPeerConnection({
      ...loopbackIceConfig(options.stunUrl ?? "stun:127.0.0.1:3478"),
      iceLite: true,
      bundlePolicy: "max-bundle",
      codecs: {
        audio: options.telephoneEvent ? [metaOpus(), telephoneEvent48k(), telephoneEvent8k()] : [metaOpus()],
        video: metaVideoCodecs(),
      },
      // One object for both kinds: werift numbers the config's extensions in order, so a shared entry gets one
      // id across the bundle, as Meta's SDP has it. No transport-cc extension: werift's TWCC feedback is
      // malformed (werift-notes §2), so it is listed in rtcp-fb only, never negotiated as an extension.
      headerExtensions: { audio: [sdesMid], video: [sdesMid] },
    });
    this.video = new ConsumerVideo(this.pc, options.keepVideoFrames ?? 900);
    this.pc.ontrack = (event: RTCTrackEvent) => this.onTrack(event);
    this.pc.connectionStateChange.subscribe((state) => this.onConnectionState(state));
  }

  get state(): ConsumerState {
    return this.currentState;
  }

  get stats(): ConsumerStats {
    const c = this.counters;
    return {
      state: this.currentState,
      packetsReceived: c.packetsReceived,
      bytesReceived: c.bytesReceived,
      firstPacketAt: c.firstPacketAt,
      lastPacketAt: c.lastPacketAt,
      payloadTypes: [...c.payloadTypes],
      ssrcs: [...c.ssrcs],
      receivedOnMids: [...c.mids],
      decodeErrors: this.recorder.decodeErrors,
      packetsSent: c.packetsSent,
      telephoneEvents: [...c.telephoneEvents],
    };
  }

  /** Decoded audio received from the business (48 kHz mono), the last `seconds` or all that is kept. */
  receivedPcm(seconds?: number): Int16Array {
    return this.recorder.pcm(seconds);
  }

  /** The consumer's camera and the video the business sends. */
  get videoStats(): ConsumerVideoStats {
    return this.video.stats;
  }

  /** Video frames received from the business, depacketized (the most recent `keepVideoFrames`). */
  receivedVideoFrames(): readonly ReceivedVideoFrame[] {
    return this.video.receivedFrames;
  }

  /**
   * The received H.264 (or H.265) frames as one Annex-B stream, ready for `ffmpeg -f h264 -i -`.
   * Frames of other codecs are left out; see receivedVideoFrames() for those.
   */
  receivedVideoAnnexB(codec: "H264" | "H265" = "H264"): Buffer {
    return Buffer.concat(this.video.receivedFrames.filter((f) => f.codec === codec).map((f) => f.data));
  }

  /** Resolves once `count` video frames from the business were depacketized. */
  async waitForVideoFrames(count: number, timeoutMs: number): Promise<void> {
    const wait = this.video.waitForFrames(count);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        wait.promise,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new SimTimeoutError(`consumer depacketized ${this.video.stats.received.framesDepacketized}/${count} video frames in ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
        this.closedSignal,
      ]);
    } finally {
      clearTimeout(timer);
      wait.cancel();
    }
  }

  /** Asks the business for a keyframe (a PLI on its video); false when no video has arrived yet. */
  requestKeyframe(): boolean {
    return this.video.requestKeyframe();
  }

  /** Caps the business's video (REMB); false when no video has arrived yet. */
  sendRemb(bps: number): boolean {
    return this.video.sendRemb(bps);
  }

  /** Dominant tone in the last `seconds` of received audio. */
  detectTone(seconds = 1): ToneDetection {
    return this.recorder.detectTone(seconds);
  }

  /** Answers the business's first offer (accept or connect) the way Meta's edge does. */
  answerOffer(offerSdp: string): Promise<string> {
    return this.serialized(async () => {
      this.assertOpen();
      this.rememberBusinessOffer(offerSdp);
      await this.guard(this.pc.setRemoteDescription({ type: "offer", sdp: offerSdp }));
      for (const transceiver of this.pc.getTransceivers()) {
        transceiver.setDirection("sendrecv");
        // werift answers a=setup:active unless the transport already has a role; Meta answers passive.
        transceiver.dtlsTransport.role = "server";
      }
      const answer = await this.guard(this.pc.createAnswer());
      await this.guard(this.pc.setLocalDescription(answer));
      this.currentState = this.currentState === "connected" ? "connected" : "negotiating";
      return shapeMetaAnswer(this.localSdp());
    });
  }

  /**
   * Meta's re-offer after the first answer: mid 0 turns recvonly and a new sendonly audio
   * m-line carries the consumer's voice. The business's answer is inferred and applied once DTLS
   * is up, which is when the tone starts on the new transceiver.
   */
  createSplitReoffer(): Promise<string> {
    return this.serialized(async () => {
      this.assertOpen();
      if (this.sendTransceiver) throw new SimStateError("the consumer already has its own send transceiver");
      for (const transceiver of this.pc.getTransceivers()) transceiver.setDirection("recvonly");
      // A camera already on goes between the business's audio and the consumer's own, as in the appendix sample.
      if (this.video.state === "pending") this.video.activate();
      const track = new MediaStreamTrack({ kind: "audio" });
      const stream = new MediaStream({ id: `meta-${randomInt(1, 2 ** 31)}`, tracks: [track] });
      this.sendTransceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      return this.offerAndInferAnswer();
    });
  }

  /** A further Meta re-offer of the current media state (for media_update webhooks). */
  createReoffer(): Promise<string> {
    return this.serialized(async () => {
      this.assertOpen();
      return this.offerAndInferAnswer();
    });
  }

  /**
   * Turns the camera on. After Meta's first re-offer this appends a placeholder and a camera m-line
   * (or turns them back on) and returns the re-offer for a media_update webhook; before it, the camera
   * is only remembered, that re-offer will carry it, and undefined is returned.
   */
  async startVideo(options: VideoSendOptions): Promise<string | undefined> {
    this.assertOpen();
    const clip = await ConsumerVideo.loadClip(options);
    return this.serialized(async () => {
      this.assertOpen();
      if (!this.sendTransceiver) {
        this.video.markPending(clip);
        return undefined;
      }
      this.video.activate(clip);
      return this.offerAndInferAnswer();
    });
  }

  /** Turns the camera off: frames stop and the re-offer sets both video m-lines inactive (undefined before Meta's first re-offer). */
  stopVideo(): Promise<string | undefined> {
    return this.serialized(async () => {
      this.assertOpen();
      if (this.video.state === "pending") {
        this.video.clearPending();
        return undefined;
      }
      this.video.deactivate();
      return this.offerAndInferAnswer();
    });
  }

  /** Answers an offer the business sends with a media_update request. */
  answerBusinessReoffer(offerSdp: string): Promise<string> {
    return this.serialized(async () => {
      this.assertOpen();
      this.rememberBusinessOffer(offerSdp);
      this.pendingInferredAnswer = undefined;
      await this.guard(this.pc.setRemoteDescription({ type: "offer", sdp: offerSdp }));
      const answer = await this.guard(this.pc.createAnswer());
      await this.guard(this.pc.setLocalDescription(answer));
      return shapeMetaAnswer(this.localSdp());
    });
  }

  /** Resolves once at least `count` RTP packets arrived from the business. */
  waitForPackets(count: number, timeoutMs: number): Promise<void> {
    return this.packetWaiters.waitFor(() => this.counters.packetsReceived, count, timeoutMs, { closed: this.closedSignal });
  }

  async close(): Promise<void> {
    if (this.currentState === "closed") return;
    this.currentState = "closed";
    this.stopTone();
    this.video.close();
    this.pendingInferredAnswer = undefined;
    this.rejectPending(new ConsumerClosedError("consumer closed"));
    this.packetWaiters.clear();
    try {
      await this.pc.close();
    } catch {
      // Transports that already failed can throw while closing; they hold nothing more to free.
    }
  }

  private async offerAndInferAnswer(): Promise<string> {
    const offer = await this.guard(this.pc.createOffer());
    await this.guard(this.pc.setLocalDescription(offer));
    const offerSdp = this.localSdp();
    if (!this.businessSdp) throw new SimStateError("no business offer to infer an answer from");
    this.pendingInferredAnswer = inferBusinessAnswer(this.businessSdp, offerSdp);
    if (this.currentState === "connected") await this.applyInferredAnswer();
    return shapeMetaReoffer(offerSdp, { placeholderMids: this.video.placeholderMids });
  }

  /**
   * Applying a remote answer makes werift start its transports again; doing that while the first
   * DTLS handshake is still running flips the connection to "failed" for a moment. Waiting for
   * DTLS first keeps the state clean and matches when Meta starts sending anyway.
   */
  private async applyInferredAnswer(): Promise<void> {
    const sdp = this.pendingInferredAnswer;
    this.pendingInferredAnswer = undefined;
    if (!sdp || this.pc.signalingState !== "have-local-offer") return;
    try {
      await this.guard(this.pc.setRemoteDescription({ type: "answer", sdp }));
    } catch (error) {
      if (error instanceof ConsumerClosedError) return;
      throw new ConsumerNegotiationError("werift rejected the inferred business answer", { cause: error });
    }
    this.startToneIfReady();
    this.video.startIfReady();
  }

  private onConnectionState(state: string): void {
    if (this.currentState === "closed") return;
    if (state === "connected") {
      this.currentState = "connected";
      if (this.pendingInferredAnswer) {
        this.serialized(() => this.applyInferredAnswer()).catch(() => undefined);
      } else {
        this.startToneIfReady();
        this.video.startIfReady();
      }
    } else if (state === "failed") {
      this.currentState = "failed";
    }
  }

  private startToneIfReady(): void {
    const transceiver = this.sendTransceiver;
    if (this.toneTimer || !transceiver || this.currentState !== "connected" || !transceiver.sender.codec) return;
    const encoder = new OpusToneEncoder(this.toneHz, this.toneAmplitude);
    const firstTimestamp = randomInt(0, 2 ** 32);
    const startedAt = performance.now();
    let framesSent = 0;
    const tick = (): void => {
      const due = Math.floor((performance.now() - startedAt) / FRAME_MS) + 1;
      if (due - framesSent > MAX_CATCH_UP_FRAMES) framesSent = due - MAX_CATCH_UP_FRAMES;
      while (framesSent < due) {
        const { payload, timestampOffset } = encoder.nextFrame();
        const header = new RtpHeader({
          payloadType: META_OPUS_PAYLOAD_TYPE,
          sequenceNumber: this.nextSequence(),
          timestamp: (this.lastAudioTimestamp = (firstTimestamp + timestampOffset) >>> 0),
          marker: framesSent === 0,
        });
        framesSent++;
        this.counters.packetsSent++;
        transceiver.sender.sendRtp(new RtpPacket(header, payload)).catch(() => undefined);
      }
    };
    tick();
    this.toneTimer = setInterval(tick, FRAME_MS);
  }

  private stopTone(): void {
    if (this.toneTimer) clearInterval(this.toneTimer);
    this.toneTimer = undefined;
    for (const t of this.dtmfTimers) clearTimeout(t);
    this.dtmfTimers.clear();
  }

  private nextSequence(): number {
    this.sequence = (this.sequence + 1) & 0xffff;
    return this.sequence;
  }

  /**
   * Presses a key the way Meta's clients do (RFC 4733 in the RTP stream, 500 ms per tone): event
   * packets every 20 ms on the negotiated telephone-event clock, then three end packets.
   * Resolves when the last packet is sent; false when no telephone-event was negotiated.
   */
  async sendDtmf(digit: string, durationMs = 500): Promise<boolean> {
    const transceiver = this.sendTransceiver;
    const code = "0123456789*#ABCD".indexOf(digit.toUpperCase());
    if (code < 0) throw new SimStateError(`"${digit}" is not a DTMF key`);
    if (!transceiver || this.currentState !== "connected") throw new SimStateError("the consumer is not connected");
    const te = (transceiver.codecs ?? []).filter((c) => c.mimeType.toLowerCase() === "audio/telephone-event");
    const codec = te.find((c) => c.clockRate === 48000) ?? te[0];
    if (!codec) return false;
    const start = this.lastAudioTimestamp;
    const ticksPerMs = codec.clockRate / 1000;
    const steps = Math.max(1, Math.round(durationMs / FRAME_MS));
    const send = (duration: number, end: boolean, marker: boolean): void => {
      const payload = Buffer.alloc(4);
      payload[0] = code;
      payload[1] = (end ? 0x80 : 0) | 10; // volume -10 dBm0
      payload.writeUInt16BE(Math.min(0xffff, Math.round(duration * ticksPerMs)), 2);
      const header = new RtpHeader({ payloadType: codec.payloadType, sequenceNumber: this.nextSequence(), timestamp: start, marker });
      // The sender stamps packets with its first codec's payload type (Opus); swap it for this write.
      const sender = transceiver.sender;
      const negotiated = sender.codec;
      sender.codec = codec;
      try {
        sender.sendRtp(new RtpPacket(header, payload)).catch(() => undefined);
      } finally {
        sender.codec = negotiated;
      }
      this.counters.packetsSent++;
    };
    for (let i = 1; i <= steps; i++) {
      await this.wait(FRAME_MS);
      send(i * FRAME_MS, false, i === 1);
    }
    for (let i = 0; i < 3; i++) send(steps * FRAME_MS, true, false);
    return true;
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.dtmfTimers.delete(t);
        resolve();
      }, ms);
      this.dtmfTimers.add(t);
    });
  }

  private onTrack(event: RTCTrackEvent): void {
    if (event.track.kind === "video") {
      this.video.onTrack(event);
      return;
    }
    const mid = event.transceiver.mid ?? "?";
    event.track.onReceiveRtp.subscribe((rtp) => this.onRtp(mid, rtp));
  }

  private onRtp(mid: string, rtp: RtpPacket): void {
    const c = this.counters;
    const now = Date.now();
    c.packetsReceived++;
    c.bytesReceived += rtp.payload.length;
    c.firstPacketAt ??= now;
    c.lastPacketAt = now;
    c.payloadTypes.add(rtp.header.payloadType);
    c.ssrcs.add(rtp.header.ssrc);
    c.mids.add(mid);
    if (this.opusPayloadTypes.has(rtp.header.payloadType)) {
      this.recorder.push(rtp.payload);
    } else if (this.telephoneEventPayloadTypes.has(rtp.header.payloadType)) {
      const ev = parseTelephoneEvent(rtp.payload);
      if (ev?.end && !c.endedEventTimestamps.has(rtp.header.timestamp)) {
        c.endedEventTimestamps.add(rtp.header.timestamp);
        c.telephoneEvents.push({ event: ev.event, durationSamples: ev.durationSamples, receivedAt: now });
      }
    }
    this.packetWaiters.update(c.packetsReceived);
  }

  private rememberBusinessOffer(sdp: string): void {
    this.businessSdp = sdp;
    // The business picks the payload type numbers; record which of them carry Opus and DTMF.
    const maps = parseSdp(sdp).media.flatMap((m) => rtpMaps(m));
    const opus = maps.filter((m) => m.encoding.toLowerCase() === "opus").map((m) => m.payloadType);
    const dtmf = maps.filter((m) => m.encoding.toLowerCase() === "telephone-event").map((m) => m.payloadType);
    if (opus.length > 0) this.opusPayloadTypes = new Set(opus);
    if (dtmf.length > 0) this.telephoneEventPayloadTypes = new Set(dtmf);
    const video = new Map<number, SimVideoCodec>();
    for (const map of maps) {
      const codec = simVideoCodecOf(map.encoding);
      if (codec) video.set(map.payloadType, codec);
    }
    this.video.setBusinessPayloadTypes(video);
  }

  private localSdp(): string {
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new ConsumerNegotiationError("werift produced no local description");
    return sdp;
  }

  private assertOpen(): void {
    if (this.currentState === "closed") throw new ConsumerClosedError("consumer closed");
  }

  /** werift never settles description calls made after close(); race them against our own close. */
  private guard<T>(operation: Promise<T>): Promise<T> {
    return Promise.race([operation, this.closedSignal]);
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run.catch((error: unknown) => {
      if (error instanceof ConsumerClosedError || error instanceof SimStateError || error instanceof ConsumerNegotiationError) throw error;
      throw new ConsumerNegotiationError(`werift negotiation failed: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    });
  }
}
