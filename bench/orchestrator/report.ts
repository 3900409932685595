import { cpus, totalmem } from "node:os";
import type { LatencySummary } from "../stats/histogram.js";
import { DEADLINE_MS, REQUIRED_SHARE } from "../phases/density.js";
import { describeStalls } from "../probe/probe-report.js";
import { burstDemand, type BurstDemand } from "./burst-demand.js";
import type { OpusEncoderCost } from "./opus-cost.js";
import type { ChurnResultSummary, RampResult, SetupResult, SetupStats, SetupUnderLoadResult, StepResult } from "./results.js";

export interface RunFacts {
  command: string;
  mode: "quick" | "full";
  startedAt: string;
  durationS: number;
  gateways: number;
  /** MEDIA_WORKERS given to each gateway, and the worker threads that means on this machine. */
  mediaWorkers: number | "auto";
  mediaWorkerThreads: number;
  windowS: number;
  srtpProfile: string;
  gatewayNodeArgs: string[];
  /** OVERLOAD_LOOP_DELAY_MS the gateways ran with (0: off). */
  overloadLoopDelayMs: number;
  setup: SetupResult | undefined;
  setupUnderLoad: SetupUnderLoadResult | undefined;
  /** What rtpengine's Opus encoder settings cost next to the gateway's (they cannot be made equal). */
  opusEncoderCost: OpusEncoderCost | undefined;
  churn: ChurnResultSummary | undefined;
  gateway: RampResult | undefined;
  rtpengine: RampResult | undefined;
  rtpengineVersion: string | undefined;
  rtpengineError: string | undefined;
  notes: string[];
}

/** Latency at one load, both directions. */
interface LatencyAt {
  atCalls: number;
  p50: number;
  p99: number;
  max: number;
  toPbx: Pick<LatencySummary, "p50" | "p99" | "p999" | "max">;
  toMeta: Pick<LatencySummary, "p50" | "p99" | "p999" | "max">;
}

/** The burst's CPU (churn's per-call cost) against what the live calls alone left spare. */
function demandOf(f: RunFacts): BurstDemand | undefined {
  const u = f.setupUnderLoad;
  if (!u || !f.churn || f.churn.completed === 0) return undefined;
  return burstDemand(u.burst.calls, f.churn.cpuMsPerCall, u.profiled, cpus().length);
}

/** The load the headline figures are read at: the gateway's density, or its first step when none passed. */
function referenceCalls(f: RunFacts): number | undefined {
  const steps = f.gateway?.steps ?? [];
  if (steps.length === 0) return undefined;
  return f.gateway && f.gateway.maxCalls > 0 ? f.gateway.maxCalls : steps[0]?.calls;
}

function stepAt(r: RampResult | undefined, calls: number | undefined): StepResult | undefined {
  return calls === undefined ? undefined : r?.steps.find((s) => s.calls === calls);
}

function latencyOf(s: StepResult | undefined): LatencyAt | undefined {
  if (!s) return undefined;
  const pick = (l: LatencySummary): LatencyAt["toPbx"] => ({ p50: round(l.p50, 2), p99: round(l.p99, 2), p999: round(l.p999, 2), max: round(l.max, 2) });
  return { atCalls: s.calls, p50: round(s.both.p50, 2), p99: round(s.both.p99, 2), max: round(s.both.max, 2), toPbx: pick(s.toPbx), toMeta: pick(s.toMeta) };
}

/** CPU and RSS per call at the heaviest of the fixed loads that still passed (else the lightest measured). */
function perCallLoad(r: RampResult | undefined, fixed: number[]): StepResult | undefined {
  if (!r) return undefined;
  const measured = fixed.map((n) => r.steps.find((s) => s.calls === n)).filter((s): s is StepResult => s !== undefined);
  const passing = measured.filter((s) => s.pass);
  return passing[passing.length - 1] ?? measured[0];
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return round(a / b, 2);
}

function roundStats(s: SetupStats): SetupStats {
  return { n: s.n, p50: round(s.p50, 2), p99: round(s.p99, 2), max: round(s.max, 2), mean: round(s.mean, 2) };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function buildResults(f: RunFacts): Record<string, unknown> {
  const fixed = [50, 100, 200];
  const ref = referenceCalls(f);
  const gwRef = stepAt(f.gateway, ref);
  const rtRef = stepAt(f.rtpengine, ref);
  const gwLoad = perCallLoad(f.gateway, fixed);
  // rtpengine per call at the same load as the gateway's figure, so the ratio compares like with like.
  const rtLoad = stepAt(f.rtpengine, gwLoad?.calls) ?? perCallLoad(f.rtpengine, fixed);
  const perLoad = (r: RampResult | undefined): Record<string, unknown> =>
    Object.fromEntries(
      fixed.flatMap((n) => {
        const s = r?.steps.find((x) => x.calls === n);
        return s
          ? [[String(n), { cores: round(s.cores, 3), cpuPerCall: round(s.cpuPerCall, 5), rssMB: round(s.rssMB, 1), rssPerCallMB: round(s.rssPerCallMB, 3), pass: s.pass }]]
          : [];
      }),
    );
  const otherCores = [...(f.gateway?.steps ?? []), ...(f.rtpengine?.steps ?? [])].map((s) => s.otherCores);
  return {
    command: f.command,
    mode: f.mode,
    startedAt: f.startedAt,
    durationS: round(f.durationS, 1),
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memGiB: round(totalmem() / 2 ** 30, 1),
      node: process.version,
      gatewayProcesses: f.gateways,
      mediaWorkers: f.mediaWorkers,
      mediaWorkerThreads: f.mediaWorkerThreads,
      otherLoadCoresMax: otherCores.length ? round(Math.max(...otherCores), 2) : null,
    },
    srtpProfile: f.srtpProfile,
    gatewayNodeArgs: f.gatewayNodeArgs,
    overloadLoopDelayMs: f.overloadLoopDelayMs,
    criterion: `>= ${REQUIRED_SHARE * 100}% of packets each way within ${DEADLINE_MS} ms of arrival, none lost, every call up`,
    jitterBudgetCriterion: `the same with ${DEADLINE_MS} ms on top of each stream's own median latency (delay variation)`,
    audio: {
      maxCalls: f.gateway?.maxCalls ?? 0,
      maxCallsCapped: f.gateway?.capped ?? false,
      maxCallsJitterBudget: f.gateway?.maxCallsJitter ?? 0,
      gatewayProcesses: f.gateways,
      cpuPerCall: gwLoad ? round(gwLoad.cpuPerCall, 5) : null,
      rssPerCallMB: gwLoad ? round(gwLoad.rssPerCallMB, 3) : null,
      perCallAtCalls: gwLoad?.calls ?? null,
      perLoad: perLoad(f.gateway),
      latencyMs: latencyOf(gwRef) ?? null,
      steps: f.gateway?.steps ?? [],
      skipped: f.gateway?.skipped ?? [],
    },
    setup: f.setup
      ? {
          inviteMs: roundStats(f.setup.sequential.inviteMs),
          acceptMs: roundStats(f.setup.sequential.acceptMs),
          mediaUpMs: roundStats(f.setup.sequential.mediaUpMs),
          sequentialCalls: f.setup.sequential.calls,
          failed: f.setup.sequential.failed,
          burst: {
            calls: f.setup.burst.calls,
            inviteMs: roundStats(f.setup.burst.inviteMs),
            acceptMs: roundStats(f.setup.burst.acceptMs),
            mediaUpMs: roundStats(f.setup.burst.mediaUpMs),
            failed: f.setup.burst.failed,
          },
        }
      : null,
    setupUnderLoad: f.setupUnderLoad
      ? {
          liveCalls: f.setupUnderLoad.liveCalls,
          profiled: {
            liveWithin20Ms: round(Math.min(f.setupUnderLoad.profiled.toPbx.withinDeadline, f.setupUnderLoad.profiled.toMeta.withinDeadline), 5),
            cores: round(f.setupUnderLoad.profiled.cores, 3),
            loopMaxMs: f.setupUnderLoad.profiled.systemLoopDelayMaxMs ?? null,
            otherCores: round(f.setupUnderLoad.profiled.otherCores, 2),
            stalls: f.setupUnderLoad.profiled.stalls ?? null,
          },
          steady: underLoadJson(f.setupUnderLoad.steady),
          burst: underLoadJson(f.setupUnderLoad.burst),
          burstDemand: demandOf(f) ?? null,
        }
      : null,
    churn: f.churn ?? null,
    baseline: {
      rtpengine: f.rtpengine
        ? {
            version: f.rtpengineVersion,
            maxCalls: f.rtpengine.maxCalls,
            maxCallsCapped: f.rtpengine.capped,
            maxCallsJitterBudget: f.rtpengine.maxCallsJitter,
            what: "the same consumers and phones; rtpengine terminates ICE and DTLS-SRTP (werift consumer as DTLS server) and transcodes Opus<->PCMU in userspace, opus/48000/2 at 20 kbit/s, its other codec defaults",
            cpuPerCall: rtLoad ? round(rtLoad.cpuPerCall, 5) : null,
            rssPerCallMB: rtLoad ? round(rtLoad.rssPerCallMB, 3) : null,
            perCallAtCalls: rtLoad?.calls ?? null,
            perLoad: perLoad(f.rtpengine),
            latencyMs: latencyOf(rtRef) ?? null,
            steps: f.rtpengine.steps,
            skipped: f.rtpengine.skipped,
            fairness: opusFairness(f.opusEncoderCost),
          }
        : { error: f.rtpengineError ?? "not run", maxCalls: null },
    },
    ratios: {
      density: ratio(f.gateway?.maxCalls, f.rtpengine?.maxCalls),
      densityJitterBudget: ratio(f.gateway?.maxCallsJitter, f.rtpengine?.maxCallsJitter),
      cpuPerCall: ratio(gwLoad?.cpuPerCall, rtLoad?.calls === gwLoad?.calls ? rtLoad?.cpuPerCall : undefined),
      rssPerCall: ratio(gwLoad?.rssPerCallMB, rtLoad?.calls === gwLoad?.calls ? rtLoad?.rssPerCallMB : undefined),
      latencyP50: ratio(gwRef?.both.p50, rtRef?.both.p50),
      latencyP99: ratio(gwRef?.both.p99, rtRef?.both.p99),
      atCalls: ref ?? null,
    },
    notes: f.notes,
  };
}

function underLoadJson(x: SetupUnderLoadResult["steady"] | SetupUnderLoadResult["burst"]): Record<string, unknown> {
  const w = x.window;
  return {
    ...("ratePerSecond" in x ? { ratePerSecond: x.ratePerSecond } : {}),
    newCalls: x.calls,
    failed: x.failed,
    inviteMs: roundStats(x.inviteMs),
    acceptMs: roundStats(x.acceptMs),
    mediaUpMs: roundStats(x.mediaUpMs),
    liveWithin20Ms: round(Math.min(w.toPbx.withinDeadline, w.toMeta.withinDeadline), 5),
    liveLatencyMs: latencyOf(w),
    liveLost: w.toPbx.lost + w.toMeta.lost + w.udpDrops,
    cores: round(w.cores, 3),
    loopMaxMs: w.systemLoopDelayMaxMs ?? null,
    otherCores: round(w.otherCores, 2),
    stalls: w.stalls ?? null,
  };
}

/** How far the rtpengine comparison could be made like for like, in words and figures. */
function opusFairness(c: OpusEncoderCost | undefined): Record<string, unknown> {
  return {
    sameForBoth: "consumers, phones, audio, SRTP profile, Opus bitrate 20 kbit/s, ptime 20 ms, loopback, windows",
    notSettable:
      "rtpengine 10.5 takes no Opus complexity or FEC setting (libavcodec's libopus defaults: complexity 10, no in-band FEC); the gateway encodes at complexity 1 with FEC for 10 % loss",
    encoderUsPerFrame: c ? { gateway: round(c.gatewayUs, 1), rtpengineDefaults: round(c.rtpengineLikeUs, 1) } : null,
    encoderCoresPerCallDifference: c ? round((50 * (c.rtpengineLikeUs - c.gatewayUs)) / 1e6, 5) : null,
  };
}

/** The closing table: figures side by side with their ratio. */
export function formatTable(f: RunFacts): string {
  const ref = referenceCalls(f);
  const gwRef = stepAt(f.gateway, ref);
  const rtRef = stepAt(f.rtpengine, ref);
  const gwLoad = perCallLoad(f.gateway, [50, 100, 200]);
  const rtLoad = stepAt(f.rtpengine, gwLoad?.calls);
  const rows: [string, string, string, string][] = [];
  const n = (v: number | undefined, d = 1): string => (v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(d));
  const r = (a: number | undefined, b: number | undefined): string => {
    const x = ratio(a, b);
    return x === null ? "–" : x.toFixed(2);
  };
  const density = (x: RampResult | undefined): string => (x ? `${x.maxCalls}${x.capped ? "+" : ""}` : "–");
  const densityJitter = (x: RampResult | undefined): string => (x ? `${x.maxCallsJitter}${x.cappedJitter ? "+" : ""}` : "–");
  rows.push(["audio density, calls (20 ms)", density(f.gateway), f.rtpengine ? density(f.rtpengine) : "n/a", r(f.gateway?.maxCalls, f.rtpengine?.maxCalls)]);
  rows.push([
    "calls within jitter budget (median + 20 ms)",
    densityJitter(f.gateway),
    f.rtpengine ? densityJitter(f.rtpengine) : "n/a",
    r(f.gateway?.maxCallsJitter, f.rtpengine?.maxCallsJitter),
  ]);
  rows.push([`CPU cores per call @${gwLoad?.calls ?? "–"}`, n(gwLoad?.cpuPerCall, 4), n(rtLoad?.cpuPerCall, 4), r(gwLoad?.cpuPerCall, rtLoad?.cpuPerCall)]);
  rows.push([`RSS MB per call @${gwLoad?.calls ?? "–"}`, n(gwLoad?.rssPerCallMB, 2), n(rtLoad?.rssPerCallMB, 2), r(gwLoad?.rssPerCallMB, rtLoad?.rssPerCallMB)]);
  for (const dir of ["toPbx", "toMeta"] as const) {
    const label = dir === "toPbx" ? "Opus→PCMU" : "PCMU→Opus";
    const g = gwRef?.[dir];
    const b = rtRef?.[dir];
    rows.push([`added latency ${label} p50 ms @${ref ?? "–"}`, n(g?.p50, 2), n(b?.p50, 2), r(g?.p50, b?.p50)]);
    rows.push([`added latency ${label} p99 ms @${ref ?? "–"}`, n(g?.p99, 2), n(b?.p99, 2), r(g?.p99, b?.p99)]);
    rows.push([`added latency ${label} max ms @${ref ?? "–"}`, n(g?.max, 1), n(b?.max, 1), r(g?.max, b?.max)]);
  }
  for (const load of [50, 100, 200]) {
    const g = stepAt(f.gateway, load);
    const b = stepAt(f.rtpengine, load);
    if (!g && !b) continue;
    rows.push([`CPU cores / RSS MB @${load}`, g ? `${n(g.cores, 2)} / ${n(g.rssMB, 0)}${g.pass ? "" : " (fail)"}` : "–", b ? `${n(b.cores, 2)} / ${n(b.rssMB, 0)}${b.pass ? "" : " (fail)"}` : "–", r(g?.cores, b?.cores)]);
  }
  const s = f.setup;
  if (s) {
    rows.push(["setup webhook→INVITE p50/p99 ms", `${n(s.sequential.inviteMs.p50)} / ${n(s.sequential.inviteMs.p99)}`, "–", ""]);
    rows.push(["setup 200 OK→accept p50/p99 ms", `${n(s.sequential.acceptMs.p50)} / ${n(s.sequential.acceptMs.p99)}`, "–", ""]);
    rows.push([`  ${s.burst.calls} at once: webhook→INVITE`, `${n(s.burst.inviteMs.p50)} / ${n(s.burst.inviteMs.p99)}`, "–", ""]);
    rows.push([`  ${s.burst.calls} at once: 200 OK→accept`, `${n(s.burst.acceptMs.p50)} / ${n(s.burst.acceptMs.p99)}`, "–", ""]);
  }
  const u = f.setupUnderLoad;
  if (u) {
    const live = (w: StepResult): string => `${(100 * Math.min(w.toPbx.withinDeadline, w.toMeta.withinDeadline)).toFixed(2)}%`;
    rows.push([`${u.liveCalls} live + ${u.steady.ratePerSecond} new/s: live ≤20 ms / loop max`, `${live(u.steady.window)} / ${n(u.steady.window.systemLoopDelayMaxMs, 0)} ms`, "–", ""]);
    rows.push([`  new calls' 200 OK→accept p50/p99 ms`, `${n(u.steady.acceptMs.p50)} / ${n(u.steady.acceptMs.p99)}`, "–", ""]);
    rows.push([`${u.liveCalls} live + ${u.burst.calls} at once: live ≤20 ms / loop max`, `${live(u.burst.window)} / ${n(u.burst.window.systemLoopDelayMaxMs, 0)} ms`, "–", ""]);
    rows.push([`  burst 200 OK→accept p50/p99 ms`, `${n(u.burst.acceptMs.p50)} / ${n(u.burst.acceptMs.p99)}`, "–", ""]);
    const d = demandOf(f);
    if (d) {
      const flatOut = d.saturatedS === null ? "no core spare" : `the machine flat out ≥ ${n(d.saturatedS)} s`;
      rows.push([`  burst CPU asked / spare beside live calls`, `${n(d.askedCoreSeconds, 2)} core·s / ${n(d.spareCores, 2)} cores: ${flatOut}`, "–", ""]);
    }
  }
  const c = f.churn;
  if (c) {
    rows.push([`churn ${c.completed}/${c.calls} calls: fds / UDP sockets`, `${signed(c.leakedFds)} / ${signed(c.leakedUdpSockets)}`, "–", ""]);
    rows.push([`churn: RSS / heap growth MB`, `${signed(c.rssGrowthMB, 1)} / ${signed(c.heapGrowthMB, 1)}`, "–", ""]);
    rows.push([`churn: CPU ms per call, gateway / load generators`, `${n(c.cpuMsPerCall.gateway)} / ${n(c.cpuMsPerCall.loadgen)}`, "–", ""]);
    rows.push([`churn: calls → heap after GC / RSS MB`, c.heapCurveMB.map((p) => `${p.calls}→${p.heapMB.toFixed(0)}/${p.rssMB.toFixed(0)}`).join(" "), "–", ""]);
  }
  const widths = [0, 1, 2, 3].map((i) => Math.max(...[["", "gateway", "rtpengine", "gw/rtpengine"], ...rows].map((row) => (row[i] ?? "").length)));
  const line = (row: string[]): string => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ");
  const out = [line(["", "gateway", "rtpengine", "gw/rtpengine"]), ...rows.map(line)];
  out.push(`density: >= ${REQUIRED_SHARE * 100}% of packets each way out within ${DEADLINE_MS} ms of arrival (jitter budget: each stream's median + ${DEADLINE_MS} ms), none lost, all calls up; "+" = no measured step failed (a floor)`);
  if (f.rtpengineError) out.push(`rtpengine baseline not measured: ${f.rtpengineError}`);
  if (f.rtpengine) {
    const oc = f.opusEncoderCost;
    out.push(
      `rtpengine comparison: same consumers, phones, audio, SRTP and Opus bitrate (20 kbit/s); not the same Opus encoder settings, which rtpengine 10.5 cannot set (complexity 10, no FEC; the gateway: complexity 1, FEC)${oc ? `: ${oc.rtpengineLikeUs.toFixed(0)} against ${oc.gatewayUs.toFixed(0)} µs per frame here, ${((50 * (oc.rtpengineLikeUs - oc.gatewayUs)) / 1e6).toFixed(4)} cores per call of rtpengine's figure` : ""}`,
    );
  }
  for (const [label, w] of stallWindows(f)) for (const line of describeStalls(w)) out.push(`stalls ${label}, ${line}`);
  out.push(`machine: ${cpus().length} cores; ${f.gateways} gateway process(es), MEDIA_WORKERS=${f.mediaWorkers} (${f.mediaWorkerThreads} worker thread(s) each); SRTP ${f.srtpProfile}${f.gatewayNodeArgs.length ? `; gateway node ${f.gatewayNodeArgs.join(" ")}` : ""}${f.overloadLoopDelayMs > 0 ? `; OVERLOAD_LOOP_DELAY_MS=${f.overloadLoopDelayMs}` : ""}; windows of ${f.windowS} s; run took ${f.durationS.toFixed(0)} s (${f.mode})`);
  return out.join("\n");
}

/** The gateway windows whose stall attribution the closing table repeats. */
function stallWindows(f: RunFacts): [string, NonNullable<StepResult["stalls"]>][] {
  const out: [string, NonNullable<StepResult["stalls"]>][] = [];
  for (const load of [50, 100]) {
    const st = stepAt(f.gateway, load)?.stalls;
    if (st) out.push([`@${load}`, st]);
  }
  const u = f.setupUnderLoad;
  if (u?.profiled.stalls) out.push([`@${u.liveCalls}, profiled`, u.profiled.stalls]);
  if (u?.steady.window.stalls) out.push([`@${u.liveCalls} + ${u.steady.ratePerSecond} new/s`, u.steady.window.stalls]);
  if (u?.burst.window.stalls) out.push([`@${u.liveCalls} + ${u.burst.calls} at once`, u.burst.window.stalls]);
  return out;
}

/** Per-step lines for both systems. */
export function formatSteps(r: RampResult): string {
  const head = ["calls", "up", "cores", "RSS MB", "toPbx p50/p99/max", "toMeta p50/p99/max", "≤20ms", "lost", "loop max", "stalls >10/>20", "lg cores", "lg lag", "other", "verdict"];
  const rows = r.steps.map((s) => [
    String(s.calls),
    String(s.activeCalls),
    s.cores.toFixed(2),
    s.rssMB.toFixed(0),
    `${s.toPbx.p50.toFixed(1)}/${s.toPbx.p99.toFixed(1)}/${s.toPbx.max.toFixed(0)}`,
    `${s.toMeta.p50.toFixed(1)}/${s.toMeta.p99.toFixed(1)}/${s.toMeta.max.toFixed(0)}`,
    `${(100 * Math.min(s.toPbx.withinDeadline, s.toMeta.withinDeadline)).toFixed(2)}%`,
    String(s.toPbx.lost + s.toMeta.lost + s.udpDrops),
    `${s.systemLoopDelayMaxMs === undefined ? "–" : s.systemLoopDelayMaxMs.toFixed(0)}/${s.loadgenLoopDelayMaxMs.toFixed(0)}`,
    s.stalls ? `${s.stalls.stalls}/${s.stalls.over20}` : "–",
    s.loadgenCores.toFixed(2),
    s.loadgenLoopDelayP99Ms.toFixed(1),
    s.otherCores.toFixed(2),
    s.pass ? "pass" : `fail: ${s.reasons.join("; ")}`,
  ]);
  const jitter = `${r.system}, jitter budget (99.9% within their stream's median + ${DEADLINE_MS} ms, none lost): ${r.steps.map((s) => `${s.calls} ${s.passJitter ? "pass" : "fail"}`).join(", ")}`;
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((row) => (row[i] ?? "").length)));
  const fmt = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padStart(widths[i] ?? 0))).join("  ");
  return [`${r.system}:`, fmt(head), ...rows.map(fmt), ...r.skipped.map((s) => `  skipped: ${s}`), jitter].join("\n");
}

function signed(v: number, digits = 0): string {
  return `${v >= 0 ? "+" : ""}${v.toFixed(digits)}`;
}
