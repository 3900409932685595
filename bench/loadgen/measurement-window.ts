import { monitorEventLoopDelay } from "node:perf_hooks";
import type { DirectionCounters, JitterCount, WindowReport } from "../ipc.js";
import { Histogram } from "../stats/histogram.js";
import type { BenchCall } from "./bench-call.js";
import type { StreamReceiver } from "./stream-receiver.js";

type Snapshot = { toPbx: DirectionCounters; toMeta: DirectionCounters };

function counters(r: StreamReceiver, sent: number): DirectionCounters {
  const c = r.counters;
  return { sent, received: c.received, lost: c.lost, mapped: c.mapped, unmapped: c.unmapped, reanchored: c.reanchored };
}

function snapshot(call: BenchCall): Snapshot {
  return { toPbx: counters(call.toPbx, call.toPbxSender.packetsSent), toMeta: counters(call.toMeta, call.toMetaSender.packetsSent) };
}

/**
 * One measurement window over the calls up when it opens: latency histograms fill while it is
 * open, and packet counters are the difference between its end and its start. The process's own
 * event-loop delay is reported with it, since it bounds how late this process notices arrivals.
 */
export class MeasurementWindow {
  readonly toPbx = new Histogram();
  readonly toMeta = new Histogram();
  private readonly startedAt = performance.now();
  private readonly before = new Map<BenchCall, Snapshot>();
  private readonly failedBefore: number;

  constructor(
    calls: Iterable<BenchCall>,
    private readonly loopDelay: ReturnType<typeof monitorEventLoopDelay>,
    private readonly jitterBudgetMs: number,
  ) {
    let failed = 0;
    for (const call of calls) {
      this.before.set(call, snapshot(call));
      // Samples from before the window opened are not part of it.
      call.toPbx.takeWindow(0);
      call.toMeta.takeWindow(0);
      if (call.state === "failed") failed++;
    }
    this.failedBefore = failed;
    loopDelay.reset();
  }

  /** Where a call's latency samples go: nowhere for a call that was not up when the window opened. */
  sinkFor(call: BenchCall, dir: "toPbx" | "toMeta"): Histogram | undefined {
    return this.before.has(call) ? this[dir] : undefined;
  }

  close(): WindowReport {
    const zero = (): DirectionCounters => ({ sent: 0, received: 0, lost: 0, mapped: 0, unmapped: 0, reanchored: 0 });
    const sum = { toPbx: zero(), toMeta: zero() };
    const jitter: { toPbx: JitterCount; toMeta: JitterCount } = { toPbx: { samples: 0, withinBudget: 0 }, toMeta: { samples: 0, withinBudget: 0 } };
    let failed = 0;
    for (const [call, before] of this.before) {
      if (call.state === "failed") failed++;
      const now = snapshot(call);
      for (const dir of ["toPbx", "toMeta"] as const) {
        for (const key of Object.keys(sum[dir]) as (keyof DirectionCounters)[]) sum[dir][key] += now[dir][key] - before[dir][key];
        const j = call[dir].takeWindow(this.jitterBudgetMs);
        jitter[dir].samples += j.samples;
        jitter[dir].withinBudget += j.withinBudget;
      }
    }
    return {
      durationMs: performance.now() - this.startedAt,
      activeCalls: this.before.size,
      failedCalls: Math.max(0, failed - this.failedBefore),
      toPbx: { latency: this.toPbx.toData(), counters: sum.toPbx, jitter: jitter.toPbx },
      toMeta: { latency: this.toMeta.toData(), counters: sum.toMeta, jitter: jitter.toMeta },
      loopDelayP99Ms: this.loopDelay.percentile(99) / 1e6,
      loopDelayMaxMs: this.loopDelay.max / 1e6,
    };
  }
}
