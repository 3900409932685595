/**
 * Reading an Opus packet's table-of-contents byte (RFC 6716 §3.1) and frame-count code (§3.2) to learn how much
 * audio a packet holds without decoding it. The jitter buffer needs this to tell a DTX pause (timestamp jumps
 * further than the last packet lasted) from continuous audio, and the decoder needs it to build
 * concealment packets.
 */

export type OpusMode = "silk" | "hybrid" | "celt";

export class OpusPacketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OpusPacketError";
  }
}

/** Opus timestamps always tick at 48 kHz (RFC 7587 §4.1), whatever the audio bandwidth. */
export const OPUS_RTP_CLOCK_RATE = 48_000;

/** RFC 6716 §3.4 [R5]: no packet holds more than 120 ms. */
const MAX_PACKET_SAMPLES_48K = 5760;

export function opusMode(toc: number): OpusMode {
  const config = toc >> 3;
  if (config < 12) return "silk";
  if (config < 16) return "hybrid";
  return "celt";
}

/** Samples in one frame of a packet with this TOC byte, at `sampleRate` (8000 … 48000). */
export function opusFrameSamples(toc: number, sampleRate: number = OPUS_RTP_CLOCK_RATE): number {
  const config = (toc >> 3) & 0x1f;
  let samples48k: number;
  if (config < 12) samples48k = [480, 960, 1920, 2880][config & 3] as number;
  else if (config < 16) samples48k = (config & 1) === 0 ? 480 : 960;
  else samples48k = [120, 240, 480, 960][config & 3] as number;
  return (samples48k * sampleRate) / OPUS_RTP_CLOCK_RATE;
}

/** Number of frames in a packet (RFC 6716 §3.2): code 0 → 1, codes 1 and 2 → 2, code 3 → the count byte. */
export function opusFrameCount(packet: Uint8Array): number {
  const toc = packet[0];
  if (toc === undefined) throw new OpusPacketError("empty Opus packet");
  const code = toc & 3;
  if (code === 0) return 1;
  if (code !== 3) return 2;
  const countByte = packet[1];
  if (countByte === undefined) throw new OpusPacketError("Opus code 3 packet without a frame count byte");
  const count = countByte & 0x3f;
  if (count === 0) throw new OpusPacketError("Opus code 3 packet with zero frames");
  return count;
}

/** Total audio a packet holds, in samples at `sampleRate` (default 48 kHz, the RTP clock). */
export function opusPacketSamples(packet: Uint8Array, sampleRate: number = OPUS_RTP_CLOCK_RATE): number {
  const frames = opusFrameCount(packet);
  const toc = packet[0] as number;
  const total48k = frames * opusFrameSamples(toc, OPUS_RTP_CLOCK_RATE);
  if (total48k > MAX_PACKET_SAMPLES_48K) {
    throw new OpusPacketError(`Opus packet claims ${total48k / 48} ms, more than the 120 ms allowed`);
  }
  return (total48k * sampleRate) / OPUS_RTP_CLOCK_RATE;
}

/** Frame durations each mode can code (RFC 6716 §3.1, Table 2), in samples at 48 kHz. */
const MODE_FRAME_SAMPLES_48K: Readonly<Record<OpusMode, readonly number[]>> = {
  silk: [480, 960, 1920, 2880],
  hybrid: [480, 960],
  celt: [120, 240, 480, 960],
};
/** The first configuration number of each mode's group with the same bandwidth step (config & ~mask). */
const MODE_SIZE_MASK: Readonly<Record<OpusMode, number>> = { silk: 3, hybrid: 1, celt: 3 };
/** CELT narrowband, 2.5 ms: the fallback when the previous mode cannot code the needed duration. */
const CELT_NB_TOC = 16 << 3;
/** libopus conceals at most 20 ms per CELT or hybrid frame, so concealment frames stay at or below that. */
const MAX_CONCEAL_FRAME_48K = 960;
const MAX_FRAMES_PER_PACKET = 48;

function tocWithFrameSize(toc: number, frameSamples48k: number): number | undefined {
  const mode = opusMode(toc);
  const index = MODE_FRAME_SAMPLES_48K[mode].indexOf(frameSamples48k);
  if (index < 0) return undefined;
  const config = ((toc >> 3) & ~MODE_SIZE_MASK[mode]) | index;
  return (config << 3) | (toc & 0x04);
}

/**
 * A packet that makes libopus conceal (PLC) up to `samples48k` of audio: a TOC in the previous packet's mode and
 * bandwidth followed by zero-length frames, which the decoder treats exactly like missing packets. Covers
 * less when more than 120 ms is asked for; call again for the rest. `samples48k` must be a multiple of 120.
 */
export function opusConcealmentPacket(previousToc: number, samples48k: number): Uint8Array {
  if (!Number.isInteger(samples48k) || samples48k <= 0 || samples48k % 120 !== 0) {
    throw new OpusPacketError(`concealment must cover a positive multiple of 2.5 ms, got ${samples48k} samples at 48 kHz`);
  }
  const fits = (size: number): boolean => size <= MAX_CONCEAL_FRAME_48K && samples48k % size === 0;
  const ownSizes = MODE_FRAME_SAMPLES_48K[opusMode(previousToc)].filter(fits);
  // Only CELT has 2.5 and 5 ms frames; PLC follows the decoder's previous mode, not this TOC's, either way.
  const [base, sizes] = ownSizes.length > 0 ? [previousToc, ownSizes] : [CELT_NB_TOC, MODE_FRAME_SAMPLES_48K.celt.filter(fits)];
  const frame = Math.max(...sizes);
  const toc = tocWithFrameSize(base, frame) as number;
  const count = Math.min(samples48k / frame, MAX_FRAMES_PER_PACKET, Math.floor(MAX_PACKET_SAMPLES_48K / frame));
  // Code 3, CBR, no padding: each of `count` frames gets (0 bytes left) / count = 0 bytes.
  return count === 1 ? Uint8Array.of(toc) : Uint8Array.of(toc | 3, count);
}
