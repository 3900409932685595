import type { StallSummary } from "../probe/probe-report.js";
import type { LatencySummary } from "../stats/histogram.js";

export interface DirectionResult extends LatencySummary {
  /** Share within their own stream's median + 20 ms: delay variation, whatever fixed hold comes before it. */
  withinJitterBudget: number;
  sent: number;
  received: number;
  /** Sequence-number gaps seen by the receiving end. */
  lost: number;
  /** Packets whose latency could not be mapped (no onset yet, or a slipped mapping). */
  unmapped: number;
}

/** One measurement window at one load. */
export interface StepResult {
  calls: number;
  activeCalls: number;
  /** The density criterion: 99.9 % within 20 ms of arrival, none lost, every call up. */
  pass: boolean;
  /** Why the step failed the density criterion (empty when it passed). */
  reasons: string[];
  /** The same with 20 ms on top of each stream's median latency instead of 20 ms flat. */
  passJitter: boolean;
  jitterReasons: string[];
  windowS: number;
  /** CPU of the system under test (all its processes), in cores. */
  cores: number;
  cpuPerCall: number;
  rssMB: number;
  /** (RSS now − RSS before any call) / calls. */
  rssPerCallMB: number;
  loadgenCores: number;
  /** Busy CPU of everything else on the machine during the window. */
  otherCores: number;
  /** Datagrams the kernel dropped on the system under test's sockets. */
  udpDrops: number;
  loadgenUdpDrops: number;
  toPbx: DirectionResult;
  toMeta: DirectionResult;
  both: LatencySummary;
  loadgenLoopDelayP99Ms: number;
  loadgenLoopDelayMaxMs: number;
  /**
   * The longest event-loop delay in the system's own processes over the window (the gateways
   * report it on /metrics; undefined for rtpengine). A packet late by more than this was held up
   * outside the system: in the load generator, or the kernel.
   */
  systemLoopDelayMaxMs: number | undefined;
  /**
   * The gateway's own admission measure in the window's last second (`gateway_media_loop_delay_seconds`:
   * the worst media thread's p99 lateness of a 10 ms timer); undefined for rtpengine.
   */
  mediaLoopLateMs: number | undefined;
  /** Call set-up (placed → media mapped both ways) of the calls added for this step. */
  mediaUpMsP50: number;
  setupFailures: number;
  /** First errors of calls that did not come up for this step. */
  setupErrors: string[];
  /** Windows measured at this load (failed windows are measured again when others were busy). */
  attempts: number;
  /** Every event-loop delay over 10 ms in the system's processes during the window, and its causes (gateways only). */
  stalls?: StallSummary;
}

export interface RampResult {
  system: "gateway" | "rtpengine";
  maxCalls: number;
  /** True when no measured step failed (the steps or the time ran out first): the figure is a floor. */
  capped: boolean;
  /** Largest load passing the jitter-budget criterion, and whether that is a floor too. */
  maxCallsJitter: number;
  cappedJitter: boolean;
  idleRssMB: number;
  steps: StepResult[];
  skipped: string[];
}

export interface SetupStats {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export interface SetupResult {
  sequential: { calls: number; inviteMs: SetupStats; acceptMs: SetupStats; mediaUpMs: SetupStats; failed: number };
  burst: { calls: number; inviteMs: SetupStats; acceptMs: SetupStats; mediaUpMs: SetupStats; failed: number };
}

/** New calls set up beside live ones, and what the live calls' audio did meanwhile. */
export interface SetupUnderLoadResult {
  liveCalls: number;
  /** The live calls alone in a profiled window: stall attribution and CPU by function. */
  profiled: StepResult;
  steady: { ratePerSecond: number; calls: number; failed: number; inviteMs: SetupStats; acceptMs: SetupStats; mediaUpMs: SetupStats; window: StepResult };
  burst: { calls: number; failed: number; inviteMs: SetupStats; acceptMs: SetupStats; mediaUpMs: SetupStats; window: StepResult };
}

export interface ResourceSnapshot {
  rssMB: number;
  fds: number;
  udpSockets: number;
  heapUsedMB: number;
}

export interface ChurnResultSummary {
  calls: number;
  lanes: number;
  completed: number;
  failed: number;
  errors: string[];
  durationS: number;
  before: ResourceSnapshot;
  after: ResourceSnapshot;
  leakedFds: number;
  leakedUdpSockets: number;
  rssGrowthMB: number;
  heapGrowthMB: number;
  /** Heap in use (after a full collection) and RSS, summed over the gateways, as the churn went on. */
  heapCurveMB: { calls: number; heapMB: number; rssMB: number }[];
  /**
   * CPU time per churn call (set-up, a few packets each way, hang-up), summed over all threads of the
   * gateways and of the load generators: what a burst of new calls asks of the machine.
   */
  cpuMsPerCall: { gateway: number; loadgen: number };
}
