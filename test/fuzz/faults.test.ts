import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultInjector } from "../../scripts/fuzz/faults.js";
import { ensureBuilt, type ResourceSample } from "../../scripts/fuzz/gateway-process.js";
import { formatResources, type FaultResult } from "../../scripts/fuzz/report.js";
import { faultRigOptions, FuzzRig, leakFigures, leakProblems, warmUp } from "../../scripts/fuzz/suite.js";

/**
 * Faults injected into the built gateway running as its own process, each checked from outside on
 * both legs: a transcoder killed, a PBX or Meta's edge gone silent or away, every Graph action
 * failing or hanging, more calls than admitted, and SIGTERM with calls up.
 */
describe("faults injected into the gateway process", () => {
  let rig: FuzzRig;
  let faults: FaultInjector;
  let baseline: ResourceSample;

  beforeAll(async () => {
    ensureBuilt();
    rig = await FuzzRig.start(faultRigOptions("fuzz-faults", [45000, 45999]));
    faults = new FaultInjector(rig, { tolerateKnown: true });
    baseline = await warmUp(rig);
  }, 120_000);

  afterAll(async () => {
    await rig?.stop();
  });

  const ok = (results: FaultResult[]): void => {
    expect(results.filter((r) => !r.ok).map((r) => `${r.fault}: ${r.detail}`)).toEqual([]);
  };

  it("ffmpeg killed mid-video-call: a keyframe at the phone within 2 s, audio untouched", async () => {
    ok([await faults.ffmpegKilled()]);
  });

  it("the PBX falls silent, the PBX vanishes, Meta's edge stops: each call ends on both legs and is freed", async () => {
    ok(await Promise.all([faults.pbxStopsRtp(), faults.pbxVanishes(), faults.metaEdgeStops()]));
  });

  it("every Graph action failing, then hanging: each call ends or is refused cleanly", async () => {
    const results = await faults.graphFaults();
    expect(results.length).toBe(14);
    ok(results);
  });

  it("a burst of connects over MAX_CONCURRENT_CALLS: the excess rejected at Meta, never rung", async () => {
    ok([await faults.connectBurst()]);
  });

  it("leaves no call, descriptor, UDP port, child process or heap behind", async () => {
    const figures = await leakFigures(rig, baseline);
    expect(leakProblems(figures), formatResources(figures).join("\n")).toEqual([]);
    expect(rig.gateway.log.uncaught).toEqual([]);
  });

  it("SIGTERM with live calls of both directions: both end on both legs, exit 0", async () => {
    ok([await faults.sigtermWithLiveCalls()]);
  });
});
