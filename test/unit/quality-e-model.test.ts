import { describe, expect, it } from "vitest";
import { delayImpairment, effectiveEquipmentImpairment, mosFromR, transmissionRating } from "../../gateway/quality/e-model.js";

describe("G.107 E-model", () => {
  it("gives R = 93.2 with every parameter at its default (G.107 §7.1)", () => {
    const rating = transmissionRating({ oneWayDelayMs: 0, segments: [] });
    expect(rating.r).toBeCloseTo(93.2, 1);
    expect(rating.mos).toBeCloseTo(4.41, 2);
  });

  it("maps R to MOS per Annex B, clamped to 1 and 4.5", () => {
    expect(mosFromR(-5)).toBe(1);
    expect(mosFromR(0)).toBe(1);
    expect(mosFromR(100)).toBe(4.5);
    expect(mosFromR(120)).toBe(4.5);
    // 1 + 0.035·50 + 50·(−10)·50·7e-6
    expect(mosFromR(50)).toBeCloseTo(2.575, 6);
    expect(mosFromR(80)).toBeCloseTo(1 + 0.035 * 80 + 80 * 20 * 20 * 7e-6, 9);
  });

  it("adds no pure-delay impairment up to 100 ms and follows G.114's curve beyond", () => {
    // Below 100 ms only the (small) echo terms remain at the default TELR/WEPL.
    expect(delayImpairment(100)).toBeLessThan(3);
    const r = (ta: number): number => transmissionRating({ oneWayDelayMs: ta, segments: [] }).r;
    // G.114 Figure 1 (E-model, default parameters): about 90 at 150 ms, 73 at 300 ms, 62 at 400 ms.
    expect(r(150)).toBeGreaterThan(88.5);
    expect(r(150)).toBeLessThan(91);
    expect(r(300)).toBeGreaterThan(71);
    expect(r(300)).toBeLessThan(75);
    expect(r(400)).toBeGreaterThan(60);
    expect(r(400)).toBeLessThan(64);
    expect(r(200)).toBeLessThan(r(150));
  });

  it("computes Ie,eff per G.107 (3-30) for random and bursty loss", () => {
    // G.711 with PLC (Bpl 25.1), 5 % random loss: 95·5/(5+25.1).
    expect(effectiveEquipmentImpairment({ ie: 0, bpl: 25.1, lossRatio: 0.05, burstRatio: 1 })).toBeCloseTo((95 * 5) / 30.1, 6);
    // The same loss in bursts (BurstR 2) hurts more.
    const bursty = effectiveEquipmentImpairment({ ie: 0, bpl: 25.1, lossRatio: 0.05, burstRatio: 2 });
    expect(bursty).toBeCloseTo((95 * 5) / (2.5 + 25.1), 6);
    // No loss: the codec's own impairment only.
    expect(effectiveEquipmentImpairment({ ie: 11, bpl: 19, lossRatio: 0, burstRatio: 1 })).toBe(11);
    // A BurstR below 1 is not meaningful here and counts as random loss.
    expect(effectiveEquipmentImpairment({ ie: 0, bpl: 4.3, lossRatio: 0.01, burstRatio: 0.5 })).toBeCloseTo(95 / 5.3, 6);
  });

  it("lowers MOS with loss, more without concealment, and adds tandem segments", () => {
    const clean = transmissionRating({ oneWayDelayMs: 60, segments: [{ ie: 0, bpl: 25.1, lossRatio: 0, burstRatio: 1 }] });
    const plc = transmissionRating({ oneWayDelayMs: 60, segments: [{ ie: 0, bpl: 25.1, lossRatio: 0.05, burstRatio: 1 }] });
    const noPlc = transmissionRating({ oneWayDelayMs: 60, segments: [{ ie: 0, bpl: 4.3, lossRatio: 0.05, burstRatio: 1 }] });
    expect(plc.mos).toBeLessThan(clean.mos - 0.3);
    expect(noPlc.mos).toBeLessThan(plc.mos - 1);
    const tandem = transmissionRating({
      oneWayDelayMs: 60,
      segments: [
        { ie: 0, bpl: 25.1, lossRatio: 0.05, burstRatio: 1 },
        { ie: 0, bpl: 25.1, lossRatio: 0.05, burstRatio: 1 },
      ],
    });
    expect(tandem.ieEff).toBeCloseTo(2 * plc.ieEff, 6);
  });
});
