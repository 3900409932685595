import type { AddCallsResult, SetupSample } from "../ipc.js";
import type { LoadgenClient } from "../orchestrator/loadgen-client.js";
import type { SetupResult, SetupStats } from "../orchestrator/results.js";
import { percentiles } from "../stats/histogram.js";
import { split } from "../util/async.js";

/**
 * Call set-up measured from outside the gateway, on idle gateways: connect webhook POSTed →
 * INVITE at the PBX, and PBX 200 OK sent → accept at the Graph API. First one call at a time per
 * gateway, then `burstCalls` calls arriving at once.
 */
export async function runSetup(loadgens: LoadgenClient[], sequentialCalls: number, burstCalls: number): Promise<SetupResult> {
  const sequential = await round(loadgens, sequentialCalls, () => 1);
  const burst = await round(loadgens, burstCalls, (share) => share);
  return { sequential, burst };
}

async function round(loadgens: LoadgenClient[], calls: number, concurrency: (share: number) => number): Promise<SetupResult["sequential"]> {
  const shares = split(calls, loadgens.length);
  const results: AddCallsResult[] = await Promise.all(
    loadgens.map((lg, i) => lg.request("addCalls", { count: shares[i] ?? 0, concurrency: Math.max(1, concurrency(shares[i] ?? 0)), timeoutMs: 20_000 }, 5 * 60_000)),
  );
  await Promise.all(loadgens.map((lg) => lg.request("hangupAll", { concurrency: 25, timeoutMs: 15_000 }, 5 * 60_000)));
  const samples = results.flatMap((r) => r.setup);
  return {
    calls,
    inviteMs: stats(samples, "inviteMs"),
    acceptMs: stats(samples, "acceptMs"),
    mediaUpMs: stats(samples, "mediaUpMs"),
    failed: results.reduce((a, r) => a + r.failed, 0),
  };
}

function stats(samples: SetupSample[], key: keyof SetupSample): SetupStats {
  return percentiles(samples.flatMap((s) => (s[key] === undefined ? [] : [s[key]])));
}
