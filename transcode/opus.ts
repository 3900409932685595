/**
 * Opus at 8 kHz mono, the rate G.711 runs at. libopus resamples and band-limits inside the codec when the
 * decoder or encoder is opened at 8 kHz, so the telephone leg needs no separate resampler.
 *
 * The binding (opus-codec.ts) decides how losses are handled:
 * - Its decode always calls libopus with `decode_fec = 0`, so in-band FEC (LBRR) cannot be decoded: a lost
 *   frame is always filled by libopus PLC.
 * - PLC is reached through a packet that carries a TOC byte and zero-length frames: libopus treats a frame of
 *   length ≤ 1 exactly like a missing packet and conceals the duration the TOC states (opus_decoder.c,
 *   "don't conceal more than what the ToC says"). {@link OpusDecoder8k.conceal} sends such packets.
 * - The encoder takes every CTL needed here (application, bitrate, complexity, in-band FEC, expected loss,
 *   DTX), so the packets we send carry LBRR that Meta's decoder can use.
 */
import { OpusCodecError, OpusDecoder, OpusEncoder } from "./opus-codec.js";
import { OPUS_RTP_CLOCK_RATE, opusConcealmentPacket } from "./opus-toc.js";

export const TELEPHONE_RATE = 8000;
/** 20 ms at 8 kHz: the frame both G.711 (ptime 20) and our Opus encoder use. */
export const FRAME_SAMPLES_8K = 160;

export class OpusFrameSizeError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "OpusFrameSizeError";
  }
}

/** Samples in 2.5 ms at 8 kHz: the granularity of every Opus frame size, hence of concealment. */
const CONCEAL_GRANULE_8K = 20;
/** Until a packet has been decoded there is no mode to continue; SILK narrowband 20 ms is a neutral guess. */
const DEFAULT_TOC = 0x08;
const SAMPLES_48K_PER_8K = OPUS_RTP_CLOCK_RATE / TELEPHONE_RATE;

export class OpusDecoder8k {
  readonly #decoder = new OpusDecoder(TELEPHONE_RATE);
  #lastToc = DEFAULT_TOC;

  /** Decodes one packet (any frame size, any bandwidth) to 8 kHz mono. */
  decode(packet: Uint8Array): Int16Array {
    const pcm = this.#decoder.decode(packet);
    this.#lastToc = packet[0] ?? this.#lastToc;
    return pcm;
  }

  /**
   * Fills `samples` (8 kHz, a multiple of 20 = 2.5 ms) of lost audio by libopus PLC, continuing the last decoded
   * signal and fading it out over long gaps. In-band FEC is not reachable through this binding (see above).
   */
  conceal(samples: number): Int16Array {
    if (!Number.isInteger(samples) || samples <= 0 || samples % CONCEAL_GRANULE_8K !== 0) {
      throw new OpusFrameSizeError(`concealment must cover a positive multiple of 2.5 ms, got ${samples} samples`);
    }
    const out = new Int16Array(samples);
    let filled = 0;
    while (filled < samples) {
      const packet = opusConcealmentPacket(this.#lastToc, (samples - filled) * SAMPLES_48K_PER_8K);
      let pcm: Int16Array;
      try {
        pcm = this.#decoder.decode(packet);
      } catch (error) {
        throw new OpusCodecError("conceal", error);
      }
      if (pcm.length === 0) throw new OpusCodecError("conceal", new Error("libopus concealed no samples"));
      const take = Math.min(pcm.length, samples - filled);
      out.set(pcm.subarray(0, take), filled);
      filled += take;
    }
    return out;
  }

  reset(): void {
    this.#decoder.reset();
    this.#lastToc = DEFAULT_TOC;
  }
}

export interface OpusEncoderOptions {
  /** Target bitrate in bit/s; default 20000 (narrowband voice with room for FEC). */
  bitrate?: number;
  /** 0 (cheapest) … 10 (best); default 5. */
  complexity?: number;
  /**
   * Loss rate the encoder provisions in-band FEC for, in percent. libopus adds LBRR only when this is above 0;
   * default 10.
   */
  expectedLossPercent?: number;
}

/**
 * Encodes 20 ms frames of 8 kHz mono PCM for the Meta leg. DTX stays off: Meta (and WhatsApp) treat a leg
 * without packets as dead, and the PBX side already decides what silence sounds like.
 */
export class OpusEncoder8k {
  readonly #encoder: OpusEncoder;

  constructor(options: OpusEncoderOptions = {}) {
    this.#encoder = new OpusEncoder({
      rate: TELEPHONE_RATE,
      application: "voip",
      bitrate: options.bitrate ?? 20_000,
      complexity: options.complexity ?? 5,
      inbandFec: true,
      packetLossPercent: options.expectedLossPercent ?? 10,
      dtx: false,
    });
  }

  /** One 20 ms frame (160 samples) in, one Opus packet (48 kHz RTP clock: 960 ticks) out. */
  encode(frame: Int16Array): Uint8Array {
    if (frame.length !== FRAME_SAMPLES_8K) {
      throw new OpusFrameSizeError(`Opus encoder takes ${FRAME_SAMPLES_8K} samples per frame, got ${frame.length}`);
    }
    return this.#encoder.encode(frame);
  }

  reset(): void {
    this.#encoder.reset();
  }
}
