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

/** Frame durations each mode can code (RFC 6716 §3.1, Table 2), in samples at 48 kHz, longest first. */
const MODE_FRAME_SAMPLES_48K: Readonly<Record<OpusMode, readonly number[]>> = {
  silk: [2880, 1920, 960, 480],
  hybrid: [960, 480],
  celt: [960, 480, 240, 120],
};

/**
 * The TOC byte (code 0) with the same mode and bandwidth as `toc` but a frame of `frameSamples48k`, or
 * undefined when that mode cannot code that duration.
 */
export function opusTocWithFrameSize(toc: number, frameSamples48k: number): number | undefined {
  const mode = opusMode(toc);
  const config = toc >> 3;
  const stereo = toc & 0x04;
  switch (mode) {
    case "silk": {
      const index = [480, 960, 1920, 2880].indexOf(frameSamples48k);
      return index < 0 ? undefined : (((config & ~3) | index) << 3) | stereo;
    }
    case "hybrid": {
      const index = [480, 960].indexOf(frameSamples48k);
      return index < 0 ? undefined : (((config & ~1) | index) << 3) | stereo;
    }
    case "celt": {
      const index = [120, 240, 480, 960].indexOf(frameSamples48k);
      return index < 0 ? undefined : (((config & ~3) | index) << 3) | stereo;
    }
  }
}

export function opusModeFrameSizes(mode: OpusMode): readonly number[] {
  return MODE_FRAME_SAMPLES_48K[mode];
}
