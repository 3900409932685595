/**
 * Loaded into each gateway process by the bench (`node --import …/stall-probe.js`), never by the
 * gateway itself. Node evaluates `--import` modules again in every worker thread, so each thread
 * (the main thread and every media worker) has its own probe. During a measurement window each
 * records every event-loop delay over 10 ms on its thread and says where the time went: waiting
 * for a CPU (that thread's run-queue delay from its own /proc/thread-self/schedstat), garbage
 * collection by kind (a `gc` PerformanceObserver, per isolate), and the functions on the CPU
 * (V8's sampling profiler through an in-process inspector session on that thread).
 *
 * The orchestrator drives the main thread's probe over the inspector it already opens
 * (`globalThis.__benchStallProbe`); that probe passes start, mark and stop on to the workers'
 * probes over a BroadcastChannel and gathers their reports, so one call returns every thread's.
 *
 * All times are microseconds on CLOCK_MONOTONIC, the clock of process.hrtime and of V8's profiler.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { constants, monitorEventLoopDelay, PerformanceObserver, performance } from "node:perf_hooks";
import { BroadcastChannel, isMainThread, threadId, workerData } from "node:worker_threads";
import type { ProbeReport, ProbeStall, ProcessProbeReport, SampledFunction } from "./probe-report.js";

const TICK_MS = 5;
/** A delay past this is a stall. */
const STALL_MS = 10;
/** Attribution of up to this many stalls is kept per window (the longest). */
const MAX_STALLS_KEPT = 200;
/** The channel between the main thread's probe and the workers'. */
const CHANNEL = "bench-stall-probe";
/** A worker that has not started its probe by then is left out of the window. */
const WORKER_START_MS = 5000;
/** A worker that has not sent its report by then is named as missing (the orchestrator waits 30 s in all). */
const WORKER_REPORT_MS = 20_000;

interface Span {
  startUs: number;
  endUs: number;
}
interface GcSpan extends Span {
  kind: string;
}
interface OpenStall extends Span {
  cpuNs: number;
  waitNs: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
/** performance.now() (ms since the time origin) → monotonic µs. */
const perfOffsetUs = nowUs() - performance.now() * 1000;

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor (scavenge)",
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major (mark-compact)",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental marking",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weak callbacks",
};

/**
 * This thread's CPU time and run-queue wait, in ns (0 where /proc is not there). Opened by the
 * thread that reads it: /proc/thread-self is resolved at open.
 */
class SchedStat {
  private readonly fd: number | undefined;
  private readonly buf = Buffer.alloc(128);
  constructor() {
    try {
      this.fd = openSync("/proc/thread-self/schedstat", "r");
    } catch {
      this.fd = undefined;
    }
  }
  read(): { cpuNs: number; waitNs: number } {
    if (this.fd === undefined) return { cpuNs: 0, waitNs: 0 };
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    const [cpu, wait] = this.buf.toString("latin1", 0, n).split(" ");
    return { cpuNs: Number(cpu), waitNs: Number(wait) };
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
  }
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

class StallProbe {
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private lastTickUs = 0;
  private lastSched = { cpuNs: 0, waitNs: 0 };
  private stalls: OpenStall[] = [];
  private gc: GcSpan[] = [];
  private startedUs = 0;
  /** Profiler samples before this are not the window's. */
  private markedUs = 0;
  private readonly sched = new SchedStat();
  constructor(private readonly thread: string) {}
  private readonly histogram = monitorEventLoopDelay({ resolution: 1 });
  private readonly observer = new PerformanceObserver((list) => {
    if (!this.running) return;
    for (const e of list.getEntries()) {
      const kind = GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? "other";
      const startUs = perfOffsetUs + e.startTime * 1000;
      this.gc.push({ startUs, endUs: startUs + e.duration * 1000, kind });
    }
  });
  private session: Session | undefined;

  async start(sampleIntervalUs: number): Promise<void> {
    if (this.running) await this.stop();
    this.stalls = [];
    this.gc = [];
    this.histogram.reset();
    this.histogram.enable();
    this.observer.observe({ entryTypes: ["gc"] });
    if (sampleIntervalUs > 0) {
      this.session = new Session();
      this.session.connect();
      await this.session.post("Profiler.enable");
      await this.session.post("Profiler.setSamplingInterval", { interval: sampleIntervalUs });
      await this.session.post("Profiler.start");
    }
    this.running = true;
    this.mark();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Starts the window afresh: what happened before (the profiler's own start) is not counted. */
  mark(): void {
    this.stalls = [];
    this.gc = [];
    this.histogram.reset();
    this.startedUs = nowUs();
    this.lastTickUs = this.startedUs;
    this.lastSched = this.sched.read();
    this.markedUs = this.startedUs;
  }

  private tick(): void {
    const now = nowUs();
    const sched = this.sched.read();
    const delayUs = now - this.lastTickUs - TICK_MS * 1000;
    if (delayUs > STALL_MS * 1000) {
      this.stalls.push({
        startUs: this.lastTickUs + TICK_MS * 1000,
        endUs: now,
        cpuNs: sched.cpuNs - this.lastSched.cpuNs,
        waitNs: sched.waitNs - this.lastSched.waitNs,
      });
    }
    this.lastTickUs = now;
    this.lastSched = sched;
  }

  async stop(): Promise<ProbeReport> {
    const endUs = nowUs();
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram.disable();
    this.observer.disconnect();
    let profile: CpuProfile | undefined;
    if (this.session) {
      profile = ((await this.session.post("Profiler.stop")) as { profile: CpuProfile }).profile;
      await this.session.post("Profiler.disable");
      this.session.disconnect();
      this.session = undefined;
    }
    return this.report(endUs, profile);
  }

  private report(endUs: number, profile: CpuProfile | undefined): ProbeReport {
    const samples = profile ? flattenSamples(profile) : [];
    const gcTotals: Record<string, number> = {};
    for (const g of this.gc) gcTotals[g.kind] = (gcTotals[g.kind] ?? 0) + (g.endUs - g.startUs) / 1000;
    const kept = [...this.stalls].sort((a, b) => b.endUs - b.startUs - (a.endUs - a.startUs)).slice(0, MAX_STALLS_KEPT);
    const stalls: ProbeStall[] = kept.map((s) => this.attribute(s, samples));
    const h = this.histogram;
    return {
      thread: this.thread,
      windowS: (endUs - this.startedUs) / 1e6,
      stallCount: this.stalls.length,
      stallsOver20: this.stalls.filter((s) => s.endUs - s.startUs > 20_000).length,
      loopDelayMs: { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 },
      gcMsByKind: gcTotals,
      gcCount: this.gc.length,
      sampled: profile !== undefined,
      cpuByFunction: topFunctions(samples, this.markedUs, Number.POSITIVE_INFINITY, 25),
      stalls,
    };
  }

  /** Where one stall's time went. */
  private attribute(s: OpenStall, samples: Sample[]): ProbeStall {
    const durationMs = (s.endUs - s.startUs) / 1000;
    const gcMs: Record<string, number> = {};
    for (const g of this.gc) {
      const overlap = Math.min(g.endUs, s.endUs) - Math.max(g.startUs, s.startUs);
      if (overlap > 0) gcMs[g.kind] = (gcMs[g.kind] ?? 0) + overlap / 1000;
    }
    const functions = topFunctions(samples, s.startUs, s.endUs, 6);
    return {
      atS: (s.startUs - this.startedUs) / 1e6,
      durationMs,
      // The tick that saw the stall spans a little more than the stall: clamp to its length.
      onCpuMs: Math.min(durationMs, s.cpuNs / 1e6),
      runQueueMs: Math.min(durationMs, s.waitNs / 1e6),
      gcMs,
      functions,
    };
  }
}

/** Sampled time per function between two instants, longest first. */
function topFunctions(samples: Sample[], fromUs: number, toUs: number, count: number): SampledFunction[] {
  const byFunction = new Map<string, number>();
  for (const x of samples) {
    if (x.atUs < fromUs || x.atUs >= toUs) continue;
    byFunction.set(x.fn, (byFunction.get(x.fn) ?? 0) + x.weightUs / 1000);
  }
  return [...byFunction.entries()]
    .map(([fn, ms]) => ({ fn, ms }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, count);
}

interface Sample {
  atUs: number;
  weightUs: number;
  fn: string;
}

/**
 * Every profiler sample with its time, its weight (the time to the next sample, capped, so a gap
 * where the thread was off the CPU is not charged to the function it was in) and a label: the
 * leaf function with its file, or the package it belongs to.
 */
function flattenSamples(p: CpuProfile): Sample[] {
  const labels = labelNodes(p.nodes);
  const ids = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  const out: Sample[] = [];
  let t = p.startTime;
  for (let i = 0; i < ids.length; i++) {
    t += deltas[i] ?? 0;
    const next = deltas[i + 1] ?? 0;
    const fn = labels.get(ids[i]!) ?? "?";
    if (fn === "(idle)") continue;
    out.push({ atUs: t, weightUs: Math.min(next, 5000), fn });
  }
  return out;
}

/**
 * A label per profile node: the function and its file (or npm package). A native leaf (a binding
 * such as a UDP send, which has no file) is named with its nearest JavaScript caller, and so is
 * WebAssembly, whose function numbers say nothing: all of it under one caller counts as one
 * `wasm ← caller` entry. A native addon's methods share one C++ entry point (node-addon-api), so
 * V8 names them after whichever method it met first: one called from outside Node's own modules
 * is `native ← caller`.
 */
function labelNodes(nodes: CpuProfileNode[]): Map<number, string> {
  const parent = new Map<number, number>();
  const byId = new Map<number, CpuProfileNode>();
  for (const n of nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const labels = new Map<number, string>();
  for (const n of nodes) {
    const f = n.callFrame;
    if (isScript(f) || f.functionName.startsWith("(")) {
      labels.set(n.id, label(f));
      continue;
    }
    let up = parent.get(n.id);
    while (up !== undefined && !isScript(byId.get(up)?.callFrame)) up = parent.get(up);
    const caller = up === undefined ? undefined : byId.get(up);
    const name = isWasm(f) ? "wasm" : caller && !caller.callFrame.url.startsWith("node:") ? "native" : f.functionName || "(native)";
    labels.set(n.id, `${name}${caller ? ` ← ${label(caller.callFrame)}` : ""}`);
  }
  return labels;
}

const isWasm = (f: CpuProfileNode["callFrame"]): boolean => f.url.startsWith("wasm://");
/** A JavaScript frame with a file. */
const isScript = (f: CpuProfileNode["callFrame"] | undefined): boolean => f !== undefined && f.url !== "" && !isWasm(f);

function label(f: CpuProfileNode["callFrame"]): string {
  if (!f.url) return f.functionName || "(anonymous)";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.url);
  const where = m ? m[1] : f.url.replace(/^file:\/\/.*?\/dist\//, "");
  return `${f.functionName || "(anonymous)"} ${where}:${f.lineNumber + 1}`;
}

/** What the main thread's probe sends the workers' probes, and what they answer. */
type Command = { t: "start"; id: number; sampleIntervalUs: number } | { t: "mark" } | { t: "stop"; id: number };
type Answer =
  | { t: "hello"; thread: string }
  | { t: "started"; id: number; thread: string }
  | { t: "report"; id: number; thread: string; report: ProbeReport }
  | { t: "failed"; id: number; thread: string; error: string };

function threadName(): string {
  if (isMainThread) return "main";
  const index = (workerData as { index?: unknown } | null | undefined)?.index;
  return typeof index === "number" ? `worker-${index}` : `thread-${threadId}`;
}

const probe = new StallProbe(threadName());
const channel = new BroadcastChannel(CHANNEL);
// The channel must not keep a thread alive: workers end when the gateway stops them.
channel.unref();
const send = (a: Answer): void => channel.postMessage(a);

if (isMainThread) {
  /** Workers that announced themselves, those in the current window, and answers awaited. */
  const workers = new Set<string>();
  let inWindow = new Set<string>();
  let nextId = 1;
  const waiting = new Map<string, (a: Answer) => void>();
  channel.onmessage = (event: unknown) => {
    const a = (event as { data: Answer | Command }).data;
    if (a.t === "hello") workers.add(a.thread);
    else if (a.t === "started" || a.t === "report" || a.t === "failed") waiting.get(`${a.id}:${a.thread}`)?.(a);
  };
  /** The answers of `threads` to command `id`, each within `timeoutMs` (a missing one is left out). */
  const gather = async (id: number, threads: Iterable<string>, timeoutMs: number): Promise<Answer[]> => {
    const answers = await Promise.all(
      [...threads].map(
        (thread) =>
          new Promise<Answer | undefined>((resolve) => {
            const key = `${id}:${thread}`;
            const timer = setTimeout(() => {
              waiting.delete(key);
              resolve(undefined);
            }, timeoutMs);
            waiting.set(key, (a) => {
              clearTimeout(timer);
              waiting.delete(key);
              resolve(a);
            });
          }),
      ),
    );
    return answers.filter((a): a is Answer => a !== undefined);
  };
  (globalThis as { __benchStallProbe?: unknown }).__benchStallProbe = {
    start: async (sampleIntervalUs: number) => {
      const id = nextId++;
      const started = gather(id, workers, WORKER_START_MS);
      channel.postMessage({ t: "start", id, sampleIntervalUs } satisfies Command);
      await probe.start(sampleIntervalUs);
      inWindow = new Set((await started).filter((a) => a.t === "started").map((a) => a.thread));
    },
    mark: () => {
      channel.postMessage({ t: "mark" } satisfies Command);
      probe.mark();
    },
    stop: async () => {
      const id = nextId++;
      const reports = gather(id, inWindow, WORKER_REPORT_MS);
      channel.postMessage({ t: "stop", id } satisfies Command);
      const own = await probe.stop();
      const answers = await reports;
      const threads = answers.flatMap((a) => (a.t === "report" ? [a.report] : [])).sort((x, y) => x.thread.localeCompare(y.thread, "en", { numeric: true }));
      const reported = new Set(threads.map((r) => r.thread));
      const failed = answers.flatMap((a) => (a.t === "failed" ? [`${a.thread} (${a.error})`] : []));
      const missing = [...inWindow].filter((t) => !reported.has(t) && !failed.some((f) => f.startsWith(`${t} `)));
      inWindow = new Set();
      return JSON.stringify({ threads: [own, ...threads], missing: [...failed, ...missing] } satisfies ProcessProbeReport);
    },
  };
} else {
  const thread = threadName();
  channel.onmessage = (event: unknown) => {
    const c = (event as { data: Answer | Command }).data;
    const fail = (id: number, err: unknown): void => send({ t: "failed", id, thread, error: (err as Error).message ?? String(err) });
    if (c.t === "start") probe.start(c.sampleIntervalUs).then(() => send({ t: "started", id: c.id, thread }), (err: unknown) => fail(c.id, err));
    else if (c.t === "mark") probe.mark();
    else if (c.t === "stop") probe.stop().then((report) => send({ t: "report", id: c.id, thread, report }), (err: unknown) => fail(c.id, err));
  };
  send({ t: "hello", thread });
}
