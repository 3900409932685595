/**
 * The two audio directions between an Opus leg (48 kHz RTP clock) and a G.711 leg (8 kHz), as chains of the
 * small handlers in this folder. Everything is in memory and driven by the caller's clock: nothing here opens
 * a socket or starts a timer, so tests feed packets and times directly.
 *
 *   Opus → G.711: jitter buffer → Opus decode / PLC at 8 kHz → 20 ms re-framing → G.711 → onFrame
 *   G.711 → Opus: G.711 decode → 20 ms re-framing → Opus encode at 8 kHz → onFrame (+ comfort frames on demand)
 */
import { ComfortNoise } from "./comfort-noise.js";
import { g711Codec, g711ForPayloadType, type G711Codec, type G711Variant } from "./g711.js";
import { JitterBuffer, type JitterBufferOptions, type JitterEvent, type JitterStats } from "./jitter-buffer.js";
import { OpusCodecError } from "./opus-codec.js";
import { FRAME_SAMPLES_8K, OpusDecoder8k, OpusEncoder8k, type OpusEncoderOptions } from "./opus.js";
import { OPUS_RTP_CLOCK_RATE, opusPacketSamples } from "./opus-toc.js";
import { PcmReframer } from "./pcm-reframer.js";

const FRAME_MS = 20;
const TICKS_48K_PER_8K = 6;
const OPUS_TICKS_PER_FRAME = FRAME_SAMPLES_8K * TICKS_48K_PER_8K;
/** Concealment is possible in steps of 2.5 ms (20 samples at 8 kHz). */
const CONCEAL_GRANULE = 20;

function randomTimestamp(): number {
  return (Math.random() * 0x100000000) >>> 0;
}

function elapsedMicros(startMs: number): number {
  return (performance.now() - startMs) * 1000;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Opus (Meta) → G.711 (PBX)                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

export interface OpusRtpInput {
  payload: Uint8Array;
  seq: number;
  /** RTP timestamp, 48 kHz clock. */
  timestamp: number;
  ssrc?: number;
  /** When the packet arrived, on the caller's clock; also this call's notion of "now". */
  arrivalMs: number;
}

export interface G711FrameOutput {
  /** Exactly 160 bytes: 20 ms of G.711. */
  payload: Uint8Array;
  /** RTP timestamp, 8 kHz clock: +160 per frame, jumping only at a talkspurt start (then `marker` is set). */
  timestamp: number;
  marker: boolean;
  /**
   * Arrival of the oldest input packet with audio in this frame (for concealed audio: when the loss was
   * declared); undefined for generated silence.
   */
  oldestArrivalMs: number | undefined;
  content: "audio" | "silence";
}

/**
 * What the PBX receives while Meta sends nothing (DTX, outage): G.711 silence every 20 ms so the stream never
 * stalls, or no packets at all (the next frame then carries a timestamp jump and the marker bit).
 */
export type DtxSilencePolicy = "send-silence" | "send-nothing";

export type JitterTuning = Pick<
  JitterBufferOptions,
  "minWaitMs" | "maxWaitMs" | "initialWaitMs" | "maxConcealedPerGap" | "maxHeldPackets"
>;

export interface MetaToPbxOptions {
  codec: G711Variant;
  onFrame: (frame: G711FrameOutput) => void;
  /** Default "send-silence". */
  dtxSilence?: DtxSilencePolicy;
  /**
   * How long after the audio should have continued silence starts being sent; default 40 ms. Never shorter
   * than the jitter buffer's wait plus one frame, so a packet still in flight is concealed, not replaced.
   */
  silenceHoldoffMs?: number;
  /** First RTP timestamp toward the PBX; random by default (RFC 3550 §5.1). */
  initialTimestamp?: number;
  jitter?: JitterTuning;
}

export interface MetaToPbxStats {
  packetsIn: number;
  framesOut: number;
  audioFrames: number;
  silenceFrames: number;
  /** Lost packets filled by PLC. */
  concealedPackets: number;
  concealedMs: number;
  decodeErrors: number;
  /** Times the output timestamp jumped over a pause instead of sending frames for it. */
  timestampJumps: number;
  /** Time packets spent in the jitter buffer, summed over every packet it released (ms). */
  jitterBufferDelayMs: number;
  /** Packets, and their samples at 48 kHz, the jitter buffer released for decoding. */
  jitterBufferReleased: number;
  jitterBufferEmittedSamples: number;
  decodeMicros: number;
  encodeMicros: number;
  jitter: JitterStats;
}

type MarkerState = "start-of-talkspurt" | "continuing";

/**
 * Where the PBX stream stands relative to the wall clock. `horizonMs` is when the audio sent so far runs out;
 * "filling" means silence is being generated because the input stopped.
 */
type PbxStreamState =
  | { name: "before-audio" }
  | { name: "audio"; horizonMs: number }
  | { name: "filling"; horizonMs: number };

export class MetaToPbxAudio {
  readonly #codec: G711Codec;
  readonly #onFrame: (frame: G711FrameOutput) => void;
  readonly #policy: DtxSilencePolicy;
  readonly #holdoffMs: number;
  readonly #decoder = new OpusDecoder8k();
  readonly #reframer = new PcmReframer(FRAME_SAMPLES_8K);
  readonly #jitter: JitterBuffer;

  #nowMs = 0;
  #timestamp: number;
  #silence: Uint8Array | undefined;
  #marker: MarkerState = "start-of-talkspurt";
  #stream: PbxStreamState = { name: "before-audio" };
  /**
   * Samples of generated silence the input timeline has not yet accounted for. Paid back by skipping that
   * much of the next pause or loss, so filling never adds lasting latency.
   */
  #creditSamples = 0;

  #stats = {
    packetsIn: 0,
    framesOut: 0,
    audioFrames: 0,
    silenceFrames: 0,
    concealedPackets: 0,
    concealedMs: 0,
    decodeErrors: 0,
    timestampJumps: 0,
    jitterBufferDelayMs: 0,
    jitterBufferReleased: 0,
    jitterBufferEmittedSamples: 0,
    decodeMicros: 0,
    encodeMicros: 0,
  };

  constructor(options: MetaToPbxOptions) {
    this.#codec = g711Codec(options.codec);
    this.#onFrame = options.onFrame;
    this.#policy = options.dtxSilence ?? "send-silence";
    this.#holdoffMs = options.silenceHoldoffMs ?? 40;
    this.#timestamp = (options.initialTimestamp ?? randomTimestamp()) >>> 0;
    this.#jitter = new JitterBuffer({
      ...options.jitter,
      clockRate: OPUS_RTP_CLOCK_RATE,
      durationOf: opusDurationOrZero,
      onEvent: (event) => this.#handle(event),
    });
  }

  push(packet: OpusRtpInput): void {
    this.#nowMs = packet.arrivalMs;
    this.#stats.packetsIn++;
    this.#jitter.push(packet, packet.arrivalMs);
  }

  /** Declares overdue losses and sends due silence. Call at {@link nextDeadlineMs}. */
  tick(nowMs: number): void {
    this.#nowMs = nowMs;
    this.#jitter.tick(nowMs);
    this.#fillSilence(nowMs);
  }

  /** When {@link tick} next has work to do, or undefined if only a new packet can change anything. */
  nextDeadlineMs(): number | undefined {
    const jitterDeadline = this.#jitter.nextDeadlineMs();
    const fillDeadline = this.#fillDeadlineMs();
    if (jitterDeadline === undefined) return fillDeadline;
    if (fillDeadline === undefined) return jitterDeadline;
    return Math.min(jitterDeadline, fillDeadline);
  }

  stats(): MetaToPbxStats {
    return { ...this.#stats, jitter: this.#jitter.stats() };
  }

  #handle(event: JitterEvent): void {
    switch (event.kind) {
      case "frame":
        // "Now" is the arrival that released it, or the tick that gave up waiting before it.
        this.#stats.jitterBufferDelayMs += Math.max(0, this.#nowMs - event.arrivalMs);
        this.#stats.jitterBufferReleased++;
        this.#stats.jitterBufferEmittedSamples += opusDurationOrZero(event.packet.payload) || OPUS_TICKS_PER_FRAME;
        this.#decodeFrame(event.packet.payload, event.arrivalMs);
        return;
      case "lost":
        // event.fecFrom goes unused: @evan/opus cannot decode in-band FEC (see opus.ts), so PLC it is.
        this.#conceal(Math.round(event.samples / TICKS_48K_PER_8K), event.declaredAtMs);
        return;
      case "silence":
        this.#skipPause(Math.round(event.samples / TICKS_48K_PER_8K));
        return;
      case "reset":
        this.#flushPartialFrame();
        this.#decoder.reset();
        this.#creditSamples = 0;
        this.#marker = "start-of-talkspurt";
        return;
    }
  }

  #decodeFrame(payload: Uint8Array, arrivalMs: number): void {
    const started = performance.now();
    let pcm: Int16Array;
    try {
      pcm = this.#decoder.decode(payload);
    } catch (error) {
      if (!(error instanceof OpusCodecError)) throw error;
      this.#stats.decodeErrors++;
      const samples = opusDurationOrZero(payload) / TICKS_48K_PER_8K || FRAME_SAMPLES_8K;
      pcm = this.#decoder.conceal(Math.ceil(samples / CONCEAL_GRANULE) * CONCEAL_GRANULE);
    }
    this.#stats.decodeMicros += elapsedMicros(started);
    this.#appendAudio(pcm, arrivalMs);
  }

  /** A lost packet: skipped if silence already went out in its place, otherwise filled by PLC. */
  #conceal(samples: number, declaredAtMs: number): void {
    const uncovered = samples - this.#payCredit(samples);
    if (uncovered <= 0) return;
    if (this.#stream.name === "filling") {
      // Wall-clock time for this audio has passed while silence went out; concealing it now would be a burst.
      this.#jump(uncovered);
      return;
    }
    const granular = Math.round(uncovered / CONCEAL_GRANULE) * CONCEAL_GRANULE;
    if (granular === 0) return;
    const started = performance.now();
    const pcm = this.#decoder.conceal(granular);
    this.#stats.decodeMicros += elapsedMicros(started);
    this.#stats.concealedPackets++;
    this.#stats.concealedMs += granular / 8;
    this.#appendAudio(pcm, declaredAtMs);
  }

  /** A pause in the input (DTX or an outage past concealment): no audio to make, only time to account for. */
  #skipPause(samples: number): void {
    let uncovered = samples - this.#payCredit(samples);
    if (uncovered <= 0) return;
    const padded = this.#flushPartialFrame();
    if (padded > uncovered) this.#creditSamples += padded - uncovered;
    uncovered -= padded;
    if (uncovered > 0) this.#jump(uncovered);
  }

  #payCredit(samples: number): number {
    const paid = Math.min(this.#creditSamples, samples);
    this.#creditSamples -= paid;
    return paid;
  }

  #jump(samples: number): void {
    this.#flushPartialFrame();
    this.#timestamp = (this.#timestamp + samples) >>> 0;
    this.#marker = "start-of-talkspurt";
    this.#stats.timestampJumps++;
  }

  #appendAudio(pcm: Int16Array, arrivalMs: number): void {
    this.#reframer.push(pcm, arrivalMs, (frame) => this.#emit(frame.pcm, frame.oldestArrivalMs, "audio"));
  }

  /** Sends the partial frame padded with silence; returns how many samples of padding that took. */
  #flushPartialFrame(): number {
    const frame = this.#reframer.completePending((tail) => tail.fill(0));
    if (frame === undefined) return 0;
    this.#emit(frame.pcm, frame.oldestArrivalMs, "audio");
    return frame.padded;
  }

  #fillDeadlineMs(): number | undefined {
    if (this.#policy === "send-nothing" || this.#stream.name === "before-audio") return undefined;
    // A gap is being waited for: its verdict (audio or concealment) is due within the jitter wait.
    if (this.#jitter.nextDeadlineMs() !== undefined) return undefined;
    return this.#stream.horizonMs + this.#effectiveHoldoffMs();
  }

  #effectiveHoldoffMs(): number {
    return Math.max(this.#holdoffMs, this.#jitter.currentWaitMs() + FRAME_MS);
  }

  #fillSilence(nowMs: number): void {
    for (let due = this.#fillDeadlineMs(); due !== undefined && nowMs >= due; due = this.#fillDeadlineMs()) {
      const stream = this.#stream;
      if (stream.name === "before-audio") return;
      if (stream.name === "audio") {
        // The input stopped mid-frame: its last samples go out now, padded, before any silence frame.
        const padded = this.#flushPartialFrame();
        this.#creditSamples += padded;
        this.#stream = { name: "filling", horizonMs: stream.horizonMs + (padded > 0 ? FRAME_MS : 0) };
        continue;
      }
      this.#emit(undefined, undefined, "silence");
      this.#creditSamples += FRAME_SAMPLES_8K;
    }
  }

  #emit(pcm: Int16Array | undefined, oldestArrivalMs: number | undefined, content: "audio" | "silence"): void {
    let payload: Uint8Array;
    if (pcm === undefined) {
      // One frame of silence per pipeline, handed out every time: receivers only read it.
      payload = this.#silence ??= new Uint8Array(FRAME_SAMPLES_8K).fill(this.#codec.silenceCode);
    } else {
      const started = performance.now();
      payload = this.#codec.encode(pcm);
      this.#stats.encodeMicros += elapsedMicros(started);
    }
    if (content === "audio") {
      const horizon = this.#stream.name === "before-audio" ? this.#nowMs : Math.max(this.#stream.horizonMs, this.#nowMs);
      this.#stream = { name: "audio", horizonMs: horizon + FRAME_MS };
      this.#stats.audioFrames++;
    } else if (this.#stream.name !== "before-audio") {
      this.#stream = { name: this.#stream.name, horizonMs: this.#stream.horizonMs + FRAME_MS };
      this.#stats.silenceFrames++;
    }
    const marker = this.#marker === "start-of-talkspurt";
    this.#marker = "continuing";
    this.#stats.framesOut++;
    this.#onFrame({ payload, timestamp: this.#timestamp, marker, oldestArrivalMs, content });
    this.#timestamp = (this.#timestamp + FRAME_SAMPLES_8K) >>> 0;
  }
}

function opusDurationOrZero(payload: Uint8Array): number {
  try {
    return opusPacketSamples(payload);
  } catch {
    return 0;
  }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* G.711 (PBX) → Opus (Meta)                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

export interface G711RtpInput {
  /** Any whole number of samples (10, 20, 30 ms … ptime). */
  payload: Uint8Array;
  /** 0 (PCMU) or 8 (PCMA); anything else is counted and dropped. */
  payloadType: number;
  arrivalMs: number;
}

export interface OpusFrameOutput {
  payload: Uint8Array;
  /** RTP timestamp, 48 kHz clock: +960 per frame whether the frame came from the PBX or is comfort noise. */
  timestamp: number;
  /** Arrival of the oldest input packet with audio in this frame; undefined for pure comfort noise. */
  oldestArrivalMs: number | undefined;
  content: "audio" | "comfort-noise";
}

export interface PbxToMetaOptions extends OpusEncoderOptions {
  onFrame: (frame: OpusFrameOutput) => void;
  /** First RTP timestamp toward Meta; random by default. */
  initialTimestamp?: number;
  /** Level of {@link PbxToMetaAudio.comfortFrame}; default -60 dBFS. */
  comfortNoiseDbfs?: number;
}

export interface PbxToMetaStats {
  packetsIn: number;
  /** Packets whose payload type is not G.711 (e.g. comfort noise, PT 13). */
  packetsRejected: number;
  framesOut: number;
  audioFrames: number;
  comfortFrames: number;
  decodeMicros: number;
  encodeMicros: number;
}

export class PbxToMetaAudio {
  readonly #onFrame: (frame: OpusFrameOutput) => void;
  readonly #encoder: OpusEncoder8k;
  readonly #reframer = new PcmReframer(FRAME_SAMPLES_8K);
  readonly #noise: ComfortNoise;
  #timestamp: number;
  #stats = {
    packetsIn: 0,
    packetsRejected: 0,
    framesOut: 0,
    audioFrames: 0,
    comfortFrames: 0,
    decodeMicros: 0,
    encodeMicros: 0,
  };

  constructor(options: PbxToMetaOptions) {
    this.#onFrame = options.onFrame;
    this.#encoder = new OpusEncoder8k(options);
    this.#noise = new ComfortNoise(options.comfortNoiseDbfs ?? -60);
    this.#timestamp = (options.initialTimestamp ?? randomTimestamp()) >>> 0;
  }

  push(packet: G711RtpInput): void {
    this.#stats.packetsIn++;
    const codec = g711ForPayloadType(packet.payloadType);
    if (codec === undefined) {
      this.#stats.packetsRejected++;
      return;
    }
    const started = performance.now();
    const pcm = codec.decode(packet.payload);
    this.#stats.decodeMicros += elapsedMicros(started);
    this.#reframer.push(pcm, packet.arrivalMs, (frame) => {
      this.#onFrame(this.#encode(frame.pcm, frame.oldestArrivalMs, "audio"));
    });
  }

  /**
   * One 20 ms Opus frame to send while the PBX sends nothing (ringing, hold, muted), continuing the same
   * timestamp sequence and encoder state as real audio. If the PBX stopped mid-frame, its last samples go out
   * in this frame, padded with noise. Returned to the caller, not passed to `onFrame`.
   */
  comfortFrame(): OpusFrameOutput {
    const pending = this.#reframer.completePending((tail) => this.#noise.fill(tail));
    if (pending !== undefined) return this.#encode(pending.pcm, pending.oldestArrivalMs, "audio");
    return this.#encode(this.#noise.frame(FRAME_SAMPLES_8K), undefined, "comfort-noise");
  }

  stats(): PbxToMetaStats {
    return { ...this.#stats };
  }

  #encode(pcm: Int16Array, oldestArrivalMs: number | undefined, content: OpusFrameOutput["content"]): OpusFrameOutput {
    const started = performance.now();
    const payload = this.#encoder.encode(pcm);
    this.#stats.encodeMicros += elapsedMicros(started);
    this.#stats.framesOut++;
    if (content === "audio") this.#stats.audioFrames++;
    else this.#stats.comfortFrames++;
    const frame: OpusFrameOutput = { payload, timestamp: this.#timestamp, oldestArrivalMs, content };
    this.#timestamp = (this.#timestamp + OPUS_TICKS_PER_FRAME) >>> 0;
    return frame;
  }
}
