/**
 * CPU cost of the audio pipelines per 20 ms frame, printed, never asserted (timings on a shared 2-core machine
 * are noise-prone). Run: `npm run build && node dist/transcode/bench-audio.js`.
 */
import { MetaToPbxAudio, PbxToMetaAudio, type OpusRtpInput } from "./audio-pipeline.js";
import { decodeMulaw, encodeMulaw } from "./g711.js";
import { OpusEncoder } from "./opus-codec.js";
import { OpusDecoder8k, OpusEncoder8k } from "./opus.js";
import { generateTone } from "./tone.js";

const FRAMES = 3000; // 60 s of audio
const RUNS = 5;

function speech48k(frames: number): Int16Array {
  // Two tones with a slow amplitude wobble: busier than a pure tone, cheaper to make than real speech.
  const a = generateTone({ hz: 310, sampleRate: 48000, amplitude: 0.3, startSample: 0, samples: frames * 960 });
  const b = generateTone({ hz: 1230, sampleRate: 48000, amplitude: 0.2, startSample: 0, samples: frames * 960 });
  const out = new Int16Array(a.length);
  for (let i = 0; i < out.length; i++) {
    const wobble = 0.6 + 0.4 * Math.sin((2 * Math.PI * i) / 48000 / 0.7);
    out[i] = Math.round(((a[i] as number) + (b[i] as number)) * wobble);
  }
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Median over runs of µs per frame; the first run also warms up the JIT and is discarded. */
function measure(label: string, perRun: () => number): void {
  perRun();
  const results: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const frames = perRun();
    results.push(((performance.now() - started) * 1000) / frames);
  }
  console.log(`${label.padEnd(52)} ${median(results).toFixed(1).padStart(7)} µs/frame`);
}

const pcm48k = speech48k(FRAMES);
const metaEncoder = new OpusEncoder({ rate: 48000, application: "voip", bitrate: 32000, inbandFec: true, packetLossPercent: 10 });
const opusPackets: OpusRtpInput[] = Array.from({ length: FRAMES }, (_, n) => ({
  payload: metaEncoder.encode(pcm48k.subarray(n * 960, (n + 1) * 960)),
  seq: n & 0xffff,
  timestamp: n * 960,
  arrivalMs: n * 20,
}));

const pcm8k = new Int16Array(FRAMES * 160);
for (let i = 0; i < pcm8k.length; i++) pcm8k[i] = pcm48k[i * 6] as number;
const pcmuPayloads = Array.from({ length: FRAMES }, (_, n) => encodeMulaw(pcm8k.subarray(n * 160, (n + 1) * 160)));

console.log(`audio pipeline cost, ${FRAMES} frames × ${RUNS} runs, median`);

measure("Meta→PBX total (jitter, Opus decode 8 kHz, PCMU)", () => {
  let frames = 0;
  const pipeline = new MetaToPbxAudio({ codec: "PCMU", onFrame: () => frames++ });
  for (const packet of opusPackets) pipeline.push(packet);
  return frames;
});
measure("  Opus decode to 8 kHz alone", () => {
  const decoder = new OpusDecoder8k();
  for (const packet of opusPackets) decoder.decode(packet.payload);
  return FRAMES;
});
measure("  PCMU encode alone", () => {
  for (let n = 0; n < FRAMES; n++) encodeMulaw(pcm8k.subarray(n * 160, (n + 1) * 160));
  return FRAMES;
});

for (const complexity of [5, 9]) {
  measure(`PBX→Meta total (PCMU, Opus encode c${complexity}, 20 kbit/s, FEC)`, () => {
    let frames = 0;
    const pipeline = new PbxToMetaAudio({ complexity, onFrame: () => frames++ });
    for (let n = 0; n < FRAMES; n++) pipeline.push({ payload: pcmuPayloads[n] as Uint8Array, payloadType: 0, arrivalMs: n * 20 });
    return frames;
  });
}
measure("  Opus encode 8 kHz alone (c5)", () => {
  const encoder = new OpusEncoder8k({ complexity: 5 });
  for (let n = 0; n < FRAMES; n++) encoder.encode(pcm8k.subarray(n * 160, (n + 1) * 160));
  return FRAMES;
});
measure("  PCMU decode alone", () => {
  for (const payload of pcmuPayloads) decodeMulaw(payload);
  return FRAMES;
});
measure("PBX→Meta comfort frame (c5)", () => {
  const pipeline = new PbxToMetaAudio({ complexity: 5, onFrame: () => undefined });
  for (let n = 0; n < FRAMES; n++) pipeline.comfortFrame();
  return FRAMES;
});
