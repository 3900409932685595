import type { AddCallsResult, WindowReport } from "../ipc.js";
import type { Deadline } from "../orchestrator/deadline.js";
import type { LoadgenClient } from "../orchestrator/loadgen-client.js";
import type { Plan } from "../orchestrator/plan.js";
import { sampleProcess, UsageMeter } from "../orchestrator/proc-stats.js";
import type { DirectionResult, RampResult, StepResult } from "../orchestrator/results.js";
import { describeStalls, summarizeStalls, type WindowProbeReports } from "../probe/probe-report.js";
import { Histogram, percentiles } from "../stats/histogram.js";
import { sleep, split } from "../util/async.js";

/** Packets must leave within this of arriving… */
export const DEADLINE_MS = 20;
/** …for at least this share of them. */
export const REQUIRED_SHARE = 0.999;
/** Mapped packets must cover this share of what was sent, or the step cannot be judged. */
const MIN_COVERAGE = 0.95;
const PACKETS_PER_SECOND = 50;
/** Other processes using more than this during a failed window make it worth measuring again. */
const NOISY_OTHER_CORES = 0.25;
/** A failure this close to the line (nothing lost, every call up) is measured again: one GC pause decides it. */
const MARGINAL_SHARE = 0.99;
const MAX_ATTEMPTS = 3;

/** What a gateway says of its own event loops, in ms. */
export interface SystemDelays {
  /** The longest event-loop delay since the previous reading. */
  loopMaxMs: number;
  /** The admission measure (OVERLOAD_LOOP_DELAY_MS compares it with its limit) over the last second. */
  mediaLoopLateMs: number;
}

export interface SystemUnderTest {
  name: "gateway" | "rtpengine";
  pids: () => number[];
  loadgens: LoadgenClient[];
  /** Recent log lines of the system's processes, shown when calls fail. */
  logTail: () => string[];
  /** The system's own delay figures, where it reports them (the loop maximum since the last call). */
  delays?: () => Promise<SystemDelays>;
  /**
   * Starts stall attribution for one window, with V8's sampling profiler when `sampled` (by
   * function; it costs a few hundredths of a core per process, so windows whose CPU is a figure
   * go without it); the returned function ends it (gateways only).
   */
  startStallProbe?: (sampled: boolean) => Promise<() => Promise<WindowProbeReports>>;
}


/**
 * Steps the number of concurrent calls up, measuring each load over a window, until both
 * criteria have failed and the fixed loads are measured, the steps run out, or time does.
 *
 * Two criteria are judged on the same windows. The density criterion is the absolute one: 99.9 %
 * of packets out within 20 ms of arriving. The jitter-budget criterion allows 20 ms on top of each
 * stream's own median latency instead (delay variation), so a system that holds audio for a while
 * by design (rtpengine paces transcoded output, each call differently) can still be compared on
 * the load it takes.
 */
export async function runRamp(sut: SystemUnderTest, plan: Plan, steps: number[], deadline: Deadline, log: (s: string) => void): Promise<RampResult> {
  const result: RampResult = {
    system: sut.name,
    maxCalls: 0,
    capped: false,
    maxCallsJitter: 0,
    cappedJitter: false,
    idleRssMB: rssOf(sut.pids()),
    steps: [],
    skipped: [],
  };
  let current = 0;
  let failed = false;
  let failedJitter = false;
  const last = steps[steps.length - 1] ?? 0;
  const mustReach = Math.max(0, ...plan.fixedLoads.filter((n) => n <= last));
  for (const calls of steps) {
    if (failed && failedJitter && calls > mustReach) break;
    // Ramp-up takes about 1.5 s per ten calls per load generator, then the settle and the window.
    const needMs = plan.settleMs + plan.windowMs + ((calls - current) / (plan.rampConcurrency * sut.loadgens.length)) * 1500 + 3000;
    if (deadline.remainingMs() < needMs) {
      result.skipped.push(`${sut.name} ${calls} calls: time budget`);
      continue;
    }
    // Past both failures only CPU and memory are still wanted: set the calls up all at once, so
    // an overloaded system costs one set-up timeout rather than one per batch.
    const added = await addCalls(sut, calls - current, failed && failedJitter ? calls : plan.rampConcurrency, plan);
    current = calls;
    await sleep(plan.settleMs);
    let step = await measure(sut, calls, plan, added, result.idleRssMB);
    // The machine is shared: a failure that could still move a result is measured again when
    // something else was busy or it was marginal (and, in full runs, always once), and the
    // cleaner window kept.
    const matters = (s: StepResult): boolean => (!s.pass && !failed) || (!s.passJitter && !failedJitter);
    while (matters(step) && step.attempts < MAX_ATTEMPTS && deadline.remainingMs() > plan.windowMs + 3000) {
      const noisy = step.otherCores > NOISY_OTHER_CORES;
      if (!noisy && !isMarginal(step) && !(plan.confirmFailure && step.attempts === 1)) break;
      const again = await measure(sut, calls, plan, added, result.idleRssMB);
      const better = (again.pass ? 2 : 0) + (again.passJitter ? 1 : 0) > (step.pass ? 2 : 0) + (step.passJitter ? 1 : 0);
      const keep = better || (!matters(again) === !matters(step) && again.otherCores < step.otherCores) ? again : step;
      step = { ...keep, attempts: step.attempts + 1 };
    }
    result.steps.push(step);
    log(describeStep(sut.name, step));
    if (step.setupFailures > 0 || step.activeCalls < calls) {
      for (const line of sut.logTail().slice(-3)) log(`  ${sut.name} said: ${line}`);
    }
    if (step.pass && !failed) result.maxCalls = calls;
    else failed = true;
    if (step.passJitter && !failedJitter) result.maxCallsJitter = calls;
    else failedJitter = true;
  }
  // Never failed within what was measured (steps ran out, or time did): the figure is a floor.
  result.capped = !failed && result.steps.length > 0;
  result.cappedJitter = !failedJitter && result.steps.length > 0;
  return result;
}

async function addCalls(sut: SystemUnderTest, count: number, concurrency: number, plan: Plan): Promise<AddCallsResult[]> {
  const shares = split(count, sut.loadgens.length);
  return Promise.all(
    sut.loadgens.map((lg, i) => lg.request("addCalls", { count: shares[i] ?? 0, concurrency, timeoutMs: plan.callUpTimeoutMs }, 10 * 60_000)),
  );
}

/** What one window measured, before any verdict. */
interface Window {
  reports: WindowReport[];
  activeCalls: number;
  failedCalls: number;
  windowS: number;
  udpDrops: number;
}

/**
 * One window at `calls` live calls. `during`, when given, runs alongside the window (new calls
 * being set up), and the window lasts until it is done if that takes longer.
 */
export async function measure(
  sut: SystemUnderTest,
  calls: number,
  plan: Plan,
  added: AddCallsResult[],
  idleRssMB: number,
  opts: { during?: () => Promise<unknown>; sampled?: boolean } = {},
): Promise<StepResult> {
  const { during, sampled = false } = opts;
  const sutPids = sut.pids();
  const loadgenPids = sut.loadgens.map((l) => l.pid);
  // Before anything is measured: starting V8's profiler logs every compiled function and holds
  // the event loop for tens of ms, which must not fall into the window.
  const stopProbe = await sut.startStallProbe?.(sampled);
  const meter = new UsageMeter([...sutPids, ...loadgenPids, process.pid]);
  await sut.delays?.(); // starts the system's delay figures afresh
  await Promise.all(sut.loadgens.map((l) => l.request("windowStart", { jitterBudgetMs: DEADLINE_MS })));
  await Promise.all([sleep(plan.windowMs), during?.()]);
  const reports = await Promise.all(sut.loadgens.map((l) => l.request("windowEnd", null)));
  // The system's own figure first: stopping the profiler serialises its profile on the event loop.
  const delays = await sut.delays?.();
  const probeReports = await stopProbe?.();
  const usage = meter.finish();
  const sum = (pids: number[], m: Map<number, number>): number => pids.reduce((a, p) => a + (m.get(p) ?? 0), 0);
  const cores = sum(sutPids, usage.cores);
  const loadgenCores = sum(loadgenPids, usage.cores);
  const ownCores = usage.cores.get(process.pid) ?? 0;
  const rssMB = sutPids.reduce((a, p) => a + (usage.end.get(p)?.rssMB ?? 0), 0);
  const both = new Histogram();
  for (const r of reports) {
    both.merge(r.toPbx.latency);
    both.merge(r.toMeta.latency);
  }
  const window: Window = {
    reports,
    activeCalls: reports.reduce((a, r) => a + r.activeCalls, 0),
    failedCalls: reports.reduce((a, r) => a + r.failedCalls, 0),
    windowS: usage.seconds,
    udpDrops: sum(sutPids, usage.udpDrops),
  };
  const step: StepResult = {
    calls,
    activeCalls: window.activeCalls,
    pass: false,
    reasons: [],
    passJitter: false,
    jitterReasons: [],
    windowS: window.windowS,
    cores,
    cpuPerCall: calls > 0 ? cores / calls : 0,
    rssMB,
    rssPerCallMB: calls > 0 ? (rssMB - idleRssMB) / calls : 0,
    loadgenCores,
    otherCores: Math.max(0, usage.machineCores - cores - loadgenCores - ownCores),
    udpDrops: window.udpDrops,
    loadgenUdpDrops: sum(loadgenPids, usage.udpDrops),
    toPbx: direction(reports, "toPbx"),
    toMeta: direction(reports, "toMeta"),
    both: both.summary(DEADLINE_MS),
    loadgenLoopDelayP99Ms: Math.max(...reports.map((r) => r.loopDelayP99Ms)),
    loadgenLoopDelayMaxMs: Math.max(...reports.map((r) => r.loopDelayMaxMs)),
    systemLoopDelayMaxMs: delays?.loopMaxMs,
    mediaLoopLateMs: delays?.mediaLoopLateMs,
    mediaUpMsP50: percentiles(added.flatMap((a) => a.setup.flatMap((s) => (s.mediaUpMs === undefined ? [] : [s.mediaUpMs])))).p50,
    setupFailures: added.reduce((a, r) => a + r.failed, 0),
    setupErrors: added.flatMap((a) => a.errors).slice(0, 3),
    attempts: 1,
    stalls: probeReports && summarizeStalls(probeReports.reports, probeReports.missing),
  };
  return judge(step, window);
}

/** Failed on latency alone, and only just. */
function isMarginal(s: StepResult): boolean {
  const lostOrDown = s.activeCalls < s.calls || s.toPbx.lost + s.toMeta.lost + s.udpDrops > 0;
  return !lostOrDown && Math.min(s.toPbx.withinDeadline, s.toMeta.withinDeadline) >= MARGINAL_SHARE;
}

/** Both verdicts of a step. */
function judge(step: StepResult, w: Window): StepResult {
  const { toPbx, toMeta } = step;
  const common: string[] = [];
  if (w.activeCalls < step.calls || w.failedCalls > 0) common.push(`${w.activeCalls - w.failedCalls}/${step.calls} calls up`);
  if (w.udpDrops > 0) common.push(`${w.udpDrops} datagrams dropped at the system's sockets`);
  for (const [name, d] of [["toPbx", toPbx], ["toMeta", toMeta]] as const) {
    if (d.lost > 0) common.push(`${name} ${d.lost} lost`);
    const expected = w.activeCalls * PACKETS_PER_SECOND * w.windowS;
    if (d.count < MIN_COVERAGE * expected) common.push(`${name} only ${d.count}/${Math.round(expected)} packets mapped`);
  }
  const reasons = [...common];
  const jitterReasons = [...common];
  for (const [name, d] of [["toPbx", toPbx], ["toMeta", toMeta]] as const) {
    if (d.withinDeadline < REQUIRED_SHARE) reasons.push(`${name} ${(100 * d.withinDeadline).toFixed(2)}% within ${DEADLINE_MS} ms`);
    if (d.withinJitterBudget < REQUIRED_SHARE) {
      jitterReasons.push(`${name} ${(100 * d.withinJitterBudget).toFixed(2)}% within their stream's median + ${DEADLINE_MS} ms`);
    }
  }
  return { ...step, reasons, pass: reasons.length === 0, jitterReasons, passJitter: jitterReasons.length === 0 };
}

function direction(reports: WindowReport[], dir: "toPbx" | "toMeta"): DirectionResult {
  const h = new Histogram();
  let sent = 0;
  let received = 0;
  let lost = 0;
  let unmapped = 0;
  let jitterSamples = 0;
  let withinJitter = 0;
  for (const r of reports) {
    h.merge(r[dir].latency);
    jitterSamples += r[dir].jitter.samples;
    withinJitter += r[dir].jitter.withinBudget;
    sent += r[dir].counters.sent;
    received += r[dir].counters.received;
    lost += r[dir].counters.lost;
    unmapped += r[dir].counters.unmapped;
  }
  return { ...h.summary(DEADLINE_MS), withinJitterBudget: jitterSamples ? withinJitter / jitterSamples : 1, sent, received, lost, unmapped };
}

function rssOf(pids: number[]): number {
  return pids.reduce((a, p) => a + (sampleProcess(p)?.rssMB ?? 0), 0);
}

export function describeStep(name: string, s: StepResult): string {
  const lat = `Opus→PCMU p50/p99 ${s.toPbx.p50.toFixed(1)}/${s.toPbx.p99.toFixed(1)} ms, PCMU→Opus ${s.toMeta.p50.toFixed(1)}/${s.toMeta.p99.toFixed(1)} ms`;
  const verdict = s.pass ? "pass" : `fail (${s.reasons.join("; ")})`;
  const jitter = s.pass === s.passJitter ? "" : `; jitter budget: ${s.passJitter ? "pass" : "fail"}`;
  const errors = s.setupErrors.length ? `; set-up errors: ${s.setupErrors.join(" | ")}` : "";
  const attempts = s.attempts > 1 ? ` (best of ${s.attempts} windows)` : "";
  const stalls = s.stalls ? describeStalls(s.stalls).map((line) => `\n    stalls, ${line}`).join("") : "";
  return `${name} ${s.calls} calls${attempts}: ${s.cores.toFixed(2)} cores, RSS ${s.rssMB.toFixed(0)} MB, ${lat}; load generators ${s.loadgenCores.toFixed(2)} cores (lag p99 ${s.loadgenLoopDelayP99Ms.toFixed(1)} ms), event-loop max ${s.systemLoopDelayMaxMs === undefined ? "" : `${s.systemLoopDelayMaxMs.toFixed(0)} ms ${name} / `}${s.loadgenLoopDelayMaxMs.toFixed(0)} ms load generators${s.mediaLoopLateMs === undefined ? "" : ` (media loop late p99 ${s.mediaLoopLateMs.toFixed(1)} ms, last second)`}, other ${s.otherCores.toFixed(2)} → ${verdict}${jitter}${errors}${stalls}`;
}
