/**
 * What the stall probe of one gateway thread (the main thread or a media worker) reports for one
 * window, and the summary of a window over every thread of every gateway: how many event-loop
 * delays over 10 ms, on which thread, and where their time went.
 */

export interface SampledFunction {
  /** Leaf function and its file (or npm package), or a V8 pseudo-frame like "(garbage collector)". */
  fn: string;
  ms: number;
}

export interface ProbeStall {
  /** Seconds into the window. */
  atS: number;
  durationMs: number;
  /** The stalled thread on a CPU during the stall. */
  onCpuMs: number;
  /** The stalled thread ready to run but waiting for a CPU (another process or thread had it). */
  runQueueMs: number;
  gcMs: Record<string, number>;
  functions: SampledFunction[];
}

export interface ProbeReport {
  /** `main` or `worker-N` (the media worker's index), prefixed `gwN ` when the bench runs several gateways. */
  thread: string;
  windowS: number;
  stallCount: number;
  stallsOver20: number;
  loopDelayMs: { p50: number; p99: number; max: number };
  gcMsByKind: Record<string, number>;
  gcCount: number;
  /** Whether the CPU profiler ran (else no per-function attribution). */
  sampled: boolean;
  /** Sampled CPU time over the whole window by function (self time), longest first. */
  cpuByFunction: SampledFunction[];
  stalls: ProbeStall[];
}

/** What one gateway's main-thread probe returns (as JSON) at the end of a window. */
export interface ProcessProbeReport {
  /** The main thread first, then the media workers by name. */
  threads: ProbeReport[];
  /** Workers probed at the start of the window that sent no report (with the reason when they said). */
  missing: string[];
}

/** Every probed thread's report of one window, over every gateway process. */
export interface WindowProbeReports {
  reports: (ProbeReport & { process: number })[];
  /** Threads probed at the window's start that sent no report (with the reason when they said). */
  missing: string[];
}

/** Where stalls' time went, in ms summed over the stalls. */
export interface StallAttribution {
  runQueueMs: number;
  /** On the CPU in garbage collection, by kind. */
  gcMs: Record<string, number>;
  /** On the CPU, by function (top entries; GC samples excluded, they are under gcMs). */
  functions: SampledFunction[];
  /** Neither on a CPU nor waiting for one: blocked in the kernel (page faults, a synchronous call). */
  blockedMs: number;
}

/** Stall figures of one thread, or (in StallSummary) over every thread: counts and ms summed, maxima over them. */
export interface StallFigures {
  /** Event-loop delays over 10 ms, and over 20 ms. */
  stalls: number;
  over20: number;
  maxMs: number;
  totalMs: number;
  loopDelayP99Ms: number;
  /** The longest event-loop delay in the window (1 ms resolution). */
  loopDelayMaxMs: number;
  attribution: StallAttribution;
}

/** One thread's stalls in a window. */
export interface ThreadStalls extends StallFigures {
  thread: string;
}

/** A window's stalls over every thread of every gateway process. */
export interface StallSummary extends StallFigures {
  /** The same per thread (main first), every thread that reported. */
  byThread: ThreadStalls[];
  /** Threads that were probed at the start of the window but sent no report. */
  missingThreads: string[];
  /** GC over the whole window, by kind, ms (not only during stalls). */
  windowGcMs: Record<string, number>;
  /** Where the gateways' CPU went over the whole window (self time, sampled), longest first. */
  cpuByFunction: SampledFunction[];
  /** The longest stalls, each with its own breakdown and the thread it stalled. */
  worst: (ProbeStall & { process: number; thread: string })[];
}

const GC_FRAME = "(garbage collector)";

/** Where a set of stalls' time went. */
function attributionOf(stalls: ProbeStall[]): StallAttribution {
  const gcMs: Record<string, number> = {};
  const functions = new Map<string, number>();
  let runQueueMs = 0;
  let blockedMs = 0;
  for (const s of stalls) {
    runQueueMs += s.runQueueMs;
    blockedMs += Math.max(0, s.durationMs - s.onCpuMs - s.runQueueMs);
    for (const [k, v] of Object.entries(s.gcMs)) gcMs[k] = (gcMs[k] ?? 0) + v;
    for (const f of s.functions) {
      if (f.fn === GC_FRAME) continue;
      functions.set(f.fn, (functions.get(f.fn) ?? 0) + f.ms);
    }
  }
  return {
    runQueueMs,
    gcMs,
    functions: [...functions.entries()].map(([fn, ms]) => ({ fn, ms })).sort((a, b) => b.ms - a.ms).slice(0, 8),
    blockedMs,
  };
}

/** One thread's figures (the stalls kept in its report are the longest, so counts come from the report). */
function threadStalls(r: ProbeReport): ThreadStalls {
  return {
    thread: r.thread,
    stalls: r.stallCount,
    over20: r.stallsOver20,
    maxMs: Math.max(0, ...r.stalls.map((s) => s.durationMs)),
    totalMs: r.stalls.reduce((a, s) => a + s.durationMs, 0),
    loopDelayP99Ms: r.loopDelayMs.p99,
    loopDelayMaxMs: r.loopDelayMs.max,
    attribution: attributionOf(r.stalls),
  };
}

/**
 * Merges the reports of every probed thread (each tagged with its gateway process) into one
 * window's figures, over all threads and per thread.
 */
export function summarizeStalls(reports: (ProbeReport & { process?: number })[], missingThreads: string[] = []): StallSummary {
  const windowGcMs: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.gcMsByKind)) windowGcMs[k] = (windowGcMs[k] ?? 0) + v;
  const all = reports.flatMap((r, i) => r.stalls.map((s) => ({ ...s, process: r.process ?? i, thread: r.thread })));
  const byThread = reports.map(threadStalls);
  return {
    stalls: byThread.reduce((a, t) => a + t.stalls, 0),
    over20: byThread.reduce((a, t) => a + t.over20, 0),
    maxMs: Math.max(0, ...byThread.map((t) => t.maxMs)),
    totalMs: byThread.reduce((a, t) => a + t.totalMs, 0),
    loopDelayP99Ms: Math.max(0, ...reports.map((r) => r.loopDelayMs.p99)),
    loopDelayMaxMs: Math.max(0, ...reports.map((r) => r.loopDelayMs.max)),
    attribution: attributionOf(all),
    byThread,
    missingThreads,
    windowGcMs,
    cpuByFunction: mergeFunctions(reports.flatMap((r) => r.cpuByFunction ?? []), 15),
    worst: all.sort((a, b) => b.durationMs - a.durationMs).slice(0, 3),
  };
}

function mergeFunctions(list: SampledFunction[], count: number): SampledFunction[] {
  const m = new Map<string, number>();
  for (const f of list) m.set(f.fn, (m.get(f.fn) ?? 0) + f.ms);
  return [...m.entries()].map(([fn, ms]) => ({ fn, ms: Math.round(ms * 10) / 10 })).sort((a, b) => b.ms - a.ms).slice(0, count);
}

/** "3 stalls >10 ms (1 >20 ms, max 24 ms, 52 ms in all): waiting for a CPU 30 ms; GC minor 8 ms; …". */
function describeOne(t: StallFigures): string {
  const parts: string[] = [];
  const ms = (v: number): string => `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  const a = t.attribution;
  if (a.runQueueMs >= 0.5) parts.push(`waiting for a CPU ${ms(a.runQueueMs)}`);
  for (const [k, v] of Object.entries(a.gcMs).sort((x, y) => y[1] - x[1])) if (v >= 0.5) parts.push(`GC ${k} ${ms(v)}`);
  if (a.blockedMs >= 0.5) parts.push(`blocked in the kernel ${ms(a.blockedMs)}`);
  const fns = a.functions.slice(0, 4).map((f) => `${f.fn} ${ms(f.ms)}`);
  if (fns.length) parts.push(`on CPU in: ${fns.join(", ")}`);
  return `${t.stalls} stalls >10 ms (${t.over20} >20 ms, max ${ms(t.maxMs)}, ${ms(t.totalMs)} in all): ${parts.join("; ")}`;
}

/**
 * The window's stalls, one line per thread that had any ("worker-0: 3 stalls >10 ms …"), or one
 * line saying there were none. A summary from before per-thread figures gives one unnamed line.
 */
export function describeStalls(s: StallSummary): string[] {
  const missing = s.missingThreads?.length ? [`no report from ${s.missingThreads.join(", ")}`] : [];
  if (!s.byThread) return [s.stalls === 0 ? "no event-loop delay over 10 ms" : describeOne(s), ...missing];
  const stalled = s.byThread.filter((t) => t.stalls > 0);
  if (stalled.length === 0) return [`no event-loop delay over 10 ms on any thread (${s.byThread.map((t) => t.thread).join(", ")})`, ...missing];
  return [...stalled.map((t) => `${t.thread}: ${describeOne(t)}`), ...missing];
}
