import { describe, expect, it } from "vitest";
import { burstDemand } from "../../bench/orchestrator/burst-demand.js";

describe("bench burst demand", () => {
  it("weighs the burst's set-up CPU against what the live calls leave spare", () => {
    const d = burstDemand(50, { gateway: 20, loadgen: 14 }, { cores: 0.75, loadgenCores: 0.3, otherCores: 0.05 }, 2);
    expect(d.askedCoreSeconds).toBeCloseTo(1.7, 10);
    expect(d.spareCores).toBeCloseTo(0.9, 10);
    expect(d.saturatedS).toBeCloseTo(1.7 / 0.9, 10);
  });

  it("has no flat-out time when the live calls already use every core", () => {
    const d = burstDemand(50, { gateway: 20, loadgen: 14 }, { cores: 1.6, loadgenCores: 0.5, otherCores: 0 }, 2);
    expect(d.spareCores).toBe(0);
    expect(d.saturatedS).toBeNull();
  });
});
