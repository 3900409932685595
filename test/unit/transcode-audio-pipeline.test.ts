import { OpusDecoder, OpusEncoder } from "../../transcode/opus-codec.js";
import { describe, expect, it } from "vitest";
import {
  MetaToPbxAudio,
  PbxToMetaAudio,
  type G711FrameOutput,
  type MetaToPbxOptions,
  type OpusFrameOutput,
  type OpusRtpInput,
} from "../../transcode/audio-pipeline.js";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw } from "../../transcode/g711.js";
import { detectTone, generateTone, rmsDbfs } from "../../transcode/tone.js";

/** What Meta sends: a 48 kHz Opus stream with 20 ms packets (or `frameMs`), sequence and timestamps from 0. */
function opusStream(hz: number, frames: number, frameMs = 20): OpusRtpInput[] {
  const encoder = new OpusEncoder({ rate: 48000, application: "voip", bitrate: 32000 });
  const frameSamples = 48 * frameMs;
  const pcm = generateTone({ hz, sampleRate: 48000, amplitude: 0.5, startSample: 0, samples: frames * frameSamples });
  return Array.from({ length: frames }, (_, n) => ({
    payload: encoder.encode(pcm.subarray(n * frameSamples, (n + 1) * frameSamples)),
    seq: (60000 + n) & 0xffff,
    timestamp: n * frameSamples,
    ssrc: 1234,
    arrivalMs: 1000 + n * frameMs,
  }));
}

/** Feeds packets at their arrival times and calls tick whenever the pipeline asks for it, up to `untilMs`. */
function drive(pipeline: MetaToPbxAudio, packets: OpusRtpInput[], untilMs: number): void {
  const queue = [...packets].sort((a, b) => a.arrivalMs - b.arrivalMs);
  for (;;) {
    const next = queue[0];
    const deadline = pipeline.nextDeadlineMs();
    const nextAt = next?.arrivalMs ?? Infinity;
    if (deadline !== undefined && deadline <= nextAt && deadline <= untilMs) pipeline.tick(deadline);
    else if (next !== undefined && nextAt <= untilMs) pipeline.push(queue.shift() as OpusRtpInput);
    else break;
  }
  pipeline.tick(untilMs);
}

function metaToPbx(options: Partial<MetaToPbxOptions> = {}) {
  const frames: G711FrameOutput[] = [];
  const pipeline = new MetaToPbxAudio({ codec: "PCMU", initialTimestamp: 5000, onFrame: (f) => frames.push(f), ...options });
  return { pipeline, frames };
}

function decodeFrames(frames: G711FrameOutput[], decode: (codes: Uint8Array) => Int16Array): Int16Array {
  const out = new Int16Array(frames.length * 160);
  frames.forEach((f, i) => out.set(decode(f.payload), i * 160));
  return out;
}

function expectContinuousTimestamps(frames: G711FrameOutput[], first: number): void {
  frames.forEach((f, i) => expect(f.timestamp, `frame ${i}`).toBe((first + i * 160) >>> 0));
}

describe("MetaToPbxAudio", () => {
  it("turns a 440 Hz Opus stream into 20 ms PCMU frames that still carry 440 Hz", () => {
    const { pipeline, frames } = metaToPbx();
    const packets = opusStream(440, 100);
    drive(pipeline, packets, 1000 + 100 * 20);
    expect(frames.length).toBe(100);
    for (const f of frames) expect(f.payload.length).toBe(160);
    expectContinuousTimestamps(frames, 5000);
    expect(frames.map((f) => f.marker)).toEqual([true, ...Array<boolean>(99).fill(false)]);
    // No added latency: each frame leaves when its packet arrives.
    frames.forEach((f, i) => expect(f.oldestArrivalMs).toBe(packets[i]?.arrivalMs));
    const tone = detectTone(decodeFrames(frames, decodeMulaw).subarray(800), 8000);
    expect(Math.abs(tone.hz - 440)).toBeLessThan(5);
    expect(tone.levelDbfs).toBeGreaterThan(-12);
    expect(pipeline.stats()).toMatchObject({ packetsIn: 100, framesOut: 100, concealedPackets: 0, silenceFrames: 0 });
  });

  it("speaks PCMA when asked", () => {
    const { pipeline, frames } = metaToPbx({ codec: "PCMA" });
    drive(pipeline, opusStream(1000, 50), 2000);
    const tone = detectTone(decodeFrames(frames, decodeAlaw).subarray(800), 8000);
    expect(Math.abs(tone.hz - 1000)).toBeLessThan(5);
  });

  for (const frameMs of [10, 40, 60]) {
    it(`re-frames ${frameMs} ms Opus packets into exact 20 ms frames`, () => {
      const { pipeline, frames } = metaToPbx();
      const count = 1200 / frameMs;
      drive(pipeline, opusStream(440, count, frameMs), 1000 + 1200);
      expect(frames.length).toBe(60);
      for (const f of frames) expect(f.payload.length).toBe(160);
      expectContinuousTimestamps(frames, 5000);
    });
  }

  it("conceals a lost packet with PLC and keeps the PBX timeline continuous", () => {
    const { pipeline, frames } = metaToPbx();
    const packets = opusStream(440, 50).filter((_, n) => n !== 20 && n !== 30 && n !== 31);
    drive(pipeline, packets, 1000 + 49 * 20 + 30);
    expect(frames.length).toBe(50);
    expectContinuousTimestamps(frames, 5000);
    expect(pipeline.stats()).toMatchObject({ concealedPackets: 3, silenceFrames: 0, timestampJumps: 0 });
    expect(pipeline.stats().jitter.lost).toBe(3);
    // The concealed frame continues the tone rather than dropping to silence.
    expect(rmsDbfs(decodeMulaw((frames[20] as G711FrameOutput).payload))).toBeGreaterThan(-20);
  });

  it("puts reordered packets back in order", () => {
    const { pipeline, frames } = metaToPbx();
    const packets = opusStream(440, 30);
    const [a, b] = [packets[10] as OpusRtpInput, packets[11] as OpusRtpInput];
    [a.arrivalMs, b.arrivalMs] = [b.arrivalMs + 5, b.arrivalMs];
    drive(pipeline, packets, 1000 + 29 * 20 + 30);
    expect(frames.length).toBe(30);
    expect(pipeline.stats().jitter.reordered).toBe(1);
    expect(pipeline.stats().concealedPackets).toBe(0);
  });

  function withDtxPause(pauseFrames: number): OpusRtpInput[] {
    // 20 frames of tone, then the sender stops for `pauseFrames` frames and resumes: sequence numbers continue,
    // timestamps and arrival times jump.
    return opusStream(440, 40).flatMap((p, n) => {
      if (n >= 20 && n < 20 + pauseFrames) return [];
      return [{ ...p, seq: n < 20 ? p.seq : (p.seq - pauseFrames) & 0xffff }];
    });
  }

  it("sends G.711 silence in real time through a DTX pause and conceals nothing", () => {
    const { pipeline, frames } = metaToPbx();
    drive(pipeline, withDtxPause(15), 1000 + 40 * 20);
    const stats = pipeline.stats();
    expect(stats.concealedPackets).toBe(0);
    expect(stats.jitter.lost).toBe(0);
    expect(stats.silenceFrames).toBeGreaterThanOrEqual(10);
    const silence = frames.filter((f) => f.content === "silence");
    for (const f of silence) expect(Array.from(f.payload).every((b) => b === 0xff)).toBe(true);
    for (const f of frames) expect(f.payload.length).toBe(160);
    // Silence frames follow the audio with +160 each; the timeline re-aligns to the input at the talkspurt
    // (a jump of no more than the hold-off, flagged by the marker).
    const resumed = frames.findIndex((f, i) => i > 20 && f.content === "audio");
    expectContinuousTimestamps(frames.slice(0, resumed), 5000);
    const jump = (frames[resumed] as G711FrameOutput).timestamp - (frames[resumed - 1] as G711FrameOutput).timestamp - 160;
    expect(jump).toBeGreaterThanOrEqual(0);
    expect(jump).toBeLessThanOrEqual(8 * 80);
    expect((frames[resumed] as G711FrameOutput).marker).toBe(jump > 0);
    // Input timeline kept: the resumed audio sits where the sender put it (frame 35 of the stream).
    expect((frames[resumed] as G711FrameOutput).timestamp).toBe(5000 + 35 * 160);
    // Frames went out in real time, about one per 20 ms over the whole 800 ms.
    expect(frames.length).toBeGreaterThanOrEqual(36);
    expect(frames.length).toBeLessThanOrEqual(40);
  });

  it("sends nothing through a DTX pause when configured, then jumps the timestamp with the marker set", () => {
    const { pipeline, frames } = metaToPbx({ dtxSilence: "send-nothing" });
    drive(pipeline, withDtxPause(15), 1000 + 40 * 20);
    expect(frames.length).toBe(25);
    expect(pipeline.stats()).toMatchObject({ silenceFrames: 0, concealedPackets: 0, timestampJumps: 1 });
    const resumed = frames[20] as G711FrameOutput;
    expect(resumed.marker).toBe(true);
    expect(resumed.timestamp).toBe(5000 + 35 * 160);
    expectContinuousTimestamps(frames.slice(0, 20), 5000);
  });

  it("does not stall the PBX stream during a network outage and adds no latency afterwards", () => {
    const { pipeline, frames } = metaToPbx();
    const packets = opusStream(440, 60).filter((_, n) => n < 20 || n >= 40);
    drive(pipeline, packets, 1000 + 60 * 20);
    const last = frames.at(-1) as G711FrameOutput;
    // The last input packet (frame 59) went out the moment it arrived, at its own place on the timeline.
    expect(last.oldestArrivalMs).toBe(1000 + 59 * 20);
    expect(last.timestamp).toBe(5000 + 59 * 160);
    expect(pipeline.stats().silenceFrames).toBeGreaterThan(10);
  });
});

describe("PbxToMetaAudio", () => {
  function pcmuStream(hz: number, ms: number, ptimeMs: number) {
    const pcm = generateTone({ hz, sampleRate: 8000, amplitude: 0.5, startSample: 0, samples: ms * 8 });
    const per = ptimeMs * 8;
    return Array.from({ length: ms / ptimeMs }, (_, n) => ({
      payload: encodeMulaw(pcm.subarray(n * per, (n + 1) * per)),
      payloadType: 0,
      arrivalMs: n * ptimeMs,
    }));
  }

  function decode48k(frames: OpusFrameOutput[]): Int16Array {
    const decoder = new OpusDecoder(48000);
    const chunks = frames.map((f) => decoder.decode(f.payload));
    const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const c of chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }

  for (const ptime of [10, 20, 30]) {
    it(`turns PCMU 1 kHz at ptime ${ptime} into 20 ms Opus frames that decode to 1 kHz`, () => {
      const frames: OpusFrameOutput[] = [];
      const pipeline = new PbxToMetaAudio({ onFrame: (f) => frames.push(f), initialTimestamp: 0xffffffff - 960 });
      for (const packet of pcmuStream(1000, 1200, ptime)) pipeline.push(packet);
      expect(frames.length).toBe(60);
      frames.forEach((f, i) => expect(f.timestamp).toBe((0xffffffff - 960 + i * 960) >>> 0));
      const tone = detectTone(decode48k(frames).subarray(4800), 48000);
      expect(Math.abs(tone.hz - 1000)).toBeLessThan(5);
      expect(tone.levelDbfs).toBeGreaterThan(-12);
      expect(pipeline.stats()).toMatchObject({ framesOut: 60, audioFrames: 60, comfortFrames: 0 });
    });
  }

  it("accepts PCMA and drops payload types that are not G.711", () => {
    const frames: OpusFrameOutput[] = [];
    const pipeline = new PbxToMetaAudio({ onFrame: (f) => frames.push(f) });
    const pcm = generateTone({ hz: 1000, sampleRate: 8000, amplitude: 0.5, startSample: 0, samples: 160 });
    pipeline.push({ payload: encodeAlaw(pcm), payloadType: 8, arrivalMs: 0 });
    pipeline.push({ payload: Uint8Array.of(40), payloadType: 13, arrivalMs: 20 });
    expect(frames.length).toBe(1);
    expect(pipeline.stats()).toMatchObject({ packetsIn: 2, packetsRejected: 1 });
  });

  it("fills silence with comfort noise near -60 dBFS on the same timestamp sequence", () => {
    const frames: OpusFrameOutput[] = [];
    const pipeline = new PbxToMetaAudio({ onFrame: (f) => frames.push(f), initialTimestamp: 1000 });
    const real = pcmuStream(1000, 40, 20);
    pipeline.push(real[0] as (typeof real)[number]);
    const comfort = Array.from({ length: 50 }, () => pipeline.comfortFrame());
    pipeline.push(real[1] as (typeof real)[number]);
    const all = [frames[0] as OpusFrameOutput, ...comfort, frames[1] as OpusFrameOutput];
    all.forEach((f, i) => expect(f.timestamp).toBe(1000 + i * 960));
    expect(comfort.every((f) => f.content === "comfort-noise" && f.oldestArrivalMs === undefined)).toBe(true);
    const level = rmsDbfs(decode48k(comfort).subarray(9600));
    expect(level).toBeGreaterThan(-66);
    expect(level).toBeLessThan(-54);
    expect(pipeline.stats()).toMatchObject({ audioFrames: 2, comfortFrames: 50, framesOut: 52 });
  });

  it("sends a partial frame's samples in the next comfort frame instead of holding them", () => {
    const frames: OpusFrameOutput[] = [];
    const pipeline = new PbxToMetaAudio({ onFrame: (f) => frames.push(f) });
    const [first] = pcmuStream(1000, 10, 10);
    pipeline.push(first as NonNullable<typeof first>);
    expect(frames.length).toBe(0);
    const flushed = pipeline.comfortFrame();
    expect(flushed.content).toBe("audio");
    expect(flushed.oldestArrivalMs).toBe(0);
    expect(pipeline.comfortFrame().content).toBe("comfort-noise");
  });
});
