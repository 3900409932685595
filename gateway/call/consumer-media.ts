import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { DtmfReceiver, dtmfPackets } from "../../transcode/dtmf.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import { containWith } from "./contain.js";
import { OutboundStream } from "./outbound-stream.js";
import type { Digit, OpusFrame } from "./target.js";

export interface ConsumerMediaEvents {
  /** The consumer's Opus audio, in arrival order. */
  audio: [OpusFrame];
  /** A key the consumer pressed (RFC 4733 on Meta's leg), reported once. */
  dtmf: [Digit, number];
}

/**
 * Named states: `holding` (the Meta leg is not up yet: audio for the consumer is kept, up to a
 * limit), `flowing` (audio goes both ways), `stopped`.
 */
export type ConsumerMediaState = "holding" | "flowing" | "stopped";

const OPUS_FRAME_SAMPLES = 960;
/** At most this much audio (20 ms frames) is held while the Meta leg connects: 1 s. */
const HOLD_FRAMES = 50;

/**
 * The consumer's side of a call's audio, on the Meta leg: Opus and telephone-event in, Opus and
 * telephone-event out with one continuous RTP numbering. Shared by both call directions.
 */
export class ConsumerMedia extends EventEmitter<ConsumerMediaEvents> {
  private _state: ConsumerMediaState = "holding";
  private readonly out = new OutboundStream(OPUS_FRAME_SAMPLES);
  private held: OpusFrame[] = [];
  private dtmfIn: { payloadType: number; receiver: DtmfReceiver } | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private _mediaFlowed = false;

  /** `onError`: an exception while handling the leg's packets, for the call to end itself. */
  constructor(
    private readonly leg: MetaMediaLeg,
    private readonly log: Logger,
    onError: (err: unknown) => void,
  ) {
    super();
    leg.on("rtp", containWith(onError)((inbound) => {
      if (this._state !== "flowing" || inbound.kind !== "audio") return;
      const { header, payload } = inbound.packet;
      if (header.payloadType === leg.opusPayloadType()) {
        this._mediaFlowed = true;
        this.emit("audio", {
          payload,
          timestamp: header.timestamp,
          sequenceNumber: header.sequenceNumber,
          ssrc: header.ssrc,
          arrivalMs: inbound.arrivalMs,
        });
        return;
      }
      this.onEventPacket(header.payloadType, payload, header.timestamp);
    }));
  }

  get state(): ConsumerMediaState {
    return this._state;
  }

  /** Whether the consumer's audio has been received at least once. */
  get mediaFlowed(): boolean {
    return this._mediaFlowed;
  }

  /**
   * Audio for the consumer. Before the leg is up it is held: the agent usually speaks the moment
   * the PBX answers, while ICE/DTLS toward Meta still takes a few hundred ms. Sending the held
   * audio as a burst once DTLS is up lets the consumer's jitter buffer play it (WebRTC receivers
   * speed up playout to absorb a burst) instead of clipping the greeting or delaying the call.
   */
  send(frame: OpusFrame): void {
    if (this._state === "flowing") this.write(frame);
    else if (this._state === "holding") {
      this.held.push(frame);
      if (this.held.length > HOLD_FRAMES) this.held.shift();
    }
  }

  /** The Meta leg is up: deliver what was held, then flow. */
  startFlowing(): void {
    if (this._state !== "holding") return;
    this._state = "flowing";
    const held = this.held;
    this.held = [];
    for (const frame of held) this.write(frame);
    if (held.length > 0) this.log.debug({ frames: held.length }, "audio held during DTLS sent to the consumer");
  }

  /** A key for the consumer, as RFC 4733 events on the leg's telephone-event clock. */
  sendDtmf(digit: Digit, durationMs: number): void {
    if (this._state !== "flowing") return;
    const te = this.leg.telephoneEventPayloadType();
    if (!te) {
      this.log.warn({ digit }, "DTMF for the consumer dropped: Meta negotiated no telephone-event");
      return;
    }
    const start = this.out.nextEventNumbers();
    this.log.info({ digit, durationMs }, "DTMF to consumer");
    for (const p of dtmfPackets(digit, { clockRate: te.clockRate, timestamp: start.timestamp, durationMs })) {
      const send = (): void => {
        const { sequenceNumber } = this.out.nextEventNumbers();
        this.leg.sendAudio(te.payloadType, p.payload, p.timestamp, sequenceNumber, p.marker);
      };
      if (p.sendOffsetMs <= 0) send();
      else {
        const t = setTimeout(() => {
          this.timers.delete(t);
          if (this._state === "flowing") send();
        }, p.sendOffsetMs);
        this.timers.add(t);
      }
    }
  }

  stop(): void {
    this._state = "stopped";
    this.held = [];
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.removeAllListeners();
  }

  private write(frame: OpusFrame): void {
    const { sequenceNumber, timestamp } = this.out.next(frame.timestamp);
    this.leg.sendAudio(this.leg.opusPayloadType(), frame.payload, timestamp, sequenceNumber);
  }

  /** RFC 4733 digits from the consumer (Meta sends them on the Opus clock), reported once each. */
  private onEventPacket(payloadType: number, payload: Buffer, timestamp: number): void {
    if (this.dtmfIn?.payloadType !== payloadType) {
      const codec = this.leg.inboundCodec(payloadType);
      if (codec?.name !== "telephone-event") return;
      const receiver = new DtmfReceiver(codec.clockRate, (d) => {
        this.log.info({ digit: d.digit, durationMs: d.durationMs }, "DTMF from consumer");
        this.emit("dtmf", d.digit as Digit, d.durationMs);
      });
      this.dtmfIn = { payloadType, receiver };
    }
    try {
      this.dtmfIn.receiver.push({ payload, timestamp });
    } catch (err) {
      this.log.debug({ err }, "malformed telephone-event from Meta dropped");
    }
  }
}
