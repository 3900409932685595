import { OpusDecoder, OpusEncoder } from "../../transcode/opus-codec.js";
import { describe, expect, it } from "vitest";
import { OpusDecoder8k, OpusEncoder8k, OpusFrameSizeError } from "../../transcode/opus.js";
import {
  opusConcealmentPacket,
  opusFrameCount,
  opusFrameSamples,
  opusPacketSamples,
  OpusPacketError,
} from "../../transcode/opus-toc.js";
import { detectTone, generateTone, goertzelPower, rmsDbfs } from "../../transcode/tone.js";

/** An independent 48 kHz fullband encoder, as a WebRTC peer would use. */
function encode48k(hz: number, seconds: number, frameSamples = 960): Uint8Array[] {
  const encoder = new OpusEncoder({ rate: 48000, application: "audio", bitrate: 64000 });
  const pcm = generateTone({ hz, sampleRate: 48000, amplitude: 0.5, startSample: 0, samples: 48000 * seconds });
  const packets: Uint8Array[] = [];
  for (let offset = 0; offset + frameSamples <= pcm.length; offset += frameSamples) {
    packets.push(encoder.encode(pcm.subarray(offset, offset + frameSamples)));
  }
  return packets;
}

function concat(chunks: Int16Array[]): Int16Array {
  const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Skips the codec's start-up (look-ahead, fade-in) before measuring. */
const SETTLE_8K = 800;

describe("Opus TOC", () => {
  it("reads frame durations for every mode (RFC 6716 Table 2)", () => {
    expect(opusFrameSamples(0 << 3)).toBe(480); // SILK NB 10 ms
    expect(opusFrameSamples(1 << 3)).toBe(960); // SILK NB 20 ms
    expect(opusFrameSamples(11 << 3)).toBe(2880); // SILK WB 60 ms
    expect(opusFrameSamples(12 << 3)).toBe(480); // hybrid SWB 10 ms
    expect(opusFrameSamples(15 << 3)).toBe(960); // hybrid FB 20 ms
    expect(opusFrameSamples(16 << 3)).toBe(120); // CELT NB 2.5 ms
    expect(opusFrameSamples(31 << 3)).toBe(960); // CELT FB 20 ms
    expect(opusFrameSamples(1 << 3, 8000)).toBe(160);
  });

  it("counts frames per packet code", () => {
    expect(opusPacketSamples(Uint8Array.of((1 << 3) | 0, 1, 2))).toBe(960);
    expect(opusPacketSamples(Uint8Array.of((1 << 3) | 1, 1, 2))).toBe(1920);
    expect(opusPacketSamples(Uint8Array.of((1 << 3) | 2, 1, 2))).toBe(1920);
    expect(opusFrameCount(Uint8Array.of((1 << 3) | 3, 3))).toBe(3);
    expect(opusPacketSamples(Uint8Array.of((1 << 3) | 3, 3), 8000)).toBe(480);
  });

  it("rejects malformed packets with a typed error", () => {
    expect(() => opusPacketSamples(new Uint8Array(0))).toThrow(OpusPacketError);
    expect(() => opusPacketSamples(Uint8Array.of(3))).toThrow(OpusPacketError);
    expect(() => opusPacketSamples(Uint8Array.of((1 << 3) | 3, 0))).toThrow(OpusPacketError);
    // 7 × 20 ms = 140 ms, over the 120 ms limit.
    expect(() => opusPacketSamples(Uint8Array.of((1 << 3) | 3, 7))).toThrow(OpusPacketError);
  });

  it("builds concealment packets in the previous mode, falling back to CELT for 2.5 ms steps", () => {
    const silkNb20 = 1 << 3;
    expect(Array.from(opusConcealmentPacket(silkNb20, 960))).toEqual([silkNb20]);
    expect(Array.from(opusConcealmentPacket(silkNb20, 2880))).toEqual([silkNb20 | 3, 3]);
    expect(Array.from(opusConcealmentPacket(silkNb20, 480))).toEqual([0 << 3]);
    expect(Array.from(opusConcealmentPacket(silkNb20, 120))).toEqual([16 << 3]);
    expect(Array.from(opusConcealmentPacket((13 << 3) | 4, 480))).toEqual([(12 << 3) | 4]); // hybrid SWB, stereo
    expect(Array.from(opusConcealmentPacket(31 << 3, 240))).toEqual([29 << 3]); // CELT FB 5 ms
    // Never more than 120 ms in one packet; the caller asks again for the rest.
    expect(opusPacketSamples(opusConcealmentPacket(silkNb20, 9600))).toBe(5760);
    expect(() => opusConcealmentPacket(silkNb20, 100)).toThrow(OpusPacketError);
  });

  it("agrees with what the encoder produced for 10, 20, 40 and 60 ms packets", () => {
    for (const frame of [480, 960, 1920, 2880]) {
      const packets = encode48k(440, 0.12, frame);
      const decoder = new OpusDecoder8k();
      for (const packet of packets) {
        expect(opusPacketSamples(packet)).toBe(frame);
        expect(decoder.decode(packet).length).toBe(frame / 6);
      }
    }
  });
});

describe("OpusDecoder8k", () => {
  it("keeps a 1 kHz tone from a 48 kHz encoder at its level", () => {
    const decoder = new OpusDecoder8k();
    const pcm = concat(encode48k(1000, 1).map((p) => decoder.decode(p))).subarray(SETTLE_8K);
    const tone = detectTone(pcm, 8000);
    expect(Math.abs(tone.hz - 1000)).toBeLessThan(5);
    // Input: a 0.5-amplitude sine, RMS ≈ -9 dBFS.
    expect(Math.abs(tone.levelDbfs - rmsDbfs(generateTone({ hz: 1000, sampleRate: 8000, amplitude: 0.5, startSample: 0, samples: 8000 })))).toBeLessThan(3);
    expect(goertzelPower(pcm, 8000, 1000)).toBeGreaterThan(0.5 * 0.25 * 0.5);
  });

  it("removes a 6 kHz tone instead of aliasing it into the telephone band", () => {
    const packets = encode48k(6000, 1);
    // The tone really is in the stream: a 48 kHz decoder hears it.
    const wideband = new OpusDecoder(48000);
    const pcm48k = concat(packets.map((p) => wideband.decode(p)));
    expect(Math.abs(detectTone(pcm48k.subarray(4800), 48000).hz - 6000)).toBeLessThan(10);
    const decoder = new OpusDecoder8k();
    const pcm = concat(packets.map((p) => decoder.decode(p))).subarray(SETTLE_8K);
    const inputDbfs = rmsDbfs(generateTone({ hz: 6000, sampleRate: 48000, amplitude: 0.5, startSample: 0, samples: 48000 }));
    expect(inputDbfs - rmsDbfs(pcm)).toBeGreaterThan(30);
    // 6 kHz would alias to 2 kHz at 8 kHz.
    expect(10 * Math.log10(goertzelPower(pcm, 8000, 2000) + 1e-20)).toBeLessThan(inputDbfs - 30);
  });

  it("conceals a lost frame by PLC, continuing the signal, for any multiple of 2.5 ms", () => {
    const decoder = new OpusDecoder8k();
    const packets = encode48k(1000, 0.5);
    for (const packet of packets) decoder.decode(packet);
    const concealed = decoder.conceal(160);
    expect(concealed.length).toBe(160);
    expect(detectTone(concealed, 8000).hz).toBeGreaterThan(900);
    expect(rmsDbfs(concealed)).toBeGreaterThan(-25);
    expect(decoder.conceal(480).length).toBe(480);
    expect(decoder.conceal(20).length).toBe(20);
    expect(decoder.conceal(1000).length).toBe(1000);
    expect(() => decoder.conceal(150)).toThrow(OpusFrameSizeError);
  });

  it("conceals silence before anything was decoded", () => {
    const concealed = new OpusDecoder8k().conceal(160);
    expect(concealed.length).toBe(160);
    expect(rmsDbfs(concealed)).toBeLessThan(-80);
  });
});

describe("OpusEncoder8k", () => {
  it("encodes 20 ms frames that decode back to the same tone", () => {
    const encoder = new OpusEncoder8k();
    const decoder = new OpusDecoder8k();
    const input = generateTone({ hz: 1000, sampleRate: 8000, amplitude: 0.5, startSample: 0, samples: 8000 });
    const out: Int16Array[] = [];
    for (let offset = 0; offset < input.length; offset += 160) {
      const packet = encoder.encode(input.subarray(offset, offset + 160));
      expect(opusPacketSamples(packet)).toBe(960);
      out.push(decoder.decode(packet));
    }
    const pcm = concat(out).subarray(SETTLE_8K);
    expect(Math.abs(detectTone(pcm, 8000).hz - 1000)).toBeLessThan(5);
    expect(Math.abs(rmsDbfs(pcm) - rmsDbfs(input))).toBeLessThan(3);
  });

  it("puts in-band FEC (SILK LBRR) into its packets when loss is expected", () => {
    // A mono 20 ms SILK packet starts with two equiprobable range-coded flags, VAD then LBRR, which land in the
    // top bits of the first byte after the TOC (RFC 6716 §4.2.3).
    const lbrrShare = (expectedLossPercent: number): number => {
      const encoder = new OpusEncoder8k({ expectedLossPercent });
      const input = generateTone({ hz: 440, sampleRate: 8000, amplitude: 0.3, startSample: 0, samples: 8000 });
      let withLbrr = 0;
      for (let offset = 0; offset < input.length; offset += 160) {
        const packet = encoder.encode(input.subarray(offset, offset + 160));
        expect(packet[0] as number >> 3).toBeLessThan(12); // SILK-only
        if (((packet[1] as number) & 0x40) !== 0) withLbrr++;
      }
      return withLbrr / 50;
    };
    expect(lbrrShare(0)).toBe(0);
    expect(lbrrShare(10)).toBeGreaterThan(0.5);
  });

  it("keeps sending real packets through silence (no DTX toward Meta)", () => {
    const encoder = new OpusEncoder8k();
    const silence = new Int16Array(160);
    const sizes = Array.from({ length: 100 }, () => encoder.encode(silence).length);
    expect(Math.min(...sizes)).toBeGreaterThan(2);
  });

  it("refuses frames that are not 20 ms and settings out of range", () => {
    expect(() => new OpusEncoder8k().encode(new Int16Array(80))).toThrow(OpusFrameSizeError);
    expect(() => new OpusEncoder8k({ complexity: 11 })).toThrow(RangeError);
    expect(() => new OpusEncoder8k({ bitrate: 100 })).toThrow(RangeError);
  });
});
