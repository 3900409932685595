/**
 * DTMF as RFC 4733 telephone-events: payload parsing and building, a receiver that reports each digit once
 * however many times its end packet is retransmitted, and a sender that lays out the packets for one digit.
 *
 * Both legs use the same payload; only the RTP clock differs (8000 toward a PBX, 48000 toward Meta, whose
 * telephone-event runs at the Opus clock), and durations are in ticks of that clock.
 */

export type DtmfDigit = "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "*" | "#" | "A" | "B" | "C" | "D";

export interface TelephoneEvent {
  /** 0–9, 10 = *, 11 = #, 12–15 = A–D (RFC 4733 §3.2); other codes are valid events but not DTMF. */
  event: number;
  /** The E bit: this packet ends the event. */
  end: boolean;
  /** Power level in -dBm0, 0–63. */
  volume: number;
  /** Duration so far in RTP clock ticks, 0–65535. */
  duration: number;
}

export class TelephoneEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TelephoneEventError";
  }
}

const DIGITS: readonly DtmfDigit[] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C", "D"];
const MAX_DURATION = 0xffff;

export function dtmfEventCode(digit: DtmfDigit): number {
  return DIGITS.indexOf(digit);
}

export function dtmfDigit(event: number): DtmfDigit | undefined {
  return DIGITS[event];
}

export function isDtmfDigit(value: string): value is DtmfDigit {
  return (DIGITS as readonly string[]).includes(value);
}

export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent {
  if (payload.length < 4) throw new TelephoneEventError(`telephone-event payload needs 4 bytes, got ${payload.length}`);
  const flags = payload[1] as number;
  return {
    event: payload[0] as number,
    end: (flags & 0x80) !== 0,
    volume: flags & 0x3f,
    duration: ((payload[2] as number) << 8) | (payload[3] as number),
  };
}

export function buildTelephoneEvent(event: TelephoneEvent): Uint8Array {
  if (!Number.isInteger(event.event) || event.event < 0 || event.event > 255) {
    throw new TelephoneEventError(`event code must be 0..255, got ${event.event}`);
  }
  if (!Number.isInteger(event.volume) || event.volume < 0 || event.volume > 63) {
    throw new TelephoneEventError(`volume must be 0..63, got ${event.volume}`);
  }
  if (!Number.isInteger(event.duration) || event.duration < 0 || event.duration > MAX_DURATION) {
    throw new TelephoneEventError(`duration must be 0..65535 ticks, got ${event.duration}`);
  }
  return Uint8Array.of(event.event, (event.end ? 0x80 : 0) | event.volume, event.duration >> 8, event.duration & 0xff);
}

/** A duration in ticks of one clock expressed in ticks of another (e.g. 8 kHz → 48 kHz), rounded. */
export function convertDuration(ticks: number, fromClockRate: number, toClockRate: number): number {
  return Math.round((ticks * toClockRate) / fromClockRate);
}

/* ------------------------------------------------------------------------------------------------------------ */

export interface DtmfDigitEvent {
  digit: DtmfDigit;
  /** RTP timestamp of the event (its start). */
  timestamp: number;
  durationMs: number;
  volume: number;
  /** "end-packet" normally; "superseded" when every end packet was lost and the next event began. */
  endedBy: "end-packet" | "superseded";
}

export interface DtmfReceiverPacket {
  payload: Uint8Array;
  timestamp: number;
}

/** Enough to recognise retransmissions of the last few events even when packets interleave. */
const REPORTED_MEMORY = 8;

type ReceiverState =
  | { name: "idle" }
  | { name: "in-event"; event: number; timestamp: number; duration: number; volume: number; segmentsBefore: number };

/**
 * Turns telephone-event packets into digits, once each. An event is identified by its RTP timestamp (all its
 * packets share it); it is reported on its first end packet, or when a new event starts while it is still
 * open (its end packets were all lost). Retransmitted end packets and stray updates of an event already
 * reported are ignored. Events longer than 65535 ticks (RFC 4733 §2.5.2.3: a new segment starts at
 * timestamp + 65535 with the same code) are merged into one digit.
 */
export class DtmfReceiver {
  readonly #clockRate: number;
  readonly #onDigit: (digit: DtmfDigitEvent) => void;
  #state: ReceiverState = { name: "idle" };
  #reported: number[] = [];

  constructor(clockRate: number, onDigit: (digit: DtmfDigitEvent) => void) {
    if (!(clockRate > 0)) throw new RangeError(`clockRate must be positive, got ${clockRate}`);
    this.#clockRate = clockRate;
    this.#onDigit = onDigit;
  }

  /** Feeds one packet; throws {@link TelephoneEventError} only for a payload shorter than 4 bytes. */
  push(packet: DtmfReceiverPacket): void {
    const event = parseTelephoneEvent(packet.payload);
    const timestamp = packet.timestamp >>> 0;
    if (this.#reported.includes(timestamp)) return;
    const state = this.#state;
    let segmentsBefore = 0;
    if (state.name === "in-event" && state.timestamp !== timestamp) {
      const continuesLongEvent =
        state.event === event.event && state.duration === MAX_DURATION && ((timestamp - state.timestamp) >>> 0) === MAX_DURATION;
      if (continuesLongEvent) {
        segmentsBefore = state.segmentsBefore + 1;
        this.#remember(state.timestamp);
      } else {
        this.#report(state, "superseded");
      }
    } else if (state.name === "in-event") {
      segmentsBefore = state.segmentsBefore;
    }
    const current = {
      name: "in-event" as const,
      event: event.event,
      timestamp,
      duration: state.name === "in-event" && state.timestamp === timestamp ? Math.max(state.duration, event.duration) : event.duration,
      volume: event.volume,
      segmentsBefore,
    };
    if (event.end) this.#report(current, "end-packet");
    else this.#state = current;
  }

  #report(state: Extract<ReceiverState, { name: "in-event" }>, endedBy: DtmfDigitEvent["endedBy"]): void {
    this.#state = { name: "idle" };
    this.#remember(state.timestamp);
    const digit = dtmfDigit(state.event);
    if (digit === undefined) return;
    const ticks = state.segmentsBefore * MAX_DURATION + state.duration;
    this.#onDigit({
      digit,
      timestamp: (state.timestamp - state.segmentsBefore * MAX_DURATION) >>> 0,
      durationMs: (ticks * 1000) / this.#clockRate,
      volume: state.volume,
      endedBy,
    });
  }

  #remember(timestamp: number): void {
    this.#reported.push(timestamp);
    if (this.#reported.length > REPORTED_MEMORY) this.#reported.shift();
  }
}

/* ------------------------------------------------------------------------------------------------------------ */

export interface DtmfSendOptions {
  /** RTP clock of the telephone-event payload type: 8000 toward the PBX, 48000 toward Meta. */
  clockRate: number;
  /** RTP timestamp of the event start: the media clock at the moment the key went down. */
  timestamp: number;
  durationMs: number;
  /** -dBm0, default 10. */
  volume?: number;
  /** Default 20 ms. */
  packetIntervalMs?: number;
  /** How many times the end packet is sent; default 3 (RFC 4733 §2.5.1.4). */
  endRepeats?: number;
}

export interface DtmfPacket {
  payload: Uint8Array;
  timestamp: number;
  /** Set on the first packet of an event only. */
  marker: boolean;
  /** When to send it, relative to the first packet. */
  sendOffsetMs: number;
}

/**
 * The packets for one digit: an update every interval with the growing duration (the first carries the
 * marker), then the end packet `endRepeats` times at the same interval, all with the event's timestamp. An
 * event longer than 65535 ticks (1.36 s at 48 kHz) is split into segments (RFC 4733 §2.5.1.3).
 * Sequence numbers are the RTP sender's business.
 */
export function dtmfPackets(digit: DtmfDigit, options: DtmfSendOptions): DtmfPacket[] {
  const { clockRate, durationMs } = options;
  const volume = options.volume ?? 10;
  const intervalMs = options.packetIntervalMs ?? 20;
  const endRepeats = options.endRepeats ?? 3;
  if (!(clockRate > 0)) throw new RangeError(`clockRate must be positive, got ${clockRate}`);
  if (!(durationMs > 0)) throw new RangeError(`durationMs must be positive, got ${durationMs}`);
  if (!(intervalMs > 0)) throw new RangeError(`packetIntervalMs must be positive, got ${intervalMs}`);
  if (!Number.isInteger(endRepeats) || endRepeats < 1) throw new RangeError(`endRepeats must be at least 1, got ${endRepeats}`);
  const event = dtmfEventCode(digit);
  const intervalTicks = Math.round((intervalMs * clockRate) / 1000);
  const totalTicks = Math.round((durationMs * clockRate) / 1000);

  const packets: DtmfPacket[] = [];
  let segmentStart = 0;
  let elapsedTicks = intervalTicks;
  let marker = true;
  const timestampAt = (offset: number): number => (options.timestamp + offset) >>> 0;
  const offsetMs = (ticks: number): number => ((ticks - intervalTicks) * 1000) / clockRate;
  // The key is still down when a segment fills up: close it without E, continue in a new segment whose
  // timestamp is the old one + 65535 and whose marker stays clear so it is not taken for a new key press.
  const closeSegmentIfFull = (ticks: number): void => {
    if (ticks - segmentStart <= MAX_DURATION) return;
    packets.push({
      payload: buildTelephoneEvent({ event, end: false, volume, duration: MAX_DURATION }),
      timestamp: timestampAt(segmentStart),
      marker: false,
      sendOffsetMs: offsetMs(ticks),
    });
    segmentStart += MAX_DURATION;
  };
  for (; elapsedTicks < totalTicks; elapsedTicks += intervalTicks) {
    closeSegmentIfFull(elapsedTicks);
    packets.push({
      payload: buildTelephoneEvent({ event, end: false, volume, duration: elapsedTicks - segmentStart }),
      timestamp: timestampAt(segmentStart),
      marker,
      sendOffsetMs: offsetMs(elapsedTicks),
    });
    marker = false;
  }
  closeSegmentIfFull(totalTicks);
  const endPayload = buildTelephoneEvent({ event, end: true, volume, duration: totalTicks - segmentStart });
  for (let i = 0; i < endRepeats; i++) {
    packets.push({
      payload: endPayload,
      timestamp: timestampAt(segmentStart),
      marker: marker && i === 0,
      sendOffsetMs: offsetMs(Math.max(totalTicks, intervalTicks)) + i * intervalMs,
    });
  }
  return packets;
}
