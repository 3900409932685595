import { OpusEncoder } from "../../transcode/opus-codec.js";
import { describe, expect, it } from "vitest";
import { assessCallQuality, type LegFigures, type QualityInputs } from "../../gateway/quality/call-quality.js";
import { StreamReception } from "../../gateway/quality/reception.js";
import { MetaToPbxAudio, type OpusRtpInput } from "../../transcode/audio-pipeline.js";
import { generateTone } from "../../transcode/tone.js";

function reception(lossEvery: number | undefined, packets = 1000): StreamReception {
  const r = new StreamReception(8000);
  for (let seq = 0; seq < packets; seq++) {
    if (lossEvery !== undefined && seq % lossEvery === 3) continue;
    r.onPacket(7, seq, seq * 160, seq * 20);
  }
  return r;
}

function leg(o: Partial<LegFigures> = {}): LegFigures {
  return {
    received: reception(undefined).snapshot(),
    packetsSent: 1000,
    remoteReport: { lossRatio: 0, packetsLost: 0, jitterMs: 1 },
    roundTripMs: 40,
    firstAudioInAt: undefined,
    firstAudioOutAt: undefined,
    ...o,
  };
}

function inputs(o: Partial<QualityInputs> = {}): QualityInputs {
  return {
    startedAt: 1_000_000,
    meta: leg(),
    pbx: { ...leg({ roundTripMs: 10 }), codec: "PCMU" },
    toPbx: { jitterBufferDelayMs: 0.5, emittedSamples: 48_000, concealedMs: 0, concealments: 0, silenceMs: 0 },
    latencyToPbx: { p50: 1, p99: 4, max: 9 },
    latencyToMeta: { p50: 1, p99: 3, max: 5 },
    ...o,
  };
}

describe("call quality assessment", () => {
  it("rates a clean call above 4.3 both ways and sums the delay it assumed", () => {
    const q = assessCallQuality(inputs());
    expect(q.consumerToAgent.mos).toBeGreaterThan(4.3);
    expect(q.agentToConsumer.mos).toBeGreaterThan(4.3);
    expect(q.consumerToAgent.partial).toBe(false);
    // RTT halves (20 + 5) + gateway p50 1 + Opus frame and look-ahead 26.5 + G.711 frame 20 + phone buffer 20.
    expect(q.consumerToAgent.oneWayDelayMs).toBeCloseTo(25 + 1 + 26.5 + 20 + 20, 1);
  });

  it("lowers the agent→consumer estimate for 5 % loss from the PBX, and leaves the other way alone", () => {
    const lossy = reception(20).snapshot();
    expect(lossy.lossRatio).toBeCloseTo(0.05, 3);
    const clean = assessCallQuality(inputs());
    const q = assessCallQuality(inputs({ pbx: { ...leg({ roundTripMs: 10, received: lossy }), codec: "PCMU" } }));
    expect(q.pbx?.received.lossRatio).toBeCloseTo(0.05, 3);
    expect(q.agentToConsumer.lossRatio).toBeCloseTo(0.05, 3);
    // G.711 arriving with 5 % loss is not concealed by the gateway: Bpl 4.3 makes it a poor call.
    expect(q.agentToConsumer.mos).toBeLessThan(clean.agentToConsumer.mos - 1.5);
    expect(q.consumerToAgent.mos).toBe(clean.consumerToAgent.mos);
  });

  it("uses what each far end reported about our streams for the other legs", () => {
    const q = assessCallQuality(
      inputs({
        meta: leg({ remoteReport: { lossRatio: 0.03, packetsLost: 30, jitterMs: 40 } }),
        pbx: { ...leg({ roundTripMs: 10, remoteReport: { lossRatio: 0.02, packetsLost: 20, jitterMs: 2 } }), codec: "PCMA" },
      }),
    );
    expect(q.meta.sent).toEqual({ packets: 1000, lossRatio: 0.03, packetsLost: 30, jitterMs: 40 });
    expect(q.consumerToAgent.lossRatio).toBeCloseTo(0.02, 6);
    expect(q.agentToConsumer.lossRatio).toBeCloseTo(0.03, 6);
    // The consumer's jitter (40 ms) sets its assumed playout buffer: 80 ms.
    expect(q.agentToConsumer.oneWayDelayMs).toBeCloseTo(25 + 1 + 20 + 26.5 + 80, 1);
  });

  it("marks an estimate partial when RTCP never told the loss or round trip", () => {
    const q = assessCallQuality(inputs({ meta: leg({ remoteReport: undefined, roundTripMs: undefined }) }));
    expect(q.agentToConsumer.partial).toBe(true);
    expect(q.meta.sent.lossRatio).toBeUndefined();
  });

  it("rates the echo target's Meta leg alone, and counts first audio from the call's start", () => {
    const q = assessCallQuality(
      inputs({ pbx: undefined, toPbx: undefined, latencyToPbx: undefined, latencyToMeta: undefined, meta: leg({ firstAudioInAt: 1_000_750, firstAudioOutAt: 1_000_800 }) }),
    );
    expect(q.pbx).toBeUndefined();
    expect(q.jitterBuffer).toBeUndefined();
    expect(q.firstAudioMs).toEqual({ fromConsumer: 750, toConsumer: 800, fromPbx: undefined, toPbx: undefined });
    expect(q.consumerToAgent.mos).toBeGreaterThan(4.3);
  });
});

describe("jitter-buffer delay toward the PBX", () => {
  function opusPackets(frames: number): OpusRtpInput[] {
    const encoder = new OpusEncoder({ rate: 48000, application: "voip", bitrate: 32000 });
    const pcm = generateTone({ hz: 440, sampleRate: 48000, amplitude: 0.5, startSample: 0, samples: frames * 960 });
    return Array.from({ length: frames }, (_, n) => ({
      payload: encoder.encode(pcm.subarray(n * 960, (n + 1) * 960)),
      seq: n,
      timestamp: n * 960,
      ssrc: 1,
      arrivalMs: 1000 + n * 20,
    }));
  }

  it("is zero for packets in order and counts the wait of a packet held behind a reordered one", () => {
    const inOrder = new MetaToPbxAudio({ codec: "PCMU", onFrame: () => undefined });
    for (const p of opusPackets(50)) inOrder.push(p);
    expect(inOrder.stats().jitterBufferDelayMs).toBe(0);
    expect(inOrder.stats().jitterBufferReleased).toBe(50);
    expect(inOrder.stats().jitterBufferEmittedSamples).toBe(50 * 960);

    const reordered = new MetaToPbxAudio({ codec: "PCMU", onFrame: () => undefined });
    const packets = opusPackets(50);
    // Packet 20 arrives 8 ms after 21: 21 waits 8 ms in the buffer.
    packets[20] = { ...packets[20]!, arrivalMs: packets[21]!.arrivalMs + 8 };
    for (const p of [...packets].sort((a, b) => a.arrivalMs - b.arrivalMs)) reordered.push(p);
    const s = reordered.stats();
    expect(s.jitterBufferReleased).toBe(50);
    expect(s.jitterBufferDelayMs).toBeCloseTo(8, 6);
  });
});
