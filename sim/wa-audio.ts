import { randomInt } from "node:crypto";
import type { ToneDetection } from "../transcode/tone.js";
import { FRAME_MS, OpusPcmRecorder, OpusToneEncoder, parseTelephoneEvent, type TelephoneEvent } from "./consumer-audio.js";
import { SimStateError } from "./errors.js";
import { PacketWaiters } from "./packet-waiters.js";
import { WA_OPUS_PAYLOAD_TYPE, WA_TELEPHONE_EVENT_PAYLOAD_TYPE } from "./wa-sdp.js";

/** One packet the consumer's audio source wants on the wire; the transport adds SSRC and protection. */
export interface OutgoingRtp {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

export interface WaPayloadTypes {
  opus: number;
  telephoneEvent: number | undefined;
}

/** Frames sent in one timer tick at most; a longer stall skips ahead instead of bursting. */
const MAX_CATCH_UP_FRAMES = 5;
/** WhatsApp's telephone-event clock (§5.4). */
const TELEPHONE_EVENT_CLOCK = 8000;

/**
 * The consumer's voice: a 20 ms Opus tone and RFC 4733 key presses on telephone-event/8000, in one
 * sequence space, handed to `emit` (werift sender or SRTP socket).
 */
export class WaAudioSource {
  private timer: NodeJS.Timeout | undefined;
  private sequence = randomInt(0, 0x10000);
  private lastTimestamp = randomInt(0, 2 ** 32);
  private readonly dtmfTimers = new Set<NodeJS.Timeout>();
  packetsSent = 0;

  constructor(
    private readonly toneHz: number,
    private readonly amplitude: number,
    private payloadTypes: WaPayloadTypes,
    private readonly emit: (packet: OutgoingRtp) => void,
  ) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  setPayloadTypes(payloadTypes: WaPayloadTypes): void {
    this.payloadTypes = payloadTypes;
  }

  start(): void {
    if (this.timer) return;
    const encoder = new OpusToneEncoder(this.toneHz, this.amplitude);
    const first = this.lastTimestamp;
    const startedAt = performance.now();
    let framesSent = 0;
    const tick = (): void => {
      const due = Math.floor((performance.now() - startedAt) / FRAME_MS) + 1;
      if (due - framesSent > MAX_CATCH_UP_FRAMES) framesSent = due - MAX_CATCH_UP_FRAMES;
      while (framesSent < due) {
        const { payload, timestampOffset } = encoder.nextFrame();
        this.lastTimestamp = (first + timestampOffset) >>> 0;
        this.send(this.payloadTypes.opus, this.lastTimestamp, framesSent === 0, payload);
        framesSent++;
      }
    };
    tick();
    this.timer = setInterval(tick, FRAME_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const t of this.dtmfTimers) clearTimeout(t);
    this.dtmfTimers.clear();
  }

  /** One key press as WhatsApp's clients send it: event packets every 20 ms, then three end packets. */
  async sendDtmf(digit: string, durationMs = 500): Promise<void> {
    const code = "0123456789*#ABCD".indexOf(digit.toUpperCase());
    if (digit.length !== 1 || code < 0) throw new SimStateError(`"${digit}" is not a DTMF key`);
    const pt = this.payloadTypes.telephoneEvent;
    if (pt === undefined) throw new SimStateError("no telephone-event/8000 was negotiated");
    if (!this.running) throw new SimStateError("the consumer is not sending media");
    const start = this.lastTimestamp;
    const steps = Math.max(1, Math.round(durationMs / FRAME_MS));
    const event = (duration: number, end: boolean): Buffer => {
      const payload = Buffer.alloc(4);
      payload[0] = code;
      payload[1] = (end ? 0x80 : 0) | 10;
      payload.writeUInt16BE(Math.min(0xffff, Math.round((duration * TELEPHONE_EVENT_CLOCK) / 1000)), 2);
      return payload;
    };
    for (let i = 1; i <= steps; i++) {
      await this.wait(FRAME_MS);
      if (!this.running) return;
      this.send(pt, start, i === 1, event(i * FRAME_MS, false));
    }
    for (let i = 0; i < 3; i++) this.send(pt, start, false, event(steps * FRAME_MS, true));
  }

  private send(payloadType: number, timestamp: number, marker: boolean, payload: Buffer): void {
    this.sequence = (this.sequence + 1) & 0xffff;
    this.packetsSent++;
    this.emit({ payloadType, sequenceNumber: this.sequence, timestamp, marker, payload });
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
}

export interface WaConsumerStats {
  packetsReceived: number;
  bytesReceived: number;
  rtcpReceived: number;
  firstPacketAt: number | undefined;
  /** Last RTP or RTCP packet from the business. */
  lastActivityAt: number | undefined;
  payloadTypes: number[];
  ssrcs: number[];
  decodeErrors: number;
  /** SRTP packets that did not authenticate (SDES mode). */
  unprotectErrors: number;
  packetsSent: number;
  telephoneEvents: TelephoneEvent[];
}

/** What the consumer hears from the business: decoded Opus, RFC 4733 events and packet counts. */
export class WaAudioSink {
  private readonly recorder: OpusPcmRecorder;
  private opus = new Set<number>([WA_OPUS_PAYLOAD_TYPE]);
  private telephoneEvent = new Set<number>([WA_TELEPHONE_EVENT_PAYLOAD_TYPE]);
  private readonly endedEvents = new Set<number>();
  private readonly waiters = new PacketWaiters();
  readonly counters = {
    packetsReceived: 0,
    bytesReceived: 0,
    rtcpReceived: 0,
    firstPacketAt: undefined as number | undefined,
    lastActivityAt: undefined as number | undefined,
    payloadTypes: new Set<number>(),
    ssrcs: new Set<number>(),
    unprotectErrors: 0,
    telephoneEvents: [] as TelephoneEvent[],
  };

  constructor(keepSeconds: number) {
    this.recorder = new OpusPcmRecorder(keepSeconds);
  }

  /** The business picks its payload type numbers: take them from its SDP. */
  setPayloadTypes(opus: readonly number[], telephoneEvent: readonly number[]): void {
    if (opus.length > 0) this.opus = new Set(opus);
    if (telephoneEvent.length > 0) this.telephoneEvent = new Set(telephoneEvent);
  }

  onRtp(payloadType: number, ssrc: number, timestamp: number, payload: Buffer): void {
    const c = this.counters;
    const now = Date.now();
    c.packetsReceived++;
    c.bytesReceived += payload.length;
    c.firstPacketAt ??= now;
    c.lastActivityAt = now;
    c.payloadTypes.add(payloadType);
    c.ssrcs.add(ssrc);
    if (this.opus.has(payloadType)) {
      this.recorder.push(payload);
    } else if (this.telephoneEvent.has(payloadType)) {
      const ev = parseTelephoneEvent(payload);
      if (ev?.end && !this.endedEvents.has(timestamp)) {
        this.endedEvents.add(timestamp);
        c.telephoneEvents.push({ event: ev.event, durationSamples: ev.durationSamples, receivedAt: now });
      }
    }
    this.waiters.update(c.packetsReceived);
  }

  onRtcp(): void {
    this.counters.rtcpReceived++;
    this.counters.lastActivityAt = Date.now();
  }

  stats(packetsSent: number): WaConsumerStats {
    const c = this.counters;
    return {
      packetsReceived: c.packetsReceived,
      bytesReceived: c.bytesReceived,
      rtcpReceived: c.rtcpReceived,
      firstPacketAt: c.firstPacketAt,
      lastActivityAt: c.lastActivityAt,
      payloadTypes: [...c.payloadTypes],
      ssrcs: [...c.ssrcs],
      decodeErrors: this.recorder.decodeErrors,
      unprotectErrors: c.unprotectErrors,
      packetsSent,
      telephoneEvents: [...c.telephoneEvents],
    };
  }

  detectTone(seconds: number): ToneDetection {
    return this.recorder.detectTone(seconds);
  }

  pcm(seconds?: number): Int16Array {
    return this.recorder.pcm(seconds);
  }

  waitForPackets(count: number, timeoutMs: number, closed: Promise<never>): Promise<void> {
    return this.waiters.waitFor(() => this.counters.packetsReceived, count, timeoutMs, { closed });
  }

  clearWaiters(): void {
    this.waiters.clear();
  }
}
