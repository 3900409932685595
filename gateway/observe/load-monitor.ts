/**
 * The measurements behind LoadGuard, taken once a second: how late each media thread's event loop
 * runs (every thread measures its own with a LoopDelayMeter; media workers post theirs to the
 * owner) and how much of the machine's CPU is idle. The owner's LoadMonitor turns them into the
 * admission verdict, the metrics and `/readyz`'s reason.
 */
import { cpus } from "node:os";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import type { Logger } from "pino";
import { LoadGuard, type LoadSample, type LoadState, type OverloadLimits } from "./load-guard.js";

/** The meter's timer period; what it records beyond this is lateness. */
const RESOLUTION_MS = 10;
/** How often the monitor samples, and workers report. */
export const LOAD_SAMPLE_MS = 1_000;

/** How late this thread's event loop runs a 10 ms timer. */
export class LoopDelayMeter {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.#histogram.enable();
  }

  /**
   * p99 of the lateness since the last take, in ms, then starts over. A p99 over a second (about
   * 100 timer runs) passes over one GC pause and shows a loop that keeps running late.
   */
  take(): number {
    const h = this.#histogram;
    const p99 = h.count > 0 ? Math.max(0, h.percentile(99) / 1e6 - RESOLUTION_MS) : 0;
    h.reset();
    return p99;
  }

  close(): void {
    this.#histogram.disable();
  }
}

/** Idle share of all cores' time between two takes (the host's, in a container limited by quota). */
export class IdleCpuMeter {
  #last = cpuTimes();

  take(): number {
    const now = cpuTimes();
    const total = now.total - this.#last.total;
    const idle = now.idle - this.#last.idle;
    this.#last = now;
    return total > 0 ? (100 * idle) / total : 100;
  }
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

export interface LoadSnapshot extends LoadSample {
  state: LoadState;
  /** Why new calls are refused, while they are. */
  reason: string | undefined;
  /** Overloads started since the process did. */
  overloads: number;
}

export interface LoadMonitorOptions {
  limits: OverloadLimits;
  log: Logger;
  /** The owner's own meter when the owner carries media (a gateway without media workers). */
  ownMeter?: LoopDelayMeter;
  sampleMs?: number;
}

/**
 * Samples the load each second and keeps the admission verdict. Without limits configured it
 * still measures (the metrics show how close the machine runs) and never refuses.
 */
export class LoadMonitor {
  readonly #guard: LoadGuard;
  readonly #idle = new IdleCpuMeter();
  readonly #reports = new Map<string, { delayMs: number; at: number }>();
  #latest: LoadSample = { loopDelayMs: 0, idleCpuPercent: 100 };
  #overloads = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: LoadMonitorOptions) {
    this.#guard = new LoadGuard(o.limits);
  }

  start(): void {
    this.#timer ??= setInterval(() => this.sample(), this.o.sampleMs ?? LOAD_SAMPLE_MS).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.o.ownMeter?.close();
  }

  /** A media thread's latest lateness (a worker's once-a-second report). */
  report(thread: string, loopDelayMs: number): void {
    this.#reports.set(thread, { delayMs: loopDelayMs, at: Date.now() });
  }

  /** A thread that is gone reports no more (until then, a thread that falls silent counts as late). */
  forget(thread: string): void {
    this.#reports.delete(thread);
  }

  /** New calls are refused now. */
  get overloaded(): boolean {
    return this.#guard.state === "overloaded";
  }

  /** Why new calls are refused, while they are: `/readyz`'s body. */
  get reason(): string | undefined {
    return this.#guard.reason;
  }

  snapshot(): LoadSnapshot {
    return { ...this.#latest, state: this.#guard.state, reason: this.#guard.reason, overloads: this.#overloads };
  }

  /** One sample now (the timer's work; callable directly where a test drives the clock). */
  sample(): void {
    const now = Date.now();
    let delay = this.o.ownMeter?.take() ?? 0;
    // A worker too busy to report is at least as late as its report is overdue.
    for (const r of this.#reports.values()) delay = Math.max(delay, r.delayMs, now - r.at - LOAD_SAMPLE_MS);
    this.#latest = { loopDelayMs: delay, idleCpuPercent: this.#idle.take() };
    // Without limits the guard never leaves `accepting`.
    const v = this.#guard.observe(this.#latest);
    if (!v.changed) return;
    if (v.state === "overloaded") {
      this.#overloads++;
      this.o.log.warn({ loopDelayMs: round(delay), idleCpuPercent: round(this.#latest.idleCpuPercent), reason: v.reason }, "overloaded: new calls refused");
    } else {
      this.o.log.info({ loopDelayMs: round(delay), idleCpuPercent: round(this.#latest.idleCpuPercent) }, "load back within limits: new calls taken");
    }
  }
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
