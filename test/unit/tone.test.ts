import { describe, expect, it } from "vitest";
import { detectTone, generateTone, goertzelPower, rmsDbfs, SILENCE_DBFS } from "../../transcode/tone.js";

describe("generateTone", () => {
  it("is phase-continuous across consecutive chunks", () => {
    const whole = generateTone({ hz: 440, sampleRate: 8000, amplitude: 0.5, startSample: 0, samples: 1000 });
    const first = generateTone({ hz: 440, sampleRate: 8000, amplitude: 0.5, startSample: 0, samples: 333 });
    const second = generateTone({ hz: 440, sampleRate: 8000, amplitude: 0.5, startSample: 333, samples: 667 });
    expect(Array.from(first)).toEqual(Array.from(whole.subarray(0, 333)));
    expect(Array.from(second)).toEqual(Array.from(whole.subarray(333)));
  });

  it("respects the amplitude as a fraction of full scale", () => {
    const tone = generateTone({ hz: 1000, sampleRate: 48000, amplitude: 0.25, startSample: 0, samples: 4800 });
    const peak = tone.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(peak).toBeGreaterThan(0.24 * 32767);
    expect(peak).toBeLessThanOrEqual(Math.ceil(0.25 * 32767));
  });
});

describe("detectTone", () => {
  for (const sampleRate of [8000, 48000]) {
    for (const hz of [440, 1000]) {
      it(`finds ${hz} Hz in 1 s at ${sampleRate} Hz within ±5 Hz`, () => {
        const pcm = generateTone({ hz, sampleRate, amplitude: 0.5, startSample: 12345, samples: sampleRate });
        const result = detectTone(pcm, sampleRate);
        expect(Math.abs(result.hz - hz)).toBeLessThan(5);
        expect(result.levelDbfs).toBeGreaterThan(-10);
        expect(result.levelDbfs).toBeLessThan(-8);
        expect(result.snrDb).toBeGreaterThan(30);
      });
    }
  }

  it("finds an off-bin frequency in a short noisy chunk", () => {
    const sampleRate = 8000;
    const pcm = generateTone({ hz: 697.3, sampleRate, amplitude: 0.3, startSample: 0, samples: 1600 });
    let seed = 1;
    for (let i = 0; i < pcm.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      pcm[i] = (pcm[i] ?? 0) + ((seed % 2001) - 1000);
    }
    const result = detectTone(pcm, sampleRate);
    expect(Math.abs(result.hz - 697.3)).toBeLessThan(5);
    expect(result.snrDb).toBeGreaterThan(10);
  });

  it("reports silence as a very low level and no frequency", () => {
    const result = detectTone(new Int16Array(8000), 8000);
    expect(result.levelDbfs).toBe(SILENCE_DBFS);
    expect(result.hz).toBe(0);
    expect(rmsDbfs(new Int16Array(0))).toBe(SILENCE_DBFS);
  });
});

describe("goertzelPower", () => {
  it("is about 0.5 for a full-scale sine at the probed frequency and tiny elsewhere", () => {
    const pcm = generateTone({ hz: 1000, sampleRate: 8000, amplitude: 1, startSample: 0, samples: 8000 });
    expect(goertzelPower(pcm, 8000, 1000)).toBeCloseTo(0.5, 2);
    expect(goertzelPower(pcm, 8000, 1500)).toBeLessThan(1e-6);
    expect(goertzelPower(new Int16Array(0), 8000, 1000)).toBe(0);
  });
});
