import {
  MediaStream,
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCRtpTransceiver,
  type RTCTrackEvent,
} from "werift";
import { ConsumerClosedError, ConsumerNegotiationError, SimStateError } from "./errors.js";
import { loopbackIceConfig } from "./loopback-ice.js";
import type { OutgoingRtp } from "./wa-audio.js";
import { BaseWhatsAppConsumer, type WaConsumerOptions } from "./wa-consumer-base.js";
import {
  audioPayloadTypes,
  shapeWhatsAppSdp,
  WA_AUDIO_MID,
  WA_OPUS_FMTP,
  WA_OPUS_PAYLOAD_TYPE,
  WA_TELEPHONE_EVENT_PAYLOAD_TYPE,
} from "./wa-sdp.js";

export { BaseWhatsAppConsumer, type WaConsumerOptions, type WaConsumerState, type WhatsAppConsumer } from "./wa-consumer-base.js";

function whatsAppCodecs(): RTCRtpCodecParameters[] {
  return [
    new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2, payloadType: WA_OPUS_PAYLOAD_TYPE, parameters: WA_OPUS_FMTP }),
    new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 8000, payloadType: WA_TELEPHONE_EVENT_PAYLOAD_TYPE, parameters: "0-15" }),
  ];
}

/** werift stamps packets with the sender's codec; DTMF on a payload type the answer left out needs one of its own. */
function unnegotiatedTelephoneEvent(payloadType: number): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 8000, payloadType });
}

/**
 * DTLS-SRTP mode: an ice-lite werift peer with one audio m-line at mid `audio`, Opus 111 and
 * telephone-event 126/8000, no header extensions (none in WhatsApp's samples). Offering, it says
 * `a=setup:actpass` and becomes DTLS server when the business answers active; answering, it says
 * `a=setup:active` so the business is DTLS server (§5.2).
 */
export class WebRtcWhatsAppConsumer extends BaseWhatsAppConsumer {
  readonly keyExchange = "DTLS" as const;
  private readonly pc: RTCPeerConnection;
  private transceiver: RTCRtpTransceiver | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: WaConsumerOptions = {}) {
    super(options);
    this.pc = new RTCPeerConnection({
      ...loopbackIceConfig(options.stunUrl ?? "stun:127.0.0.1:3478"),
      iceLite: true,
      bundlePolicy: "max-bundle",
      codecs: { audio: whatsAppCodecs() },
    });
    this.pc.ontrack = (event: RTCTrackEvent) => {
      event.track.onReceiveRtp.subscribe((rtp) => this.sink.onRtp(rtp.header.payloadType, rtp.header.ssrc, rtp.header.timestamp, rtp.payload));
    };
    this.pc.connectionStateChange.subscribe((state) => {
      if (this.currentState === "closed") return;
      if (state === "connected") {
        this.currentState = "connected";
        this.startIfReady();
      } else if (state === "failed") {
        this.currentState = "failed";
      }
    });
  }

  createOffer(): Promise<string> {
    return this.serialized(async () => {
      if (this.transceiver) throw new SimStateError("the consumer already made its offer");
      const transceiver = this.addAudio();
      // werift only numbers mids it has not been given: WhatsApp's is the word "audio".
      transceiver.mid = WA_AUDIO_MID;
      const offer = await this.guard(this.pc.createOffer());
      await this.guard(this.pc.setLocalDescription(offer));
      this.currentState = "negotiating";
      return shapeWhatsAppSdp(this.localSdp(), "offer");
    });
  }

  applyAnswer(sdp: string): Promise<void> {
    return this.serialized(async () => {
      if (this.pc.signalingState !== "have-local-offer") throw new SimStateError("no offer of the consumer's is waiting for an answer");
      this.learnPayloadTypes(sdp);
      await this.guard(this.pc.setRemoteDescription({ type: "answer", sdp }));
    });
  }

  answerOffer(sdp: string): Promise<string> {
    return this.serialized(async () => {
      if (this.transceiver) throw new SimStateError("the consumer already negotiated");
      this.learnPayloadTypes(sdp);
      await this.guard(this.pc.setRemoteDescription({ type: "offer", sdp }));
      const transceiver = this.pc.getTransceivers().find((t) => t.kind === "audio");
      if (!transceiver) throw new ConsumerNegotiationError("the business offered no audio");
      transceiver.setDirection("sendrecv");
      const track = new MediaStreamTrack({ kind: "audio" });
      await transceiver.sender.replaceTrack(track);
      this.transceiver = transceiver;
      this.watchRtcp(transceiver);
      const answer = await this.guard(this.pc.createAnswer());
      await this.guard(this.pc.setLocalDescription(answer));
      this.currentState = "negotiating";
      return shapeWhatsAppSdp(this.localSdp(), "answer");
    });
  }

  protected async release(): Promise<void> {
    try {
      await this.pc.close();
    } catch {
      // A transport that already failed can throw while closing; it holds nothing more.
    }
  }

  private addAudio(): RTCRtpTransceiver {
    const track = new MediaStreamTrack({ kind: "audio" });
    const stream = new MediaStream({ id: "whatsapp-consumer", tracks: [track] });
    const transceiver = this.pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
    this.transceiver = transceiver;
    this.watchRtcp(transceiver);
    return transceiver;
  }

  private watchRtcp(transceiver: RTCRtpTransceiver): void {
    transceiver.dtlsTransport.onRtcp.subscribe(() => this.sink.onRtcp());
  }

  private learnPayloadTypes(sdp: string): void {
    const types = audioPayloadTypes(sdp);
    this.sink.setPayloadTypes(types.opus, types.telephoneEvent);
  }

  protected startIfReady(): void {
    if (!this.mediaWanted || this.currentState !== "connected" || this.source.running) return;
    const codecs = this.transceiver?.codecs ?? [];
    const opus = codecs.find((c) => c.mimeType.toLowerCase() === "audio/opus");
    const te = codecs.find((c) => c.mimeType.toLowerCase() === "audio/telephone-event" && c.clockRate === 8000);
    if (!opus) return;
    // WhatsApp uses 126/8000 for DTMF even when the business's offer left telephone-event out (§5.4).
    this.source.setPayloadTypes({ opus: opus.payloadType, telephoneEvent: te?.payloadType ?? WA_TELEPHONE_EVENT_PAYLOAD_TYPE });
    this.source.start();
  }

  protected emit(packet: OutgoingRtp): void {
    const transceiver = this.transceiver;
    if (!transceiver || this.currentState === "closed") return;
    const sender = transceiver.sender;
    const header = new RtpHeader({
      payloadType: packet.payloadType,
      sequenceNumber: packet.sequenceNumber,
      timestamp: packet.timestamp,
      marker: packet.marker,
    });
    // werift stamps every packet with the sender's codec: swap it for a telephone-event write.
    const negotiated = sender.codec;
    sender.codec = transceiver.codecs.find((c) => c.payloadType === packet.payloadType) ?? unnegotiatedTelephoneEvent(packet.payloadType);
    try {
      sender.sendRtp(new RtpPacket(header, packet.payload)).catch(() => undefined);
    } finally {
      sender.codec = negotiated;
    }
  }

  private localSdp(): string {
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new ConsumerNegotiationError("werift produced no local description");
    return sdp;
  }

  private guard<T>(operation: Promise<T>): Promise<T> {
    return Promise.race([operation, this.closedSignal]);
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(
      () => {
        this.assertOpen();
        return work();
      },
      () => {
        this.assertOpen();
        return work();
      },
    );
    this.queue = run.catch(() => undefined);
    return run.catch((error: unknown) => {
      if (error instanceof ConsumerClosedError || error instanceof SimStateError || error instanceof ConsumerNegotiationError) throw error;
      throw new ConsumerNegotiationError(`werift negotiation failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    });
  }
}
