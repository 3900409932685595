/**
 * `npm run bench [-- --quick]`: audio density, CPU and memory per call, added latency, call set-up
 * and churn of the real gateway processes, and the same Opus⇄PCMU load through rtpengine in the
 * same run. Prints one table and writes bench/results/latest.json. Options: see cli.ts and
 * bench/README.md.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCli, USAGE } from "./orchestrator/cli.js";
import { Deadline } from "./orchestrator/deadline.js";
import { BENCH_META, gatewaysDelays, startGateway, startStallProbes, waitGatewaysIdle, type GatewayInstance } from "./orchestrator/gateways.js";
import { LoadgenClient } from "./orchestrator/loadgen-client.js";
import type { Plan } from "./orchestrator/plan.js";
import { measureOpusEncoderCost } from "./orchestrator/opus-cost.js";
import { gatewayRtpRanges, mediaWorkerThreads } from "./orchestrator/ports.js";
import { ProcessGroup } from "./orchestrator/processes.js";
import { summarizeProfiles } from "./orchestrator/profile-summary.js";
import { buildResults, formatSteps, formatTable, type RunFacts } from "./orchestrator/report.js";
import type { RampResult } from "./orchestrator/results.js";
import type { SrtpProfileName } from "./loadgen/consumer-peer.js";
import { rtpengineVersion, startRtpengine } from "./orchestrator/rtpengine-daemon.js";
import { runChurn } from "./phases/churn.js";
import { runRamp, type SystemUnderTest } from "./phases/density.js";
import { runSetupUnderLoad } from "./phases/setup-under-load.js";
import { runSetup } from "./phases/setup.js";
import { sleep } from "./util/async.js";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** dist/bench → the source tree's bench/results. */
const RESULTS_DIR = join(BENCH_DIR, "..", "..", "bench", "results");
const RTPENGINE_PORTS: [number, number] = [10000, 19999];

const group = new ProcessGroup();
const t0 = performance.now();

function log(message: string): void {
  process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
}

async function main(): Promise<number> {
  if (process.argv[2] === "--cluster") return (await import("./cluster.js")).runClusterBench(process.argv.slice(3));
  const options = parseCli(process.argv.slice(2));
  const { plan, only, srtpProfile } = options;
  const deadline = new Deadline(plan.budgetMs);
  const profileDir = options.profile ? mkdtempSync(join(tmpdir(), "bench-profile-")) : undefined;
  const facts: RunFacts = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    mode: plan.mode,
    startedAt: new Date().toISOString(),
    durationS: 0,
    gateways: plan.gateways,
    mediaWorkers: plan.mediaWorkers,
    mediaWorkerThreads: mediaWorkerThreads(plan),
    windowS: plan.windowMs / 1000,
    srtpProfile,
    gatewayNodeArgs: plan.gatewayNodeArgs,
    overloadLoopDelayMs: plan.overloadLoopDelayMs,
    setup: undefined,
    setupUnderLoad: undefined,
    opusEncoderCost: undefined,
    churn: undefined,
    gateway: undefined,
    rtpengine: undefined,
    rtpengineVersion: rtpengineVersion(),
    rtpengineError: undefined,
    notes: [],
  };
  log(`${plan.mode} run: ${plan.gateways} gateway process(es) with MEDIA_WORKERS=${plan.mediaWorkers} (${facts.mediaWorkerThreads} media worker thread(s) each), ${cpus().length} cores, SRTP ${srtpProfile}${plan.overloadLoopDelayMs > 0 ? `, OVERLOAD_LOOP_DELAY_MS=${plan.overloadLoopDelayMs}` : ""}${profileDir ? `, CPU profiles in ${profileDir}` : ""}`);

  if (only !== "rtpengine") facts.gateway = await gatewayPhases(plan, deadline, facts, srtpProfile, profileDir);
  if (profileDir) {
    log("CPU profile of the gateways:");
    process.stdout.write(`${summarizeProfiles(profileDir, "gateway-", 25)}\n`);
    log("CPU profile of the load generators:");
    process.stdout.write(`${summarizeProfiles(profileDir, "loadgen-", 12)}\n`);
  }

  if (only !== "gateway" && !profileDir) {
    try {
      facts.rtpengine = await rtpenginePhase(plan, deadline, srtpProfile);
      facts.opusEncoderCost = measureOpusEncoderCost();
    } catch (err) {
      facts.rtpengineError = (err as Error).message;
      log(`rtpengine baseline failed: ${facts.rtpengineError}`);
    }
  }

  // Video: CPU per transcoded stream next to bare ffmpeg, and the video path's added latency,
  // per input codec at 360p30 and 720p30 (bench/video.ts; results in bench/results/video*.json).
  if (only === undefined && !profileDir && !options.noVideo) {
    log("video transcoding figures (bench/video.ts)");
    const video = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), "video.js"), ...(plan.mode === "quick" ? ["--quick"] : [])], {
      stdio: "inherit",
      // Bounded like everything else in the run.
      timeout: plan.mode === "quick" ? 90_000 : 30 * 60_000,
      killSignal: "SIGTERM",
    });
    if (video.status !== 0) facts.notes.push(`video benchmark exited with ${video.status ?? video.signal}`);
  }

  facts.durationS = (performance.now() - t0) / 1000;
  const results = buildResults(facts);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, "latest.json");
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write("\n");
  if (facts.gateway) process.stdout.write(`${formatSteps(facts.gateway)}\n\n`);
  if (facts.rtpengine) process.stdout.write(`${formatSteps(facts.rtpengine)}\n\n`);
  process.stdout.write(`${formatTable(facts)}\n`);
  log(`results written to ${file}`);
  return 0;
}

/** Set-up, churn and the density ramp against the gateway processes. */
async function gatewayPhases(plan: Plan, deadline: Deadline, facts: RunFacts, srtpProfile: SrtpProfileName, profileDir: string | undefined): Promise<RampResult> {
  const loadgens = Array.from({ length: plan.gateways }, (_, i) => LoadgenClient.start(group, `loadgen-gw-${i}`, profileDir));
  const gateways: GatewayInstance[] = [];
  const rtpRanges = gatewayRtpRanges(plan);
  try {
    const ready = await Promise.all(loadgens.map((lg) => lg.request("init", { mode: "gateway", srtpProfile, ...BENCH_META })));
    for (const [i, r] of ready.entries()) {
      if (!r.graphUrl || r.sipPort === undefined) throw new Error("load generator did not report its Graph URL and SIP port");
      const rtpRange = rtpRanges[i];
      if (!rtpRange) throw new Error(`no RTP range for gateway ${i}`);
      gateways.push(await startGateway(group, { index: i, graphUrl: r.graphUrl, pbxSipPort: r.sipPort, rtpRange, profileDir, nodeArgs: plan.gatewayNodeArgs, mediaWorkers: plan.mediaWorkers, overloadLoopDelayMs: plan.overloadLoopDelayMs }));
    }
    await Promise.all(loadgens.map((lg, i) => lg.request("setWebhookUrl", { url: gateways[i]!.webhookUrl })));
    log(`gateways up: ${gateways.map((g) => `pid ${g.process.pid} http ${g.httpPort} sip ${g.sipPort} rtp ${g.rtpRange.join("–")}`).join("; ")}`);

    // The first call of a process builds its DTLS certificate and codec tables: not part of any figure.
    await runSetup(loadgens, plan.gateways, 0);
    await waitGatewaysIdle(gateways, 15_000);

    // The ramp comes first, so RSS per call is read against gateways that have carried nothing yet.
    const rampDeadline = new Deadline(profileDir ? deadline.remainingMs() : deadline.remainingMs() - plan.reserveAfterGatewayRampMs);
    const sut: SystemUnderTest = {
      name: "gateway",
      pids: () => gateways.map((g) => g.process.pid),
      loadgens,
      logTail: () => gateways.flatMap((g) => g.process.tail.map(logMessage)),
      delays: () => gatewaysDelays(gateways),
      // Under --profile the whole ramp is profiled already; a second profiler would only add noise.
      startStallProbe: profileDir ? undefined : (sampled) => startStallProbes(gateways, sampled ? plan.stallSampleUs : 0),
    };
    const ramp = await runRamp(
      sut,
      plan,
      plan.steps,
      rampDeadline,
      log,
    );
    log(`gateway density: ${ramp.maxCalls}${ramp.capped ? "+ (no step failed)" : ""} calls; within the jitter budget: ${ramp.maxCallsJitter}${ramp.cappedJitter ? "+" : ""}`);
    await Promise.all(loadgens.map((lg) => lg.request("hangupAll", { concurrency: 50, timeoutMs: 15_000 }, 120_000).catch(() => undefined)));
    await waitGatewaysIdle(gateways, 30_000);
    // Let the teardown of the ramp's calls (timers, sockets, garbage) finish before timing set-up.
    await sleep(plan.settleMs);

    if (!profileDir) {
      facts.setupUnderLoad = await runSetupUnderLoad(sut, plan, ramp.idleRssMB, log);
      await waitGatewaysIdle(gateways, 30_000);
      await sleep(plan.settleMs);
      facts.setup = await runSetup(loadgens, plan.setupSequentialCalls, plan.setupBurstCalls);
      const s = facts.setup;
      const failed = (n: number): string => (n > 0 ? ` (${n} failed)` : "");
      log(
        `setup: webhook→INVITE p50 ${s.sequential.inviteMs.p50.toFixed(1)} ms, 200 OK→accept p50 ${s.sequential.acceptMs.p50.toFixed(1)} ms${failed(s.sequential.failed)}; ` +
          `${s.burst.calls} at once: ${s.burst.inviteMs.p50.toFixed(1)} / ${s.burst.acceptMs.p50.toFixed(1)} ms${failed(s.burst.failed)}`,
      );
      facts.churn = await runChurn(gateways, loadgens, plan, plan.churnCalls);
      const c = facts.churn;
      log(`churn: ${c.completed}/${c.calls} calls in ${c.durationS.toFixed(0)} s, fds ${signed(c.leakedFds)}, UDP sockets ${signed(c.leakedUdpSockets)}, RSS ${signed(c.rssGrowthMB)} MB, CPU per call ${c.cpuMsPerCall.gateway.toFixed(1)} ms gateway / ${c.cpuMsPerCall.loadgen.toFixed(1)} ms load generators${c.errors.length ? `; errors: ${c.errors.join(" | ")}` : ""}`);
    }
    return ramp;
  } finally {
    // SIGINT ends live calls at once and lets --cpu-prof write its file.
    await Promise.all(gateways.map((g) => group.stop(g.process, "SIGINT", 10_000)));
    await Promise.all(loadgens.map((lg) => lg.request("shutdown", null, 5000).catch(() => undefined)));
    await Promise.all(loadgens.map((lg) => group.stop(lg.process, "SIGTERM", 3000)));
  }
}

/** The same ramp through rtpengine. */
async function rtpenginePhase(plan: Plan, deadline: Deadline, srtpProfile: SrtpProfileName): Promise<RampResult> {
  const rtpe = await startRtpengine(group, RTPENGINE_PORTS);
  const loadgens = Array.from({ length: plan.gateways }, (_, i) => LoadgenClient.start(group, `loadgen-rtpe-${i}`));
  try {
    await Promise.all(loadgens.map((lg) => lg.request("init", { mode: "rtpengine", srtpProfile, ngHost: "127.0.0.1", ngPort: rtpe.ngPort })));
    log(`rtpengine ${rtpe.version} up: pid ${rtpe.process.pid}, NG port ${rtpe.ngPort}`);
    // Warm-up call per load generator, as for the gateway.
    await Promise.all(loadgens.map((lg) => lg.request("addCalls", { count: 1, concurrency: 1, timeoutMs: 20_000 })));
    await Promise.all(loadgens.map((lg) => lg.request("hangupAll", { concurrency: 1, timeoutMs: 10_000 })));
    const ramp = await runRamp({ name: "rtpengine", pids: () => [rtpe.process.pid], loadgens, logTail: () => rtpe.process.tail }, plan, plan.rtpengineSteps, deadline, log);
    log(`rtpengine density: ${ramp.maxCalls}${ramp.capped ? "+ (no step failed)" : ""} calls; within the jitter budget: ${ramp.maxCallsJitter}${ramp.cappedJitter ? "+" : ""}`);
    await Promise.all(loadgens.map((lg) => lg.request("hangupAll", { concurrency: 50, timeoutMs: 15_000 }, 120_000).catch(() => undefined)));
    return ramp;
  } finally {
    await Promise.all(loadgens.map((lg) => lg.request("shutdown", null, 5000).catch(() => undefined)));
    await Promise.all(loadgens.map((lg) => group.stop(lg.process, "SIGTERM", 3000)));
    await group.stop(rtpe.process, "SIGTERM", 5000);
  }
}

/** The message of a pino JSON line (with its error, if any), or the line as it is. */
function logMessage(line: string): string {
  try {
    const o = JSON.parse(line) as { msg?: string; err?: { message?: string }; callId?: string };
    return [o.msg, o.err?.message, o.callId].filter(Boolean).join(" — ");
  } catch {
    return line.length > 300 ? `${line.slice(0, 300)}…` : line;
  }
}

function signed(v: number): string {
  return `${v >= 0 ? "+" : ""}${Number.isInteger(v) ? v : v.toFixed(1)}`;
}

async function cleanup(): Promise<void> {
  await group.stopAll("SIGTERM", 3000);
}

let exiting = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (exiting) return;
    exiting = true;
    log(`${signal}: stopping every child process`);
    void cleanup().finally(() => process.exit(130));
  });
}
process.on("exit", () => group.killAllNow());

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\nusage: ${USAGE}\n`);
    for (const p of group.alive) if (p.tail.length) process.stderr.write(`--- ${p.name} (last lines) ---\n${p.tail.slice(-15).join("\n")}\n`);
    await cleanup();
    process.exit(1);
  },
);
