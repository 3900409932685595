import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { parseSdp, readSecurity, type SdpMediaSection } from "../../sip/sdp.js";
import type { PortAllocator } from "../../sip/rtp/port-allocator.js";
import { RtpEndpoint } from "../../sip/rtp/rtp-endpoint.js";
import { formatCryptoAttribute, isUsableCrypto, LocalMasterKeys, type SdesCrypto, type SrtpSuite } from "../../sip/srtp/sdes.js";
import { SrtpTransform } from "../../sip/srtp/srtp-transform.js";
import { MetaLegError, SdpError } from "../errors.js";
import type { LegFigures } from "../quality/call-quality.js";
import { StreamReception } from "../quality/reception.js";
import type { MetaLegEvents, MetaLegState, MetaLegStats } from "./meta-leg.js";
import type { MetaMediaLeg } from "./meta-media-leg.js";

const OPUS_PT = 111;
const TELEPHONE_EVENT_PT = 126;
const OPUS_CLOCK_RATE = 48000;
/** The suite Meta's SDES examples use; _32 is taken when it is the only one offered. */
const SUITES: readonly SrtpSuite[] = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"];

export interface SdesLegOptions {
  /** RTP/RTCP port pairs (the SIP side's range: no ICE ports are needed). */
  allocator: PortAllocator;
  /** Address our SDP advertises. */
  mediaAddress: string;
}

/**
 * The leg toward Meta for a WhatsApp number set to `srtp_key_exchange_protocol: SDES`: no ICE, no
 * DTLS; Opus and telephone-event/8000 in SRTP keyed by `a=crypto` (RFC 4568), on one RTP endpoint
 * with symmetric latching. Meta sends nothing until our first SRTP packet arrives (its docs: "Meta
 * still expects the business side to send the first SRTP packet"); the call starts ours once it is
 * accepted, and comfort audio keeps it going.
 */
export class SdesMetaLeg extends EventEmitter<MetaLegEvents> implements MetaMediaLeg {
  readonly sendsVideo = false;
  readonly videoOutMsid = undefined;
  private _state: MetaLegState = "new";
  private endpoint: RtpEndpoint | undefined;
  private readonly localKeys = new LocalMasterKeys();
  private mid = "audio";
  private opusPt = OPUS_PT;
  private telephoneEvent: { payloadType: number; clockRate: number } | undefined = { payloadType: TELEPHONE_EVENT_PT, clockRate: 8000 };
  private readonly counters = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 };
  private lastPacketInAt: number | undefined;
  private connectedAt: number | undefined;
  private firstAudioInAt: number | undefined;
  private firstAudioOutAt: number | undefined;
  private readonly audioIn = new StreamReception(OPUS_CLOCK_RATE);
  private closedFigures: LegFigures | undefined;

  constructor(
    readonly callId: string,
    private readonly o: SdesLegOptions,
    private readonly log: Logger,
  ) {
    super();
  }

  get state(): MetaLegState {
    return this._state;
  }

  /** Our offer for an agent's call: RTP/SAVP with a key per suite. */
  async createOffer(): Promise<string> {
    this.expectState("createOffer", ["new"]);
    const endpoint = await this.open();
    const crypto = SUITES.map((suite, i) => formatCryptoAttribute({ tag: i + 1, suite, ...this.localKeys.for(suite) }));
    this.setState("offered");
    return this.describe(endpoint, crypto);
  }

  /** Meta's answer (in its connect webhook): its key and address; media may flow from now on. */
  async applyAnswer(sdp: string): Promise<void> {
    this.expectState("applyAnswer", ["offered"]);
    const { section, crypto } = this.readRemote(sdp, "answer");
    this.start(section, crypto);
  }

  /** Meta's offer (user-initiated connect webhook): our answer with one key, the suite Meta's first usable line names. */
  async answerInitialOffer(sdp: string): Promise<string> {
    this.expectState("answerInitialOffer", ["new"]);
    const { section, crypto } = this.readRemote(sdp, "offer");
    this.mid = section.attributes.find((a) => a.name === "mid")?.value ?? this.mid;
    const endpoint = await this.open();
    this.start(section, crypto);
    return this.describe(endpoint, [formatCryptoAttribute({ tag: crypto.tag, suite: crypto.suite, ...this.localKeys.for(crypto.suite) })]);
  }

  /** WhatsApp has no renegotiation: nothing calls these on an SDES leg. */
  async applyOffer(): Promise<string> {
    throw new MetaLegError(this.callId, "an SDES leg takes no re-offers");
  }

  async offerOutboundVideo(): Promise<{ sdp: string; msid: string }> {
    throw new MetaLegError(this.callId, "an SDES leg carries no video");
  }

  async applyRenegotiationAnswer(): Promise<void> {
    throw new MetaLegError(this.callId, "an SDES leg takes no re-offers");
  }

  async rollbackLocalOffer(): Promise<void> {}

  pauseVideo(): void {}

  sendVideo(): void {}

  requestKeyframe(): void {}

  inboundVideoCodec(): string | undefined {
    return undefined;
  }

  /** Keys are agreed once both SDPs are known: there is no handshake to wait for. */
  waitConnected(): Promise<void> {
    if (this._state === "connected") return Promise.resolve();
    return Promise.reject(new MetaLegError(this.callId, `media not keyed (state ${this._state})`));
  }

  sendAudio(payloadType: number, data: Uint8Array, timestamp: number, _sequenceNumber: number, marker = false): void {
    if (this._state !== "connected" || !this.endpoint) return;
    const payload = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (!this.endpoint.send({ payloadType, payload, timestamp, marker })) return;
    this.counters.packetsOut++;
    this.counters.bytesOut += payload.length;
    this.firstAudioOutAt ??= Date.now();
  }

  telephoneEventPayloadType(): { payloadType: number; clockRate: number } | undefined {
    return this.telephoneEvent;
  }

  inboundCodec(payloadType: number): { name: string; clockRate: number } | undefined {
    if (payloadType === this.opusPt) return { name: "opus", clockRate: OPUS_CLOCK_RATE };
    if (payloadType === this.telephoneEvent?.payloadType) return { name: "telephone-event", clockRate: this.telephoneEvent.clockRate };
    return undefined;
  }

  opusPayloadType(): number {
    return this.opusPt;
  }

  stats(): MetaLegStats {
    return { state: this._state, ...this.counters, lastPacketInAt: this.lastPacketInAt, connectedAt: this.connectedAt };
  }

  quality(): LegFigures {
    if (this.closedFigures) return this.closedFigures;
    const s = this.endpoint?.stats();
    const report = s?.remoteReport;
    return {
      received: this.audioIn.snapshot(),
      packetsSent: this.counters.packetsOut,
      remoteReport: report && { lossRatio: report.fractionLost, packetsLost: report.cumulativeLost, jitterMs: report.jitterMs },
      roundTripMs: s?.roundTripMs,
      firstAudioInAt: this.firstAudioInAt,
      firstAudioOutAt: this.firstAudioOutAt,
    };
  }

  async close(): Promise<void> {
    if (this._state === "closed") return;
    this.closedFigures = this.quality();
    this.setState("closed");
    await this.endpoint?.close();
    this.removeAllListeners();
  }

  private async open(): Promise<RtpEndpoint> {
    const endpoint = await RtpEndpoint.open({ allocator: this.o.allocator, clockRate: OPUS_CLOCK_RATE });
    if (this._state === "closed") {
      await endpoint.close();
      throw new MetaLegError(this.callId, "leg closed while its port opened");
    }
    this.endpoint = endpoint;
    endpoint.on("rtp", (p) => {
      const arrivalMs = performance.now();
      this.counters.packetsIn++;
      this.counters.bytesIn += p.payload.length;
      this.lastPacketInAt = Date.now();
      this.firstAudioInAt ??= Date.now();
      this.audioIn.onPacket(p.ssrc, p.sequenceNumber, p.timestamp, arrivalMs);
      this.emit("rtp", { mid: this.mid, kind: "audio", packet: { header: p, payload: p.payload }, arrivalMs });
    });
    return endpoint;
  }

  /** Keys the endpoint and points it at Meta's address (latching follows where Meta really sends from). */
  private start(section: SdpMediaSection, crypto: SdesCrypto & { suite: SrtpSuite }): void {
    const endpoint = this.endpoint!;
    const remoteKey = crypto.keys[0]!;
    endpoint.setSrtp(new SrtpTransform({ suite: crypto.suite, local: this.localKeys.for(crypto.suite), remote: { key: remoteKey.key, salt: remoteKey.salt } }));
    const address = section.connectionAddress!;
    const mux = section.attributes.some((a) => a.name === "rtcp-mux");
    endpoint.setRemote({ address, port: section.port, rtcpAddress: section.rtcp?.address ?? address, rtcpPort: mux ? section.port : (section.rtcp?.port ?? section.port + 1) });
    for (const pt of section.payloadTypes) {
      const map = section.rtpmaps.find((r) => r.payloadType === pt);
      const name = map?.encodingName.toLowerCase();
      if (name === "opus") this.opusPt = pt;
    }
    const te = section.rtpmaps.find((r) => r.encodingName.toLowerCase() === "telephone-event" && r.clockRate === 8000);
    // WhatsApp takes RFC 4733 on 126/8000 even where the SDP leaves it out (its docs).
    this.telephoneEvent = { payloadType: te?.payloadType ?? TELEPHONE_EVENT_PT, clockRate: 8000 };
    this.connectedAt = Date.now();
    this.log.debug({ suite: crypto.suite, remote: `${address}:${section.port}`, mux }, "sdes leg: keyed");
    this.setState("connected");
  }

  private readRemote(sdp: string, kind: "offer" | "answer"): { section: SdpMediaSection; crypto: SdesCrypto & { suite: SrtpSuite } } {
    let section: SdpMediaSection | undefined;
    try {
      section = parseSdp(sdp).media.find((m) => m.kind === "audio" && m.port !== 0);
    } catch (err) {
      throw new SdpError(this.callId, `Meta's SDES ${kind} is not SDP: ${(err as Error).message}`);
    }
    if (!section) throw new SdpError(this.callId, `Meta's SDES ${kind} has no active audio`);
    const security = readSecurity(section);
    if (!security.secureProfile) throw new SdpError(this.callId, `Meta's SDES ${kind} carries ${section.protocol}, not RTP/SAVP`);
    if (!section.connectionAddress) throw new SdpError(this.callId, `Meta's SDES ${kind} has no connection address`);
    if (!section.rtpmaps.some((r) => r.encodingName.toLowerCase() === "opus")) throw new SdpError(this.callId, `Meta's SDES ${kind} has no Opus`);
    const usable = security.crypto.find((c): c is SdesCrypto & { suite: SrtpSuite } => isUsableCrypto(c) && SUITES.includes(c.suite as SrtpSuite));
    if (!usable) throw new SdpError(this.callId, `Meta's SDES ${kind} has no usable a=crypto line`);
    return { section, crypto: usable };
  }

  private describe(endpoint: RtpEndpoint, crypto: string[]): string {
    const address = this.o.mediaAddress;
    const family = address.includes(":") ? "IP6" : "IP4";
    const lines = [
      "v=0",
      `o=- ${Date.now()} 1 IN ${family} ${address}`,
      "s=-",
      `c=IN ${family} ${address}`,
      "t=0 0",
      `m=audio ${endpoint.localRtpPort} RTP/SAVP ${this.opusPt} ${this.telephoneEvent?.payloadType ?? TELEPHONE_EVENT_PT}`,
      `a=mid:${this.mid}`,
      "a=sendrecv",
      `a=rtcp:${endpoint.localRtcpPort}`,
      ...crypto.map((c) => `a=crypto:${c}`),
      `a=rtpmap:${this.opusPt} opus/48000/2`,
      `a=fmtp:${this.opusPt} minptime=10;useinbandfec=1`,
      `a=rtpmap:${this.telephoneEvent?.payloadType ?? TELEPHONE_EVENT_PT} telephone-event/8000`,
      `a=fmtp:${this.telephoneEvent?.payloadType ?? TELEPHONE_EVENT_PT} 0-16`,
      "a=ptime:20",
    ];
    return `${lines.join("\r\n")}\r\n`;
  }


  private setState(s: MetaLegState): void {
    if (this._state === s || this._state === "closed") return;
    this._state = s;
    this.emit("state", s);
  }

  private expectState(op: string, allowed: MetaLegState[]): void {
    if (!allowed.includes(this._state)) throw new MetaLegError(this.callId, `${op} not possible in state ${this._state}`);
  }
}
