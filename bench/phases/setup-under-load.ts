import type { AddCallsResult } from "../ipc.js";
import type { Plan } from "../orchestrator/plan.js";
import type { SetupUnderLoadResult, StepResult } from "../orchestrator/results.js";
import { percentiles } from "../stats/histogram.js";
import { sleep, split } from "../util/async.js";
import { measure, type SystemUnderTest } from "./density.js";

/**
 * Call set-up while calls are live: `plan.setupUnderLoad.liveCalls` calls carry audio while new
 * calls arrive at a steady rate (one window), then all at once (a burst, a second window). The
 * windows judge only the live calls' packets; the new calls give the set-up times. What must not
 * happen is the new calls' certificates, handshakes, SDP work and sockets pushing live audio late.
 */
export async function runSetupUnderLoad(sut: SystemUnderTest, plan: Plan, idleRssMB: number, log: (s: string) => void): Promise<SetupUnderLoadResult> {
  const { liveCalls, ratePerSecond, burstCalls } = plan.setupUnderLoad;
  const lgs = sut.loadgens;
  const added = await Promise.all(
    split(liveCalls, lgs.length).map((n, i) => lgs[i]!.request("addCalls", { count: n, concurrency: plan.rampConcurrency, timeoutMs: plan.callUpTimeoutMs }, 10 * 60_000)),
  );
  await sleep(plan.settleMs);

  // The live calls alone, profiled: where their CPU goes when nothing else happens (the ramp's
  // windows go without the profiler, since their CPU is a reported figure).
  const profiled = await measure(sut, liveCalls, plan, added, idleRssMB, { sampled: true });
  log(`${liveCalls} live calls, profiled: ${share(profiled)} within 20 ms`);

  // Steady arrivals: the load generators take turns, so the gateways see one call every 1/rate s.
  const steadyCount = Math.max(1, Math.round((ratePerSecond * plan.windowMs) / 1000));
  const intervalMs = 1000 / ratePerSecond;
  let steadyResults: AddCallsResult[] = [];
  const steadyArrivals = async (): Promise<void> => {
    steadyResults = await Promise.all(
      split(steadyCount, lgs.length).map(async (n, i) => {
        await sleep(i * intervalMs);
        return lgs[i]!.request("arrivals", { count: n, intervalMs: intervalMs * lgs.length, timeoutMs: plan.callUpTimeoutMs }, 5 * 60_000);
      }),
    );
  };
  const steadyWindow = await measure(sut, liveCalls, plan, added, idleRssMB, { sampled: true, during: steadyArrivals });
  const steady = { ratePerSecond, ...arrivalsOf(steadyCount, steadyResults), window: steadyWindow };
  log(`set-up under load, ${liveCalls} live calls + ${ratePerSecond} new/s: live ${share(steadyWindow)} within 20 ms, 200 OK→accept p50 ${steady.acceptMs.p50.toFixed(1)} ms`);
  await sleep(plan.settleMs);

  let burstResults: AddCallsResult[] = [];
  const burstArrivals = async (): Promise<void> => {
    burstResults = await Promise.all(
      split(burstCalls, lgs.length).map((n, i) => lgs[i]!.request("arrivals", { count: n, intervalMs: 0, timeoutMs: plan.callUpTimeoutMs }, 5 * 60_000)),
    );
  };
  const burstWindow = await measure(sut, liveCalls, plan, added, idleRssMB, { sampled: true, during: burstArrivals });
  const burst = { ...arrivalsOf(burstCalls, burstResults), window: burstWindow };
  log(`set-up under load, ${liveCalls} live calls + ${burstCalls} at once: live ${share(burstWindow)} within 20 ms, 200 OK→accept p50 ${burst.acceptMs.p50.toFixed(1)} ms`);
  await Promise.all(lgs.map((lg) => lg.request("hangupAll", { concurrency: 25, timeoutMs: 15_000 }, 120_000).catch(() => undefined)));
  return { liveCalls, profiled, steady, burst };
}

function arrivalsOf(calls: number, results: AddCallsResult[]): Omit<SetupUnderLoadResult["burst"], "window"> {
  const samples = results.flatMap((r) => r.setup);
  const pick = (k: "inviteMs" | "acceptMs" | "mediaUpMs") => percentiles(samples.flatMap((s) => (s[k] === undefined ? [] : [s[k]])));
  return { calls, failed: results.reduce((a, r) => a + r.failed, 0), inviteMs: pick("inviteMs"), acceptMs: pick("acceptMs"), mediaUpMs: pick("mediaUpMs") };
}

/** The worse direction's share of live packets out within 20 ms. */
export function share(s: StepResult): string {
  return `${(100 * Math.min(s.toPbx.withinDeadline, s.toMeta.withinDeadline)).toFixed(2)}%`;
}
