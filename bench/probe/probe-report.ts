/**
 * What the stall probe of one gateway process reports for one window, and the summary of a
 * window over every gateway: how many event-loop delays over 10 ms, and where their time went.
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
  /** The main thread on a CPU during the stall. */
  onCpuMs: number;
  /** The main thread ready to run but waiting for a CPU (another process or thread had it). */
  runQueueMs: number;
  gcMs: Record<string, number>;
  functions: SampledFunction[];
}

export interface ProbeReport {
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

/** A window's stalls over every gateway process. */
export interface StallSummary {
  /** Event-loop delays over 10 ms, and over 20 ms, summed over the processes. */
  stalls: number;
  over20: number;
  maxMs: number;
  totalMs: number;
  loopDelayP99Ms: number;
  /** The longest event-loop delay in the window (1 ms resolution), over the processes. */
  loopDelayMaxMs: number;
  /** Where the stalls' time went, in ms summed over every stall. */
  attribution: {
    runQueueMs: number;
    /** On the CPU in garbage collection, by kind. */
    gcMs: Record<string, number>;
    /** On the CPU, by function (top entries; GC samples excluded, they are under gcMs). */
    functions: SampledFunction[];
    /** Neither on a CPU nor waiting for one: blocked in the kernel (page faults, a synchronous call). */
    blockedMs: number;
  };
  /** GC over the whole window, by kind, ms (not only during stalls). */
  windowGcMs: Record<string, number>;
  /** Where the gateways' CPU went over the whole window (self time, sampled), longest first. */
  cpuByFunction: SampledFunction[];
  /** The longest stalls, each with its own breakdown. */
  worst: (ProbeStall & { process: number })[];
}

const GC_FRAME = "(garbage collector)";

export function summarizeStalls(reports: ProbeReport[]): StallSummary {
  const gcMs: Record<string, number> = {};
  const windowGcMs: Record<string, number> = {};
  const functions = new Map<string, number>();
  let runQueueMs = 0;
  let blockedMs = 0;
  let totalMs = 0;
  let maxMs = 0;
  const all: (ProbeStall & { process: number })[] = [];
  for (const [i, r] of reports.entries()) {
    for (const [k, v] of Object.entries(r.gcMsByKind)) windowGcMs[k] = (windowGcMs[k] ?? 0) + v;
    for (const s of r.stalls) {
      all.push({ ...s, process: i });
      totalMs += s.durationMs;
      maxMs = Math.max(maxMs, s.durationMs);
      runQueueMs += s.runQueueMs;
      blockedMs += Math.max(0, s.durationMs - s.onCpuMs - s.runQueueMs);
      for (const [k, v] of Object.entries(s.gcMs)) gcMs[k] = (gcMs[k] ?? 0) + v;
      for (const f of s.functions) {
        if (f.fn === GC_FRAME) continue;
        functions.set(f.fn, (functions.get(f.fn) ?? 0) + f.ms);
      }
    }
  }
  return {
    stalls: reports.reduce((a, r) => a + r.stallCount, 0),
    over20: reports.reduce((a, r) => a + r.stallsOver20, 0),
    maxMs,
    totalMs,
    loopDelayP99Ms: Math.max(0, ...reports.map((r) => r.loopDelayMs.p99)),
    loopDelayMaxMs: Math.max(0, ...reports.map((r) => r.loopDelayMs.max)),
    attribution: {
      runQueueMs,
      gcMs,
      functions: [...functions.entries()].map(([fn, ms]) => ({ fn, ms })).sort((a, b) => b.ms - a.ms).slice(0, 8),
      blockedMs,
    },
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

/** One line: "3 stalls >10 ms (1 >20 ms, max 24 ms, 52 ms in all): CPU wait 30 ms, GC minor 8 ms, …". */
export function describeStalls(s: StallSummary): string {
  if (s.stalls === 0) return "no event-loop delay over 10 ms";
  const parts: string[] = [];
  const ms = (v: number): string => `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  if (s.attribution.runQueueMs >= 0.5) parts.push(`waiting for a CPU ${ms(s.attribution.runQueueMs)}`);
  for (const [k, v] of Object.entries(s.attribution.gcMs).sort((a, b) => b[1] - a[1])) if (v >= 0.5) parts.push(`GC ${k} ${ms(v)}`);
  if (s.attribution.blockedMs >= 0.5) parts.push(`blocked in the kernel ${ms(s.attribution.blockedMs)}`);
  const fns = s.attribution.functions.slice(0, 4).map((f) => `${f.fn} ${ms(f.ms)}`);
  if (fns.length) parts.push(`on CPU in: ${fns.join(", ")}`);
  return `${s.stalls} stalls >10 ms (${s.over20} >20 ms, max ${ms(s.maxMs)}, ${ms(s.totalMs)} in all): ${parts.join("; ")}`;
}
