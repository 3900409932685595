import type { GatewayInstance } from "../orchestrator/gateways.js";
import { scrapeGateway, waitGatewaysIdle } from "../orchestrator/gateways.js";
import { heapAfterGc } from "../orchestrator/heap.js";
import type { LoadgenClient } from "../orchestrator/loadgen-client.js";
import type { Plan } from "../orchestrator/plan.js";
import { readUdpTable, sampleProcess, UsageMeter } from "../orchestrator/proc-stats.js";
import type { ChurnResultSummary, ResourceSnapshot } from "../orchestrator/results.js";
import { sleep, split } from "../util/async.js";

/**
 * Many short calls in sequence (a few lanes in parallel so the run stays short), with the
 * gateways' memory, descriptors and UDP sockets compared before and after, each time once every
 * gateway reports no active call. Heap figures are taken after a full collection.
 */
export async function runChurn(gateways: GatewayInstance[], loadgens: LoadgenClient[], plan: Plan, calls: number): Promise<ChurnResultSummary> {
  await waitGatewaysIdle(gateways, 15_000);
  await sleep(1000);
  const before = await snapshot(gateways);
  // In rounds, with the heap after a full collection at each boundary: caches that fill up level
  // off, a leak keeps climbing.
  const rounds = calls >= 1000 ? 4 : 2;
  const heapCurveMB: { calls: number; heapMB: number; rssMB: number }[] = [{ calls: 0, heapMB: before.heapUsedMB, rssMB: before.rssMB }];
  const results: { completed: number; failed: number; errors: string[] }[] = [];
  const lanes = split(plan.churnLanes, loadgens.length);
  let done = 0;
  // CPU is summed over the rounds only: the waits and heap collections between them are not calls.
  const cpu = { gatewayS: 0, loadgenS: 0 };
  const started = performance.now();
  for (const roundCalls of split(calls, rounds)) {
    const counts = split(roundCalls, loadgens.length);
    const meter = new UsageMeter([...gateways.map((g) => g.process.pid), ...loadgens.map((lg) => lg.pid)]);
    results.push(
      ...(await Promise.all(
        loadgens.map((lg, i) =>
          lg.request("churn", { count: counts[i] ?? 0, lanes: Math.max(1, lanes[i] ?? 1), packets: plan.churnPackets, timeoutMs: 15_000 }, 60 * 60_000),
        ),
      )),
    );
    const used = meter.finish();
    for (const g of gateways) cpu.gatewayS += (used.cores.get(g.process.pid) ?? 0) * used.seconds;
    for (const lg of loadgens) cpu.loadgenS += (used.cores.get(lg.pid) ?? 0) * used.seconds;
    done += roundCalls;
    if (done < calls) {
      await waitGatewaysIdle(gateways, 30_000);
      const point = await snapshot(gateways);
      heapCurveMB.push({ calls: done, heapMB: point.heapUsedMB, rssMB: point.rssMB });
    }
  }
  const durationS = (performance.now() - started) / 1000;
  await waitGatewaysIdle(gateways, 30_000);
  await sleep(plan.churnSettleMs);
  const after = await snapshot(gateways);
  heapCurveMB.push({ calls, heapMB: after.heapUsedMB, rssMB: after.rssMB });
  return {
    calls,
    lanes: plan.churnLanes,
    completed: results.reduce((a, r) => a + r.completed, 0),
    failed: results.reduce((a, r) => a + r.failed, 0),
    errors: results.flatMap((r) => r.errors).slice(0, 5),
    durationS,
    before,
    after,
    leakedFds: after.fds - before.fds,
    leakedUdpSockets: after.udpSockets - before.udpSockets,
    rssGrowthMB: after.rssMB - before.rssMB,
    heapGrowthMB: after.heapUsedMB - before.heapUsedMB,
    heapCurveMB,
    cpuMsPerCall: { gateway: (1000 * cpu.gatewayS) / calls, loadgen: (1000 * cpu.loadgenS) / calls },
  };
}

/** Heap in use summed over the gateways, after a full collection where the inspector is open. */
async function heapInUse(gateways: GatewayInstance[]): Promise<number> {
  let total = 0;
  for (const g of gateways) {
    total += g.inspectorUrl ? await heapAfterGc(g.inspectorUrl) : await scrapeGateway(g).then((m) => m.heapUsedMB, () => 0);
  }
  return total;
}

/** Summed over the gateway processes. */
async function snapshot(gateways: GatewayInstance[]): Promise<ResourceSnapshot> {
  const udp = readUdpTable();
  const total: ResourceSnapshot = { rssMB: 0, fds: 0, udpSockets: 0, heapUsedMB: 0 };
  total.heapUsedMB = await heapInUse(gateways);
  for (const g of gateways) {
    const s = sampleProcess(g.process.pid, udp);
    if (s) {
      total.rssMB += s.rssMB;
      total.fds += s.fds;
      total.udpSockets += s.udpSockets;
    }
  }
  return total;
}
