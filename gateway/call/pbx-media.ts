import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { PortAllocator } from "../../sip/rtp/port-allocator.js";
import { RtpEndpoint } from "../../sip/rtp/rtp-endpoint.js";
import type { RtpPacket } from "../../sip/rtp/rtp-packet.js";
import { buildAnswer, buildOffer, readRemoteMedia, type LocalSdpOptions, type RemoteMedia } from "../../sip/sdp.js";
import { redactSdp, type SrtpSuite } from "../../sip/srtp/sdes.js";
import type { ReinviteResponder } from "../../sip/signaling.js";
import { MetaToPbxAudio, PbxToMetaAudio } from "../../transcode/audio-pipeline.js";
import { DtmfReceiver, dtmfPackets, isDtmfDigit } from "../../transcode/dtmf.js";
import type { LegFigures, ToPbxFigures } from "../quality/call-quality.js";
import { StreamReception, type ReceptionSnapshot } from "../quality/reception.js";
import { containWith } from "./contain.js";
import { LatencyRecorder, type LatencySnapshot } from "./latency.js";
import { SdesNegotiator, type SrtpMode } from "./pbx-srtp.js";
import { firPacket, pliPacket, readPbxVideoFeedback, rembPacket, tmmbrPacket } from "./pbx-video-feedback.js";
import type { MediaTicker } from "./media-ticker.js";
import type { VideoToPbxStats } from "./video-to-pbx.js";
import type { Digit, OpusFrame } from "./target.js";

export interface PbxMediaOptions {
  allocator: PortAllocator;
  ticker: MediaTicker;
  /** Address written in our SDP (public address, or the bind address). */
  mediaAddress: string;
  log: Logger;
  /** Sends SIP INFO in the call's dialog: the DTMF fallback toward a PBX without telephone-event. */
  sendInfo: (contentType: string, body: string) => Promise<unknown>;
  /** SDES-keyed SRTP toward the PBX (SIP_SRTP); default off. */
  srtp?: SrtpMode;
}

export interface PbxMediaEvents {
  /** The PBX asked for a keyframe on the video we send it (PLI/FIR, or SIP INFO picture_fast_update). */
  keyframeRequest: [];
  /** The PBX caps the bitrate of the video we send it (TMMBR or REMB), in bits per second. */
  bitrateLimit: [number];
  /** An H.264 RTP payload of the PBX's video. */
  videoIn: [{ payload: Buffer; timestamp: number; marker: boolean }];
  /** Opus for the consumer: the PBX's audio, or comfort noise while the PBX sends nothing. */
  audio: [OpusFrame];
  /** A key the agent pressed (RFC 4733 or SIP INFO). */
  dtmf: [Digit, number];
  /** An exception while handling the PBX's packets: the call they belong to must end. */
  fault: [unknown];
}

export interface PbxMediaStats {
  codec: string | undefined;
  rtp: ReturnType<RtpEndpoint["stats"]>;
  toPbx: ReturnType<MetaToPbxAudio["stats"]> | undefined;
  toMeta: ReturnType<PbxToMetaAudio["stats"]> | undefined;
  comfortFrames: number;
  /** The video leg toward the PBX, when the call has video. */
  video: ReturnType<RtpEndpoint["stats"]> | undefined;
  /** The consumer's video on its way to the phone, when it is on (filled in by the PBX leg). */
  consumerVideo?: VideoToPbxStats;
  /** TMMBR/REMB sent to the PBX from what the consumer's network takes. */
  videoBitrateLimitsSent: number;
  /** Session refreshes (RFC 4028) of the dialog that succeeded (filled in by the PBX leg). */
  sessionRefreshes?: number;
  /** Whether the PBX holds the call now, and how often it did. */
  held: boolean;
  holds: number;
  /** Arrival from Meta to departure toward the PBX, and the reverse, in ms. */
  latencyToPbx: LatencySnapshot;
  latencyToMeta: LatencySnapshot;
  /** The PBX's RTP as it arrived: loss, loss bursts, jitter. */
  reception: ReceptionSnapshot;
  /** Wall-clock times (ms since the epoch) of the first RTP from the PBX and of the first audio sent to it. */
  firstAudioInAt: number | undefined;
  firstAudioOutAt: number | undefined;
  /** The SRTP suite (SDES) of the audio toward the PBX; undefined for plain RTP. */
  srtp: SrtpSuite | undefined;
}

/** The consumer's audio on its way to the PBX (jitter buffer, concealment), for the quality assessment. */
export function toPbxFigures(s: PbxMediaStats): ToPbxFigures | undefined {
  const t = s.toPbx;
  if (!t) return undefined;
  return {
    jitterBufferDelayMs: t.jitterBufferReleased > 0 ? t.jitterBufferDelayMs / t.jitterBufferReleased : 0,
    emittedSamples: t.jitterBufferEmittedSamples,
    concealedMs: t.concealedMs,
    concealments: t.concealedPackets,
    silenceMs: t.silenceFrames * FRAME_MS,
  };
}

/** The SIP side's figures in the form the quality assessment takes. */
export function pbxLegFigures(s: PbxMediaStats): LegFigures & { codec: string | undefined } {
  const report = s.rtp.remoteReport;
  const covered = report?.expected ?? s.rtp.packetsSent;
  return {
    codec: s.codec,
    received: s.reception,
    packetsSent: s.rtp.packetsSent,
    remoteReport: report && {
      lossRatio: covered > 0 ? Math.min(1, Math.max(0, report.cumulativeLost) / covered) : 0,
      packetsLost: Math.max(0, report.cumulativeLost),
      jitterMs: report.jitterMs,
    },
    roundTripMs: s.rtp.roundTripMs,
    firstAudioInAt: s.firstAudioInAt,
    firstAudioOutAt: s.firstAudioOutAt,
  };
}

const TELEPHONE_EVENT_PT = 101;
/** Toward Meta a frame is due every 20 ms; after this long with nothing from the PBX, comfort audio fills in. */
const PBX_SILENCE_MS = 60;
const FRAME_MS = 20;
/** Keyframe requests toward the PBX closer than this are answered by the keyframe already asked for. */
const KEYFRAME_REQUEST_SPACING_MS = 500;

/**
 * The PBX's side of a call's audio: one RTP/RTCP port pair, our SIP-side SDP, and the transcoding
 * both ways. Opus from the consumer is jitter-buffered, decoded straight to 8 kHz and sent as
 * G.711 in 20 ms packets; G.711 from the PBX is encoded to Opus, with comfort noise whenever the
 * PBX sends nothing so the Meta leg is never silent. Shared by both call directions.
 */
export class PbxMedia extends EventEmitter<PbxMediaEvents> {
  private remote: RemoteMedia | undefined;
  private toPbx: MetaToPbxAudio | undefined;
  private toMeta: PbxToMetaAudio | undefined;
  private untick: (() => void) | undefined;
  private nextComfortAt = 0;
  private comfortFrames = 0;
  private pbxTimestamp = 0;
  private dtmfIn: DtmfReceiver | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private sessionVersion = 1;
  private readonly sessionId = String(Math.floor(Math.random() * 1e12));
  private readonly latencyToPbx = new LatencyRecorder();
  private readonly latencyToMeta = new LatencyRecorder();
  private closed = false;
  private lastKeyframeRequestAt = Number.NEGATIVE_INFINITY;
  private firSequence = 0;
  private bitrateLimitsSent = 0;
  private holds = 0;
  /** The video RTP endpoint toward the PBX, once the call has video. */
  private video: RtpEndpoint | undefined;
  /** Once offered, the video m-line stays in every later SDP (port 0 when off): RFC 3264 §8. */
  private videoNegotiated = false;
  private readonly reception = new StreamReception(8000);
  private firstAudioInAt: number | undefined;
  private firstAudioOutAt: number | undefined;
  /** The figures as they were at close, when the transcoders are gone. */
  private closedStats: PbxMediaStats | undefined;
  private readonly audioSdes: SdesNegotiator;
  private videoSdes: SdesNegotiator;

  private constructor(
    private readonly rtp: RtpEndpoint,
    private readonly o: PbxMediaOptions,
  ) {
    super();
    this.audioSdes = new SdesNegotiator(o.srtp ?? "off");
    this.videoSdes = new SdesNegotiator(o.srtp ?? "off");
    rtp.on("rtp", containWith((err) => this.emit("fault", err))((packet) => this.onPbxRtp(packet)));
  }

  static async open(o: PbxMediaOptions): Promise<PbxMedia> {
    const rtp = await RtpEndpoint.open({ allocator: o.allocator, clockRate: 8000 });
    return new PbxMedia(rtp, o);
  }

  /** Our offer (we call the PBX), with video once openVideo() was called. */
  offer(): string {
    const sdp = buildOffer(this.localSdp(this.remote !== undefined, undefined));
    this.o.log.debug({ sipSdp: redactSdp(sdp) }, "SDP offer to the PBX");
    return sdp;
  }

  /** Opens the video port pair (idempotent); our next offer or answer then carries H.264 video. */
  async openVideo(): Promise<void> {
    if (this.video || this.closed) return;
    const video = await RtpEndpoint.open({ allocator: this.o.allocator, clockRate: 90000 });
    if (this.closed) {
      await video.close();
      return;
    }
    const c = containWith((err) => this.emit("fault", err));
    video.on("rtp", c((packet) => this.emit("videoIn", { payload: packet.payload, timestamp: packet.timestamp, marker: packet.marker })));
    video.on("rtcp", c((packets) => {
      for (const fb of readPbxVideoFeedback(packets)) {
        if (fb.kind === "keyframe") this.emit("keyframeRequest");
        else this.emit("bitrateLimit", fb.bps);
      }
    }));
    this.video = video;
    this.videoSdes = new SdesNegotiator(this.o.srtp ?? "off");
    this.videoNegotiated = true;
  }

  /** Closes the video port pair; our next offer or answer has no video. */
  async closeVideo(): Promise<void> {
    const video = this.video;
    this.video = undefined;
    await video?.close();
  }

  /** Whether the PBX's last SDP accepted our video. */
  get pbxTakesVideo(): boolean {
    return this.video !== undefined && this.remote?.video?.h264 !== undefined;
  }

  /** An H.264 RTP payload of the consumer's video for the PBX. */
  sendVideo(packet: { payload: Buffer; timestamp: number; marker: boolean }): void {
    const h264 = this.remote?.video?.h264;
    if (!this.video || !h264) return;
    this.video.send({ payloadType: h264.payloadType, payload: packet.payload, timestamp: packet.timestamp, marker: packet.marker });
  }

  /** Our answer to the PBX's offer (the PBX calls us, or re-INVITEs). */
  answer(remoteOffer: string): string {
    const offered = readRemoteMedia(remoteOffer);
    const sdp = buildAnswer(remoteOffer, this.localSdp(this.remote !== undefined, offered));
    this.o.log.debug({ sipSdp: redactSdp(sdp) }, "SDP answer to the PBX");
    return sdp;
  }

  /** Answers a re-INVITE from the PBX: our current offer when it sent none, else our answer. */
  answerReinvite(offerSdp: string, respond: ReinviteResponder): void {
    if (!offerSdp) {
      respond(this.offer());
      return;
    }
    try {
      this.setRemote(readRemoteMedia(offerSdp));
      respond(this.answer(offerSdp));
    } catch (err) {
      this.o.log.warn({ err }, "PBX re-INVITE refused");
      respond({ status: 488, reason: "Not Acceptable Here" });
    }
  }

  /** Where the PBX's media is, from its SDP; a change of G.711 law rebuilds the encoder. */
  setRemote(remote: RemoteMedia): void {
    // Both streams' keys are read before anything changes: a refused SDP leaves the call as it was.
    const audioSrtp = this.audioSdes.accept(remote.audio.security);
    const videoSrtp = this.video && remote.video ? this.videoSdes.accept(remote.video.security) : undefined;
    if (audioSrtp && !this.rtp.encrypted) this.o.log.info({ suite: audioSrtp.suite }, "SRTP toward the PBX");
    else if (!audioSrtp && this.rtp.encrypted) this.o.log.info("plain RTP toward the PBX");
    this.rtp.setSrtp(audioSrtp);
    if (this.video && remote.video) this.video.setSrtp(videoSrtp);
    const codecChanged = this.remote !== undefined && this.remote.audio.codec !== remote.audio.codec;
    const wasHeld = this.remote?.audio.onHold ?? false;
    this.remote = remote;
    if (remote.audio.onHold !== wasHeld) {
      if (remote.audio.onHold) this.holds++;
      // While held the consumer hears what the PBX plays (music on hold) or comfort noise.
      this.o.log.info({ direction: remote.audio.direction, address: remote.audio.address }, remote.audio.onHold ? "PBX put the call on hold" : "PBX resumed the call");
    }
    this.rtp.setRemote({
      address: remote.audio.address,
      port: remote.audio.port,
      rtcpAddress: remote.audio.rtcpAddress,
      rtcpPort: remote.audio.rtcpPort,
    });
    if (this.video && remote.video) this.video.setRemote({ address: remote.video.address, port: remote.video.port });
    if (codecChanged && this.toPbx) {
      // The timeline toward the PBX continues across the switch.
      this.toPbx = this.createToPbx();
      this.o.log.info({ codec: remote.audio.codec }, "PBX changed the audio codec");
    }
  }

  /** Starts transcoding both ways (the call is answered). */
  start(): void {
    if (this.toPbx || this.closed || !this.remote) return;
    this.toPbx = this.createToPbx();
    this.toMeta = new PbxToMetaAudio({
      // The input is narrowband G.711: Opus's cheapest analysis loses nothing audible here and costs
      // about a third of the default (18 µs instead of 60 µs per frame); in-band FEC stays on.
      complexity: 1,
      onFrame: (f) => {
        if (f.oldestArrivalMs !== undefined) this.latencyToMeta.record(performance.now() - f.oldestArrivalMs);
        this.emit("audio", { payload: f.payload, timestamp: f.timestamp, arrivalMs: f.oldestArrivalMs ?? performance.now() });
      },
    });
    this.nextComfortAt = performance.now() + PBX_SILENCE_MS;
    // A failure in this call's timed work ends this call (through `fault`), not just a log line.
    this.untick = this.o.ticker.add(containWith((err) => this.emit("fault", err))((now) => this.onTick(now)));
  }

  get codec(): string | undefined {
    return this.remote?.audio.codec;
  }

  sendAudio(frame: OpusFrame): void {
    this.toPbx?.push({
      payload: frame.payload,
      seq: frame.sequenceNumber ?? 0,
      timestamp: frame.timestamp,
      ssrc: frame.ssrc,
      arrivalMs: frame.arrivalMs,
    });
  }

  sendDtmf(digit: Digit, durationMs: number): void {
    if (!this.toPbx || !this.remote || !this.sendingToPbx) return;
    const pt = this.remote.audio.telephoneEventPayloadType;
    if (pt === undefined) {
      // The PBX takes no RFC 4733: SIP INFO is the fallback PBXs commonly accept.
      this.o.sendInfo("application/dtmf-relay", `Signal=${digit}\r\nDuration=${durationMs}\r\n`).catch((err: unknown) => {
        this.o.log.warn({ err, digit }, "DTMF INFO to the PBX failed");
      });
      return;
    }
    for (const p of dtmfPackets(digit, { clockRate: 8000, timestamp: this.pbxTimestamp, durationMs })) {
      const send = (): void => void this.rtp.send({ payloadType: pt, payload: Buffer.from(p.payload), timestamp: p.timestamp, marker: p.marker });
      if (p.sendOffsetMs <= 0) send();
      else {
        const t = setTimeout(() => {
          this.timers.delete(t);
          if (!this.closed) send();
        }, p.sendOffsetMs);
        this.timers.add(t);
      }
    }
  }

  /**
   * Asks the PBX for a keyframe of its video: RTCP PLI (or FIR) where its SDP negotiated them and
   * its stream's SSRC is known, else SIP INFO picture_fast_update, what SIP video phones act on.
   * Paced: one keyframe answers every request made while it is on its way.
   */
  requestKeyframeFromPbx(): void {
    const now = performance.now();
    if (now - this.lastKeyframeRequestAt < KEYFRAME_REQUEST_SPACING_MS) return;
    this.lastKeyframeRequestAt = now;
    const fb = this.remote?.video?.feedback;
    const phoneSsrc = this.video?.stats().remoteSsrc;
    if (this.video && fb && phoneSsrc !== undefined && (fb.pli || fb.fir)) {
      const packet = fb.pli ? pliPacket(this.video.ssrc, phoneSsrc) : firPacket(this.video.ssrc, phoneSsrc, this.firSequence++);
      if (this.video.sendFeedback([packet])) {
        this.o.log.debug({ kind: fb.pli ? "pli" : "fir" }, "keyframe requested from the PBX");
        return;
      }
    }
    const body =
      '<?xml version="1.0" encoding="utf-8" ?><media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>';
    this.o.log.debug({ kind: "info" }, "keyframe requested from the PBX");
    this.o.sendInfo("application/media_control+xml", body).catch((err: unknown) => this.o.log.debug({ err }, "keyframe request to the PBX failed"));
  }

  /**
   * Caps the bitrate of the PBX's video (what the consumer's network takes): TMMBR (RFC 5104) or
   * REMB, whichever the PBX negotiated. Without either the phone has no way to hear it.
   */
  limitPbxVideoBitrate(bps: number): void {
    const fb = this.remote?.video?.feedback;
    const phoneSsrc = this.video?.stats().remoteSsrc;
    if (!this.video || !fb || phoneSsrc === undefined || !(fb.tmmbr || fb.remb)) return;
    const packet = fb.tmmbr ? tmmbrPacket(this.video.ssrc, phoneSsrc, bps) : rembPacket(this.video.ssrc, [phoneSsrc], bps);
    if (this.video.sendFeedback([packet])) {
      this.bitrateLimitsSent++;
      this.o.log.debug({ bps, kind: fb.tmmbr ? "tmmbr" : "remb" }, "bitrate limit sent to the PBX");
    }
  }

  /** Whether the PBX's last SDP says it sends us video. */
  get pbxSendsVideo(): boolean {
    const v = this.remote?.video;
    return this.video !== undefined && v?.h264 !== undefined && (v.direction === "sendrecv" || v.direction === "sendonly");
  }

  /**
   * RTP and RTCP packets received so far, and whether the PBX's SDP says it sends audio (not on
   * hold): what tells a PBX that died without BYE from one that legitimately sends nothing.
   */
  liveness(): { packets: number; pbxSends: boolean } {
    const s = this.rtp.stats();
    const audio = this.remote?.audio;
    return { packets: s.packetsReceived + s.rtcpReceived, pbxSends: audio !== undefined && !audio.onHold && audio.direction !== "recvonly" };
  }

  /**
   * Whether the PBX's last SDP lets us send it audio: not when it holds the call (sendonly,
   * inactive, or the RFC 2543 c=0.0.0.0).
   */
  private get sendingToPbx(): boolean {
    const audio = this.remote?.audio;
    return audio !== undefined && !audio.onHold;
  }

  /** Whether RTP of the phone's video has arrived on the current video port. */
  get receivingPbxVideo(): boolean {
    return this.video?.stats().remoteSsrc !== undefined;
  }

  /** Runs `fn` on the media clock until the returned function is called. */
  addTicker(fn: (now: number) => void): () => void {
    return this.o.ticker.add(fn);
  }

  /** SIP INFO from the PBX: `application/dtmf-relay` carries keys, media_control XML keyframe requests. */
  onInfo(contentType: string, body: string): void {
    if (/media_control/i.test(contentType) && /picture_fast_update/i.test(body)) {
      this.emit("keyframeRequest");
      return;
    }
    if (!/dtmf/i.test(contentType)) return;
    const signal = /Signal\s*=\s*([0-9*#A-Da-d])/.exec(body)?.[1]?.toUpperCase();
    const duration = Number(/Duration\s*=\s*(\d+)/.exec(body)?.[1] ?? 160);
    if (signal && isDtmfDigit(signal)) {
      this.o.log.info({ digit: signal, durationMs: duration }, "DTMF from PBX (INFO)");
      this.emit("dtmf", signal, duration);
    }
  }

  stats(): PbxMediaStats {
    if (this.closedStats) return this.closedStats;
    return {
      codec: this.remote?.audio.codec,
      rtp: this.rtp.stats(),
      toPbx: this.toPbx?.stats(),
      toMeta: this.toMeta?.stats(),
      comfortFrames: this.comfortFrames,
      video: this.video?.stats(),
      videoBitrateLimitsSent: this.bitrateLimitsSent,
      held: this.remote?.audio.onHold ?? false,
      holds: this.holds,
      latencyToPbx: this.latencyToPbx.snapshot(),
      latencyToMeta: this.latencyToMeta.snapshot(),
      reception: this.reception.snapshot(),
      firstAudioInAt: this.firstAudioInAt,
      firstAudioOutAt: this.firstAudioOutAt,
      srtp: this.audioSdes.suite,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closedStats = this.stats();
    this.closed = true;
    this.untick?.();
    this.untick = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.toPbx = undefined;
    this.toMeta = undefined;
    this.removeAllListeners();
    await Promise.all([this.rtp.close(), this.closeVideo()]);
  }

  private createToPbx(): MetaToPbxAudio {
    return new MetaToPbxAudio({
      codec: this.remote!.audio.codec,
      initialTimestamp: this.pbxTimestamp,
      onFrame: (f) => {
        this.pbxTimestamp = f.timestamp;
        if (f.oldestArrivalMs !== undefined) this.latencyToPbx.record(performance.now() - f.oldestArrivalMs);
        // A held stream is not sent to (RFC 3264 §8.4); its timeline goes on for the resume.
        if (!this.sendingToPbx) return;
        const pt = this.remote?.audio.payloadType ?? 0;
        // A view, not a copy: the frame is ours alone and the endpoint copies it into the datagram.
        const payload = Buffer.from(f.payload.buffer, f.payload.byteOffset, f.payload.byteLength);
        const sent = this.rtp.send({ payloadType: pt, payload, timestamp: f.timestamp, marker: f.marker });
        if (sent && f.content === "audio") this.firstAudioOutAt ??= Date.now();
      },
    });
  }

  private onPbxRtp(packet: RtpPacket): void {
    this.reception.onPacket(packet.ssrc, packet.sequenceNumber, packet.timestamp, performance.now());
    if (!this.toMeta || !this.remote) return;
    this.firstAudioInAt ??= Date.now();
    const te = this.remote.audio.telephoneEventPayloadType;
    if (te !== undefined && packet.payloadType === te) {
      this.dtmfIn ??= new DtmfReceiver(8000, (d) => {
        this.o.log.info({ digit: d.digit, durationMs: d.durationMs }, "DTMF from PBX");
        this.emit("dtmf", d.digit, d.durationMs);
      });
      try {
        this.dtmfIn.push({ payload: packet.payload, timestamp: packet.timestamp });
      } catch (err) {
        this.o.log.debug({ err }, "malformed telephone-event from PBX dropped");
      }
      return;
    }
    const now = performance.now();
    this.nextComfortAt = now + PBX_SILENCE_MS;
    this.toMeta.push({ payload: packet.payload, payloadType: packet.payloadType, arrivalMs: now });
  }

  /** Jitter-buffer deadlines toward the PBX, and comfort audio toward Meta while the PBX is silent. */
  private onTick(now: number): void {
    const deadline = this.toPbx?.nextDeadlineMs();
    if (deadline !== undefined && now >= deadline) this.toPbx!.tick(now);
    if (this.toMeta && now >= this.nextComfortAt) {
      const f = this.toMeta.comfortFrame();
      this.comfortFrames++;
      this.nextComfortAt += FRAME_MS;
      // After a stall (a busy event loop) catch up to now rather than bursting frames.
      if (this.nextComfortAt < now) this.nextComfortAt = now + FRAME_MS;
      this.emit("audio", { payload: f.payload, timestamp: f.timestamp, arrivalMs: now });
    }
  }

  /** Our SDP's options: an offer when `offered` is undefined, else the answer to that offer. */
  private localSdp(bump: boolean, offered: RemoteMedia | undefined): LocalSdpOptions {
    if (bump) this.sessionVersion++;
    const videoSecurity = offered ? (offered.video ? this.videoSdes.answer(offered.video.security) : undefined) : this.videoSdes.offer();
    return {
      audioSecurity: offered ? this.audioSdes.answer(offered.audio.security) : this.audioSdes.offer(),
      mediaAddress: this.o.mediaAddress,
      audioPort: this.rtp.localRtpPort,
      rtcpPort: this.rtp.localRtcpPort,
      telephoneEventPayloadType: TELEPHONE_EVENT_PT,
      sessionId: this.sessionId,
      sessionVersion: this.sessionVersion,
      video: this.video
        ? { port: this.video.localRtpPort, rtcpPort: this.video.localRtcpPort, payloadType: 96, profileLevelId: "42e01f", packetizationMode: 1, security: videoSecurity }
        : this.videoNegotiated
          ? { port: 0, payloadType: 96, profileLevelId: "42e01f", packetizationMode: 1, direction: "inactive", security: videoSecurity }
          : undefined,
    };
  }
}
