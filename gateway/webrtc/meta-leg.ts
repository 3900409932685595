import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import {
  MediaStream,
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtcpPayloadSpecificFeedback,
  RtcpTransportLayerFeedback,
  ReceiverEstimatedMaxBitrate,
  RtpHeader,
  RTCDtlsTransport,
  RtpPacket,
  useAbsSendTime,
  useAV1X,
  useH264,
  useNACK,
  useOPUS,
  usePLI,
  useREMB,
  useSdesMid,
  useTransportWideCC,
  useTWCC,
  useVP8,
  useVP9,
  type RTCRtpTransceiver,
  type RtcpPacket,
  type RtcpReceiverInfo,
} from "werift";
import { MetaLegError, SdpError } from "../errors.js";
import type { LegFigures } from "../quality/call-quality.js";
import { StreamReception } from "../quality/reception.js";
import { ReceiveBandwidthEstimator, rembFields } from "./receive-bandwidth.js";
import { TRANSPORT_CC_URI, TransportFeedbackRecorder, transportSequenceNumber } from "./transport-cc.js";
import { chooseVideoCodec, type PbxVideoCapabilities } from "../../transcode/video/codec-policy.js";
import { keepSha256FingerprintsOnly, reorderVideoFormats, sdpForMeta, sdpForWerift, summarizeSdp, validateRemoteSdp } from "./sdp.js";

/** Network settings of the Meta leg, from the gateway configuration. */
export interface MetaLegNetwork {
  portRange: [number, number];
  /** Advertised as the only host candidate when set (1:1 NAT / public address). */
  publicIp: string | undefined;
  /** Media sockets bind here when set. */
  bindIp: string | undefined;
  stunUrls: string[];
}

export type MetaLegState = "new" | "offered" | "answered" | "connecting" | "connected" | "closed" | "failed";

/** One RTP packet of the consumer's media, as received (SRTP already removed). */
export interface InboundRtp {
  mid: string | undefined;
  kind: "audio" | "video";
  /** werift's packet on the DTLS leg; the SDES leg's own parse carries the same fields. */
  packet: { header: { payloadType: number; sequenceNumber: number; timestamp: number; marker: boolean; ssrc: number }; payload: Buffer };
  /** performance.now() at arrival, for latency accounting. */
  arrivalMs: number;
}

export interface MetaLegEvents {
  state: [MetaLegState];
  rtp: [InboundRtp];
  /** The consumer asked for a keyframe on our video (PLI/FIR). */
  keyframeRequest: [];
  /** What the consumer's side takes of our video (REMB from Meta), in bits per second. */
  bitrateLimit: [number];
}

export interface MetaLegStats {
  state: MetaLegState;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  lastPacketInAt: number | undefined;
  connectedAt: number | undefined;
}

// Opus as Meta's edge negotiates it; minptime=10 and in-band FEC match Meta's own fmtp.
const OPUS = (): RTCRtpCodecParameters =>
  useOPUS({ payloadType: 111, parameters: "minptime=10;useinbandfec=1", rtcpFeedback: [useTWCC()] });
// Meta's Messenger re-offers carry telephone-event on the 48 kHz Opus clock (110); 126/8000 is what
// WhatsApp uses. Offer both so whichever the far end keeps is one we can send.
const TELEPHONE_EVENT_48K = (): RTCRtpCodecParameters =>
  new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 48000, payloadType: 110, parameters: "0-16" });
const TELEPHONE_EVENT_8K = (): RTCRtpCodecParameters =>
  new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 8000, payloadType: 126, parameters: "0-16" });

// Video as Meta's edge sends it. The order is our preference when the consumer's offer lists
// several: H.264 first, since a SIP phone takes it without transcoding. Bandwidth: transport-cc
// with feedback we build ourselves (werift's own is malformed, werift-notes §2, and is switched
// off), and REMB from what arrives where Meta's answer leaves transport-cc out.
const VIDEO_FEEDBACK = () => [useNACK(), usePLI(), useREMB(), useTWCC()];
const VIDEO_CODECS = (): RTCRtpCodecParameters[] => [
  useH264({ payloadType: 109, rtcpFeedback: VIDEO_FEEDBACK(), parameters: "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1" }),
  useVP8({ payloadType: 96, rtcpFeedback: VIDEO_FEEDBACK() }),
  useVP9({ payloadType: 98, rtcpFeedback: VIDEO_FEEDBACK() }),
  useAV1X({ payloadType: 45, rtcpFeedback: VIDEO_FEEDBACK() }),
  new RTCRtpCodecParameters({ mimeType: "video/H265", clockRate: 90000, payloadType: 49, rtcpFeedback: VIDEO_FEEDBACK() }),
];
const REMB_INTERVAL_MS = 1000;
/** How often transport-wide feedback goes out: libwebrtc's default interval. */
const TRANSPORT_CC_INTERVAL_MS = 100;
/** What SIP video phones decode: constrained baseline H.264, packetization mode 1 or 0. */
const SIP_PHONE_VIDEO: PbxVideoCapabilities = {
  h264: [
    { profileLevelId: "42e01f", packetizationMode: 1 },
    { profileLevelId: "42e01f", packetizationMode: 0 },
  ],
};

const RTCP_SR = 200;
const RTCP_RR = 201;
const RTCP_PSFB = 206;
const OPUS_CLOCK_RATE = 48000;
/** A round trip beyond this is a mismatched LSR, not a measurement. */
const MAX_PLAUSIBLE_RTT_MS = 10_000;
const PSFB_PLI = 1;
const PSFB_FIR = 4;

/**
 * Makes the DTLS certificate every leg of this thread uses (werift keeps one per module instance,
 * as browsers keep one per profile), so that the first call does not wait for its key pair.
 */
export async function prepareDtlsCertificate(): Promise<void> {
  await RTCDtlsTransport.SetupCertificate();
}

/**
 * The WebRTC leg toward Meta's edge, on werift. Meta is always ice-lite, so we are the full,
 * controlling ICE agent and the DTLS client. Every SDP we hand out is complete (Meta has no trickle).
 *
 * werift's known bugs are contained here, at the boundary, so the rest of the gateway never sees them:
 * - its hidden public STUN default (removed before gathering);
 * - payload-type rewriting on send (see sendRtp);
 * - remote PLIs routed to the receiver instead of the sender (read at the DTLS transport).
 */
export class MetaLeg extends EventEmitter<MetaLegEvents> {
  private readonly pc: RTCPeerConnection;
  private readonly audio: RTCRtpTransceiver;
  private readonly audioTrack = new MediaStreamTrack({ kind: "audio" });
  private _state: MetaLegState = "new";
  private readonly counters = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 };
  private lastPacketInAt: number | undefined;
  private connectedAt: number | undefined;
  private rtcpHooked = false;
  private rembTimer: NodeJS.Timeout | undefined;
  private readonly receiveBandwidth = new ReceiveBandwidthEstimator();
  private readonly transportCc = new TransportFeedbackRecorder();
  /** The transport-wide sequence number's header extension id, once negotiated. */
  private transportCcId: number | undefined;
  private transportCcMediaSsrc = 0;
  private transportCcTimer: NodeJS.Timeout | undefined;
  /** Our own video toward the consumer (the PBX's H.264), once the PBX sends video. */
  private videoOut: { transceiver: RTCRtpTransceiver; msid: string; seq: number; paused: boolean } | undefined;
  private readonly subscriptions: { unSubscribe: () => void }[] = [];
  /** The consumer's audio as it arrived, for quality figures. */
  private readonly audioIn = new StreamReception(OPUS_CLOCK_RATE);
  private firstAudioInAt: number | undefined;
  private firstAudioOutAt: number | undefined;
  /** What Meta's edge last reported (RTCP SR/RR report block) about our audio. */
  private remoteAudioReport: LegFigures["remoteReport"];
  /** The figures as they were when the leg closed (werift's state is gone after that). */
  private closedFigures: LegFigures | undefined;

  constructor(
    readonly callId: string,
    network: MetaLegNetwork,
    private readonly log: Logger,
  ) {
    super();
    const advertiseOnly = network.publicIp !== undefined;
    this.pc = new RTCPeerConnection({
      iceServers: network.stunUrls.map((urls) => ({ urls })),
      icePortRange: network.portRange,
      iceAdditionalHostAddresses: network.publicIp ? [network.publicIp] : undefined,
      iceInterfaceAddresses: network.bindIp ? { udp4: network.bindIp } : undefined,
      // With a public address configured, advertise only it: private interface addresses in an
      // SDP sent to Meta are useless to an ice-lite peer and leak the host's layout.
      iceUseIpv4: !advertiseOnly,
      iceUseIpv6: false,
      iceStunGatherTimeout: 2,
      bundlePolicy: "max-bundle",
      sendTransportCcFeedback: false,
      codecs: { audio: [OPUS(), TELEPHONE_EVENT_48K(), TELEPHONE_EVENT_8K()], video: VIDEO_CODECS() },
      headerExtensions: { audio: [useSdesMid(), useTransportWideCC()], video: [useSdesMid(), useAbsSendTime(), useTransportWideCC()] },
    });
    this.audio = this.pc.addTransceiver(this.audioTrack, { direction: "sendrecv" });
    this.disableImplicitStun(network.stunUrls.length === 0);

    // onTrack fires inside setRemoteDescription, so it must be subscribed before any SRD.
    this.subscriptions.push(
      this.pc.onTrack.subscribe((track) => {
        const transceiver = this.pc.getTransceivers().find((t) => t.receiver.tracks.includes(track));
        const mid = transceiver?.mid ?? undefined;
        const kind = track.kind === "video" ? "video" : "audio";
        this.log.debug({ mid, kind, ssrc: track.ssrc }, "meta leg: remote track");
        track.onReceiveRtp.subscribe((packet) => {
          // Padding-only packets are a send-side estimator's bandwidth probes: they carry no media,
          // and passed on as video they would reach a phone as empty NAL units.
          if (packet.payload.length === 0) return;
          const arrivalMs = performance.now();
          this.counters.packetsIn++;
          this.counters.bytesIn += packet.payload.length;
          this.lastPacketInAt = Date.now();
          if (kind === "video") this.receiveBandwidth.onPacket(packet.header.sequenceNumber, packet.serializeSize);
          else {
            this.firstAudioInAt ??= Date.now();
            this.audioIn.onPacket(packet.header.ssrc, packet.header.sequenceNumber, packet.header.timestamp, arrivalMs);
          }
          this.emit("rtp", { mid, kind, packet, arrivalMs });
        });
      }),
      this.pc.connectionStateChange.subscribe((s) => {
        if (s === "connected") {
          this.connectedAt = Date.now();
          this.hookRtcp();
          this.setState("connected");
        } else if (s === "failed") this.setState("failed");
        else if (s === "connecting" && this._state === "answered") this.setState("connecting");
      }),
    );
  }

  get state(): MetaLegState {
    return this._state;
  }

  /** Our initial offer: Opus and telephone-event, BUNDLE, rtcp-mux, actpass, every candidate gathered. */
  async createOffer(): Promise<string> {
    this.expectState("createOffer", ["new"]);
    const offer = await this.pc.createOffer();
    // werift's setLocalDescription waits for candidate gathering to finish, so the
    // description read back afterwards carries every candidate and end-of-candidates.
    await this.pc.setLocalDescription(offer);
    // We never trickle (Meta has no channel for it), so do not claim to.
    const sdp = sdpForMeta(this.pc.localDescription!.sdp);
    this.setState("offered");
    const s = summarizeSdp(sdp);
    this.log.debug({ candidates: s.candidates, bundle: s.bundle }, "meta leg: offer ready");
    return sdp;
  }

  /** Applies Meta's answer (`sdp_response`) to our offer. */
  async applyAnswer(sdp: string): Promise<void> {
    this.expectState("applyAnswer", ["offered"]);
    const problem = validateRemoteSdp(sdp, "answer");
    if (problem) throw new SdpError(this.callId, `Meta's answer ${problem}`);
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp: sdpForWerift(sdp) });
    } catch (err) {
      throw new SdpError(this.callId, `Meta's answer was refused: ${(err as Error).message}`, { cause: err });
    }
    this.readTransportCcId();
    this.setState("answered");
  }

  /**
   * Applies an offer from Meta (`sdp_renegotiation`, or a media_update webhook) and returns our
   * answer. Meta never receives this answer (no API takes it): it is set locally only, so it must
   * describe exactly what we will do.
   */
  async applyOffer(sdp: string): Promise<string> {
    this.expectState("applyOffer", ["answered", "connecting", "connected"]);
    const problem = validateRemoteSdp(sdp, "offer");
    if (problem) throw new SdpError(this.callId, `Meta's offer ${problem}`);
    // The consumer's video goes to a SIP phone as H.264: take H.264 as is when Meta offers one the
    // phone decodes, else the codec that is cheapest to transcode.
    const ordered = reorderVideoFormats(sdp, (offered) => {
      const choice = chooseVideoCodec(offered, SIP_PHONE_VIDEO);
      return choice.mode === "none" ? [] : choice.preference;
    });
    try {
      await this.pc.setRemoteDescription({ type: "offer", sdp: sdpForWerift(ordered) });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
    } catch (err) {
      throw new SdpError(this.callId, `Meta's offer was refused: ${(err as Error).message}`, { cause: err });
    }
    this.readTransportCcId();
    const local = keepSha256FingerprintsOnly(this.pc.localDescription!.sdp);
    const s = summarizeSdp(local);
    this.log.debug({ media: s.media.map((m) => `${m.mid}:${m.kind}:${m.direction}`) }, "meta leg: answered Meta's offer");
    return local;
  }

  /**
   * Answers the offer that opens a call (WhatsApp: Meta's offer in the connect webhook). The answer
   * is complete (every candidate gathered, sha-256 only) and says `setup:active`: an ice-lite Meta
   * expects us to be the controlling ICE agent and the DTLS client. Meta's mid (`audio`) is echoed.
   */
  async answerInitialOffer(sdp: string): Promise<string> {
    this.expectState("answerInitialOffer", ["new"]);
    const problem = validateRemoteSdp(sdp, "offer");
    if (problem) throw new SdpError(this.callId, `Meta's offer ${problem}`);
    try {
      await this.pc.setRemoteDescription({ type: "offer", sdp: sdpForWerift(sdp) });
      await this.pc.setLocalDescription(await this.pc.createAnswer());
    } catch (err) {
      throw new SdpError(this.callId, `Meta's offer was refused: ${(err as Error).message}`, { cause: err });
    }
    this.readTransportCcId();
    const answer = sdpForMeta(this.pc.localDescription!.sdp);
    this.setState("answered");
    const s = summarizeSdp(answer);
    this.log.debug({ candidates: s.candidates, media: s.media.map((m) => `${m.mid}:${m.kind}:${m.direction}`) }, "meta leg: answered Meta's opening offer");
    return answer;
  }

  /** Resolves once DTLS is up; rejects when the leg fails or closes first, or after timeoutMs. */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this._state === "connected") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("state", onState);
        reject(new MetaLegError(this.callId, `media did not connect within ${timeoutMs} ms`));
      }, timeoutMs);
      const onState = (s: MetaLegState): void => {
        if (s === "connected") {
          clearTimeout(timer);
          this.off("state", onState);
          resolve();
        } else if (s === "failed" || s === "closed") {
          clearTimeout(timer);
          this.off("state", onState);
          reject(new MetaLegError(this.callId, `media ${s} before connecting`));
        }
      };
      this.on("state", onState);
    });
  }

  /**
   * Sends one audio packet toward the consumer on our transceiver (mid 0). The caller owns sequence
   * numbers and timestamps (werift keeps them, adding a constant offset).
   *
   * werift's sender stamps every packet with the payload type of the first negotiated codec, which
   * would send telephone-event labelled as Opus. The codec the sender stamps is read synchronously
   * at the start of sendRtp, so swapping it for the duration of that call sends the right PT while
   * keeping werift's sequence numbering, SSRC, header extensions, SR statistics and NACK cache.
   */
  sendAudio(payloadType: number, data: Uint8Array, timestamp: number, sequenceNumber: number, marker = false): void {
    if (this._state !== "connected") return;
    const sender = this.audio.sender;
    const negotiated = sender.codec;
    if (!negotiated) return;
    const payload = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const header = new RtpHeader({ payloadType, timestamp, sequenceNumber, marker });
    const packet = new RtpPacket(header, payload);
    this.counters.packetsOut++;
    this.counters.bytesOut += payload.length;
    this.firstAudioOutAt ??= Date.now();
    if (payloadType === negotiated.payloadType) {
      sender.sendRtp(packet).catch((err: unknown) => this.log.debug({ err }, "meta leg: send failed"));
      return;
    }
    const codec = this.findCodec(payloadType);
    if (!codec) {
      this.log.debug({ payloadType }, "meta leg: payload type not negotiated, packet dropped");
      return;
    }
    sender.codec = codec;
    try {
      sender.sendRtp(packet).catch((err: unknown) => this.log.debug({ err }, "meta leg: send failed"));
    } finally {
      sender.codec = negotiated;
    }
  }

  /** The telephone-event payload type Meta accepted on our audio, preferring the Opus clock. */
  telephoneEventPayloadType(): { payloadType: number; clockRate: number } | undefined {
    const codecs = this.audio.codecs ?? [];
    const te = codecs.filter((c) => c.mimeType.toLowerCase() === "audio/telephone-event");
    const pick = te.find((c) => c.clockRate === 48000) ?? te[0];
    return pick ? { payloadType: pick.payloadType, clockRate: pick.clockRate } : undefined;
  }

  /** What a payload type received from Meta carries, from every negotiated transceiver. */
  inboundCodec(payloadType: number): { name: string; clockRate: number } | undefined {
    for (const t of this.pc.getTransceivers()) {
      const c = (t.codecs ?? []).find((codec) => codec.payloadType === payloadType);
      if (c) return { name: c.mimeType.split("/")[1]!.toLowerCase(), clockRate: c.clockRate };
    }
    return undefined;
  }

  /**
   * Our offer for a media_update that starts (or stops) sending the PBX's H.264 video to the
   * consumer: a sendonly video transceiver with its own stream id, the msid Meta's `tracks` names.
   * The offer is set locally; `applyRenegotiationAnswer` or `rollbackLocalOffer` completes it.
   */
  async offerOutboundVideo(send: boolean): Promise<{ sdp: string; msid: string }> {
    this.expectState("offerOutboundVideo", ["connecting", "connected"]);
    if (!this.videoOut) {
      const track = new MediaStreamTrack({ kind: "video" });
      const stream = new MediaStream({ id: `gw-video-${this.callId}`, tracks: [track] });
      const transceiver = this.pc.addTransceiver(track, { direction: send ? "sendonly" : "inactive", streams: [stream] });
      // Only H.264 on this transceiver: the sender stamps packets with its first codec's type.
      transceiver.setCodecPreferences(VIDEO_CODECS().filter((c) => c.mimeType === "video/H264"));
      this.videoOut = { transceiver, msid: stream.id, seq: Math.floor(Math.random() * 0x10000), paused: false };
    } else {
      this.videoOut.transceiver.setDirection(send ? "sendonly" : "inactive");
      this.videoOut.paused = false;
    }
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    return { sdp: sdpForMeta(this.pc.localDescription!.sdp), msid: this.videoOut.msid };
  }

  /** Meta's answer to our media_update offer. */
  async applyRenegotiationAnswer(sdp: string): Promise<void> {
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp: sdpForWerift(sdp) });
    } catch (err) {
      throw new SdpError(this.callId, `Meta's answer to our media_update was refused: ${(err as Error).message}`, { cause: err });
    }
    this.readTransportCcId();
  }

  /** Withdraws our pending media_update offer (a collision: Meta's own offer goes first). */
  async rollbackLocalOffer(): Promise<void> {
    await this.pc.setLocalDescription({ type: "rollback" } as never);
  }

  /** Whether Meta accepted our video: the transceiver negotiated to send. */
  get sendsVideo(): boolean {
    const dir = this.videoOut?.transceiver.currentDirection;
    return dir === "sendonly" || dir === "sendrecv";
  }

  /** The msid of our video toward the consumer, once we offered one. */
  get videoOutMsid(): string | undefined {
    return this.videoOut?.msid;
  }

  /** Stops (or resumes) sending our video without renegotiating: its track is disabled at Meta. */
  pauseVideo(paused: boolean): void {
    if (this.videoOut) this.videoOut.paused = paused;
  }

  /** One H.264 RTP payload of the PBX's video toward the consumer. */
  sendVideo(payload: Buffer, timestamp: number, marker: boolean): void {
    const out = this.videoOut;
    if (this._state !== "connected" || !out || out.paused || !this.sendsVideo) return;
    out.seq = (out.seq + 1) & 0xffff;
    const header = new RtpHeader({ payloadType: out.transceiver.sender.codec?.payloadType ?? 109, timestamp, sequenceNumber: out.seq, marker });
    out.transceiver.sender.sendRtp(new RtpPacket(header, payload)).catch(() => undefined);
  }

  /**
   * The codec of the consumer's video, when a video stream toward us is negotiated (the consumer
   * turned video on), else undefined.
   */
  inboundVideoCodec(): string | undefined {
    for (const t of this.pc.getTransceivers()) {
      if (t.kind !== "video" || t.stopped) continue;
      const dir = t.currentDirection;
      if (dir !== "recvonly" && dir !== "sendrecv") continue;
      const codec = (t.codecs ?? []).find((c) => !/rtx|red|ulpfec/i.test(c.mimeType));
      if (codec) return codec.mimeType.split("/")[1]!.toUpperCase();
    }
    return undefined;
  }

  /**
   * Asks the consumer for a keyframe on every video stream we receive (PLI), e.g. when the PBX
   * needs one or our transcoder lost its reference.
   */
  requestKeyframe(): void {
    for (const t of this.pc.getTransceivers()) {
      if (t.kind !== "video") continue;
      for (const track of t.receiver.tracks) {
        if (track.ssrc !== undefined) t.receiver.sendRtcpPLI(track.ssrc).catch(() => undefined);
      }
    }
  }

  /** Payload type of Opus as negotiated on our sending transceiver. */
  opusPayloadType(): number {
    return this.audio.sender.codec?.payloadType ?? 111;
  }

  /**
   * werift never sends REMB; without it Meta's sender stays on its slow loss-based ramp. Tell it
   * what we can take (estimated from what arrives and what is lost), for every video stream we
   * receive, once a second while any exists.
   */
  private sendRemb(): void {
    const dtls = this.audio.dtlsTransport;
    const ssrcs = this.pc
      .getTransceivers()
      .filter((t) => t.kind === "video")
      .flatMap((t) => t.receiver.tracks.map((tr) => tr.ssrc))
      .filter((ssrc): ssrc is number => ssrc !== undefined);
    if (!dtls || ssrcs.length === 0) return;
    const bps = this.receiveBandwidth.update(REMB_INTERVAL_MS);
    // With transport-cc the sender estimates from our feedback; a REMB from our coarser estimate
    // would only cap it.
    if (this.videoUsesTransportCc()) return;
    const remb = new ReceiverEstimatedMaxBitrate({ senderSsrc: this.audio.sender.ssrc, mediaSsrc: 0, ssrcNum: ssrcs.length, ...rembFields(bps), ssrcFeedbacks: ssrcs });
    dtls.sendRtcp([new RtcpPayloadSpecificFeedback({ feedback: remb })]).catch(() => undefined);
  }

  /** Whether Meta's video toward us is under send-side estimation: the extension and the feedback type both negotiated. */
  private videoUsesTransportCc(): boolean {
    if (this.transportCcId === undefined) return false;
    return this.pc
      .getTransceivers()
      .some((t) => t.kind === "video" && (t.codecs ?? []).some((c) => (c.rtcpFeedback ?? []).some((fb) => fb.type === "transport-cc")));
  }

  /** After each description: werift takes the remote's extension ids. */
  private readTransportCcId(): void {
    this.transportCcId = this.pc
      .getTransceivers()
      .flatMap((t) => t.headerExtensions)
      .find((e) => e.uri === TRANSPORT_CC_URI)?.id;
  }

  /** Transport-wide feedback for everything that arrived since the last one, one SRTCP packet each. */
  private sendTransportCc(): void {
    const dtls = this.audio.dtlsTransport;
    if (!dtls || this._state !== "connected") return;
    for (const bytes of this.transportCc.build(this.audio.sender.ssrc, this.transportCcMediaSsrc)) {
      // werift's sendRtcp serializes each packet and protects the result: ours goes out as built.
      const packet = new RtcpTransportLayerFeedback();
      packet.serialize = () => bytes;
      dtls.sendRtcp([packet]).catch(() => undefined);
    }
  }

  stats(): MetaLegStats {
    return { state: this._state, ...this.counters, lastPacketInAt: this.lastPacketInAt, connectedAt: this.connectedAt };
  }

  /**
   * Audio quality figures of this leg: what arrived of the consumer's audio, what Meta's edge
   * reported about ours, and the round trip werift measured from its SR and Meta's RR (werift
   * keeps that value private; its SR/RR bookkeeping is the only place the LSR can be matched).
   */
  quality(): LegFigures {
    if (this.closedFigures) return this.closedFigures;
    const rttSeconds = (this.audio.sender as unknown as { rtt?: number }).rtt;
    const rttMs = typeof rttSeconds === "number" ? rttSeconds * 1000 : undefined;
    return {
      received: this.audioIn.snapshot(),
      packetsSent: this.counters.packetsOut,
      remoteReport: this.remoteAudioReport && { ...this.remoteAudioReport },
      roundTripMs: rttMs !== undefined && rttMs >= 0 && rttMs < MAX_PLAUSIBLE_RTT_MS ? rttMs : undefined,
      firstAudioInAt: this.firstAudioInAt,
      firstAudioOutAt: this.firstAudioOutAt,
    };
  }

  async close(): Promise<void> {
    if (this._state === "closed") return;
    this.closedFigures = this.quality();
    this.setState("closed");
    if (this.rembTimer) clearInterval(this.rembTimer);
    this.rembTimer = undefined;
    if (this.transportCcTimer) clearInterval(this.transportCcTimer);
    this.transportCcTimer = undefined;
    for (const s of this.subscriptions) s.unSubscribe();
    this.subscriptions.length = 0;
    try {
      await this.pc.close();
    } catch (err) {
      this.log.debug({ err }, "meta leg: close error");
    }
    this.removeAllListeners();
  }

  /** A report block about our audio: Meta's view of the loss and jitter of what we send. */
  private onReportBlocks(reports: RtcpReceiverInfo[]): void {
    const ours = reports.find((r) => r.ssrc === this.audio.sender.ssrc);
    if (!ours) return;
    const sent = this.counters.packetsOut;
    const lost = Math.max(0, ours.packetsLost);
    this.remoteAudioReport = {
      // The cumulative count over what was sent, not the last interval's fraction: a call-long figure.
      lossRatio: sent + lost > 0 ? Math.min(1, lost / Math.max(sent, lost)) : 0,
      packetsLost: lost,
      jitterMs: (ours.jitter * 1000) / OPUS_CLOCK_RATE,
    };
  }

  private findCodec(payloadType: number): RTCRtpCodecParameters | undefined {
    return (this.audio.codecs ?? []).find((c) => c.payloadType === payloadType);
  }

  private setState(s: MetaLegState): void {
    if (this._state === s || this._state === "closed") return;
    if (this._state === "failed" && s !== "closed") return;
    this._state = s;
    this.emit("state", s);
  }

  private expectState(op: string, allowed: MetaLegState[]): void {
    if (!allowed.includes(this._state)) {
      throw new MetaLegError(this.callId, `${op} not possible in state ${this._state}`);
    }
  }

  /**
   * werift falls back to a public STUN server whenever no stun: URL is configured, even for an
   * empty list (upstream issue #691). With no STUN configured we want none at all, so clear the
   * derived server on every ICE connection before the first gathering.
   */
  private disableImplicitStun(noStun: boolean): void {
    if (!noStun) return;
    for (const transport of this.pc.iceTransports) {
      (transport.connection as { stunServer?: unknown }).stunServer = undefined;
    }
  }

  /**
   * werift routes a PLI to whichever of its objects knows the RTCP sender SSRC; when the consumer
   * also sends on that m-line, the PLI lands in the receiver and the sender's event never fires.
   * Reading RTCP at the DTLS transport sees every feedback packet.
   */
  private hookRtcp(): void {
    if (this.rtcpHooked) return;
    const dtls = this.audio.dtlsTransport;
    if (!dtls) return;
    this.rtcpHooked = true;
    this.rembTimer = setInterval(() => this.sendRemb(), REMB_INTERVAL_MS);
    this.rembTimer.unref();
    this.transportCcTimer = setInterval(() => this.sendTransportCc(), TRANSPORT_CC_INTERVAL_MS);
    this.transportCcTimer.unref();
    const ourSsrcs = (): number[] => this.pc.getTransceivers().map((t) => t.sender.ssrc);
    this.subscriptions.push(
      // Every packet of the bundle, straight after SRTP: also those werift drops before a track
      // (bandwidth probes, unknown payload types), which would otherwise be reported lost.
      dtls.onRtp.subscribe((rtp) => {
        const id = this.transportCcId;
        const seq = id === undefined ? undefined : transportSequenceNumber(rtp.header.extensions, id);
        if (seq === undefined) return;
        this.transportCc.record(seq, performance.now());
        this.transportCcMediaSsrc = rtp.header.ssrc;
      }),
      dtls.onRtcp.subscribe((rtcp: RtcpPacket) => {
        if (rtcp.type === RTCP_SR || rtcp.type === RTCP_RR) {
          this.onReportBlocks((rtcp as { reports: RtcpReceiverInfo[] }).reports);
          return;
        }
        if (rtcp.type !== RTCP_PSFB) return;
        const fb = (rtcp as RtcpPayloadSpecificFeedback).feedback;
        if (fb instanceof ReceiverEstimatedMaxBitrate) {
          const video = this.videoOut?.transceiver.sender.ssrc;
          if (video !== undefined && fb.ssrcFeedbacks.includes(video)) this.emit("bitrateLimit", Number(fb.bitrate));
          return;
        }
        if ((fb.count === PSFB_PLI || fb.count === PSFB_FIR) && ourSsrcs().includes(fb.mediaSsrc)) {
          this.emit("keyframeRequest");
        }
      }),
    );
  }
}
