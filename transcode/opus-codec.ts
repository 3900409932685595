/**
 * libopus through `@discordjs/opus` (0.10.0, built from its bundled libopus source at install):
 * one typed encoder and one typed decoder, at any libopus rate, mono.
 *
 * Why this binding: every instance owns its output buffer and returns a copy, so instances on
 * different worker threads never share memory (a binding with one process-wide output buffer mixes
 * the audio of calls coded at once on two threads). It exposes libopus CTLs by number only; the
 * ones used here are named below, from opus_defines.h.
 */
import { createRequire } from "node:module";

interface NativeOpus {
  encode(pcm: Buffer): Buffer;
  decode(packet: Buffer): Buffer;
  applyEncoderCTL(ctl: number, value: number): void;
  applyDecoderCTL(ctl: number, value: number): void;
}
type NativeOpusClass = new (rate: number, channels: number) => NativeOpus;

const native = createRequire(import.meta.url)("@discordjs/opus") as { OpusEncoder: NativeOpusClass };

const CTL = {
  setApplication: 4000,
  setBitrate: 4002,
  setComplexity: 4010,
  setInbandFec: 4012,
  setPacketLossPercent: 4014,
  setDtx: 4016,
  resetState: 4028,
} as const;
const APPLICATION = { voip: 2048, audio: 2049 } as const;

/** libopus refused an operation (a native error, or a packet it cannot take). */
export class OpusCodecError extends Error {
  constructor(operation: "decode" | "encode" | "conceal" | "configure", cause: unknown) {
    super(`libopus ${operation} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "OpusCodecError";
  }
}

function configured<T>(make: () => T): T {
  try {
    return make();
  } catch (error) {
    throw new OpusCodecError("configure", error);
  }
}

export type OpusRate = 8000 | 12000 | 16000 | 24000 | 48000;

export interface OpusEncoderSettings {
  rate: OpusRate;
  application: keyof typeof APPLICATION;
  /** bit/s, 6000 … 510000. */
  bitrate: number;
  /** 0 (cheapest) … 10 (best). */
  complexity?: number;
  inbandFec?: boolean;
  /** Loss the encoder provisions in-band FEC for, 0 … 100 %. */
  packetLossPercent?: number;
  dtx?: boolean;
}

function pcmBytes(pcm: Int16Array): Buffer {
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}

function int16View(bytes: Buffer): Int16Array {
  // The binding returns a fresh copy, so the view is aligned; copy only if that ever stops being true.
  if (bytes.byteOffset % 2 === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  return new Int16Array(Uint8Array.prototype.slice.call(bytes).buffer, 0, bytes.byteLength >> 1);
}

/**
 * Settings out of range are a RangeError (the caller's mistake); what libopus itself refuses is an
 * OpusCodecError.
 */
export class OpusEncoder {
  readonly #native: NativeOpus;

  constructor(settings: OpusEncoderSettings) {
    const { bitrate, complexity = 5, packetLossPercent = 0 } = settings;
    if (!Number.isInteger(bitrate) || bitrate < 6000 || bitrate > 510_000) throw new RangeError(`Opus bitrate out of range: ${bitrate}`);
    if (!Number.isInteger(complexity) || complexity < 0 || complexity > 10) throw new RangeError(`Opus complexity must be an integer 0..10, got ${complexity}`);
    if (!(packetLossPercent >= 0 && packetLossPercent <= 100)) throw new RangeError(`expected loss must be 0..100 %, got ${packetLossPercent}`);
    this.#native = configured(() => {
      const n = new native.OpusEncoder(settings.rate, 1);
      // The application can only be set before the first frame (libopus), which is now.
      n.applyEncoderCTL(CTL.setApplication, APPLICATION[settings.application]);
      n.applyEncoderCTL(CTL.setBitrate, bitrate);
      n.applyEncoderCTL(CTL.setComplexity, complexity);
      n.applyEncoderCTL(CTL.setInbandFec, settings.inbandFec ? 1 : 0);
      n.applyEncoderCTL(CTL.setPacketLossPercent, Math.round(packetLossPercent));
      n.applyEncoderCTL(CTL.setDtx, settings.dtx ? 1 : 0);
      return n;
    });
  }

  /** One frame of mono PCM (2.5 … 60 ms at the encoder's rate) in, one Opus packet out. */
  encode(pcm: Int16Array): Buffer {
    // A try here rather than a helper taking a closure: this runs for every frame.
    try {
      return this.#native.encode(pcmBytes(pcm));
    } catch (error) {
      throw new OpusCodecError("encode", error);
    }
  }

  reset(): void {
    this.#native.applyEncoderCTL(CTL.resetState, 0);
  }
}

export class OpusDecoder {
  readonly #native: NativeOpus;

  constructor(rate: OpusRate) {
    this.#native = configured(() => new native.OpusEncoder(rate, 1));
  }

  /**
   * One packet in, mono PCM at the decoder's rate out. An empty packet is refused: libopus would
   * take it for a loss of up to 120 ms, not of the packet's own duration.
   */
  decode(packet: Uint8Array): Int16Array {
    if (packet.length === 0) throw new OpusCodecError("decode", new Error("an empty Opus packet carries no TOC byte"));
    const bytes = Buffer.isBuffer(packet) ? packet : Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    try {
      return int16View(this.#native.decode(bytes));
    } catch (error) {
      throw new OpusCodecError("decode", error);
    }
  }

  reset(): void {
    this.#native.applyDecoderCTL(CTL.resetState, 0);
  }
}
