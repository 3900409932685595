/** What one bench run does and how long it may take. */
export interface Plan {
  mode: "quick" | "full";
  /** Gateway processes (one per machine unless comparing) and as many load generators, one per gateway. */
  gateways: number;
  /** MEDIA_WORKERS of each gateway: media worker threads, `auto` for one per core. */
  mediaWorkers: number | "auto";
  /** Concurrent-call counts of the density ramp, ascending. */
  steps: number[];
  /** Loads CPU and memory per call are always reported at, even past the first failing step. */
  fixedLoads: number[];
  /** Calls set up in parallel per load generator while ramping. */
  rampConcurrency: number;
  /** A ramp call without media both ways after this long counts as not up. */
  callUpTimeoutMs: number;
  settleMs: number;
  windowMs: number;
  /** Measure any failing step once more before believing it; noisy failures are always measured again. */
  confirmFailure: boolean;
  setupSequentialCalls: number;
  setupBurstCalls: number;
  churnCalls: number;
  churnLanes: number;
  /** Packets each way a churn call carries before hanging up. */
  churnPackets: number;
  /** Wait after the churn before the "after" sample, so closing sockets and timers settle. */
  churnSettleMs: number;
  /** Whole-run budget: later steps are skipped (and said so) rather than overrun it. */
  budgetMs: number;
  /** Kept back from the gateway ramp for set-up, churn and the rtpengine ramp. */
  reserveAfterGatewayRampMs: number;
  rtpengineSteps: number[];
  /** Extra Node flags for the gateway processes, to compare runtime settings. */
  gatewayNodeArgs: string[];
  /** OVERLOAD_LOOP_DELAY_MS for the gateways (0: off, as by default): shows admission under load at the steps past capacity. */
  overloadLoopDelayMs: number;
  /**
   * CPU sampling interval of the stall probe during windows, µs (0: GC and CPU-wait attribution
   * only). 1 ms resolves a 10 ms stall into ten samples at a cost of about 1 % of a core.
   */
  stallSampleUs: number;
  /** Set-up under load: live calls, new calls per second beside them, then a burst at once. */
  setupUnderLoad: { liveCalls: number; ratePerSecond: number; burstCalls: number };
}

export function planFor(quick: boolean, gateways: number, mediaWorkers: number | "auto" = "auto"): Plan {
  if (quick) {
    return {
      mode: "quick",
      gateways,
      mediaWorkers,
      steps: [25, 50, 75, 100, 150, 200, 300],
      fixedLoads: [50, 100, 200],
      rampConcurrency: 10,
      callUpTimeoutMs: 6000,
      settleMs: 1000,
      windowMs: 4000,
      confirmFailure: false,
      setupSequentialCalls: 10,
      setupBurstCalls: 50,
      churnCalls: 200,
      churnLanes: 8,
      churnPackets: 8,
      churnSettleMs: 2000,
      // npm run bench -- --quick also runs the video figures (~45 s) after this: 3 minutes in all.
      budgetMs: 150_000,
      reserveAfterGatewayRampMs: 85_000,
      // Coarser than the gateway's, so its limit fits in what is left of the budget.
      rtpengineSteps: [50, 100, 150, 200, 300],
      gatewayNodeArgs: [],
      overloadLoopDelayMs: 0,
      stallSampleUs: 1000,
      setupUnderLoad: { liveCalls: 50, ratePerSecond: 5, burstCalls: 50 },
    };
  }
  const steps = Array.from({ length: 16 }, (_, i) => 25 * (i + 1));
  return {
    mode: "full",
    gateways,
    mediaWorkers,
    steps,
    fixedLoads: [50, 100, 200],
    rampConcurrency: 10,
    callUpTimeoutMs: 15_000,
    settleMs: 3000,
    windowMs: 15_000,
    confirmFailure: true,
    setupSequentialCalls: 50,
    setupBurstCalls: 50,
    churnCalls: 2000,
    churnLanes: 8,
    churnPackets: 10,
    churnSettleMs: 10_000,
    budgetMs: 75 * 60_000,
    reserveAfterGatewayRampMs: 35 * 60_000,
    rtpengineSteps: steps,
    gatewayNodeArgs: [],
    overloadLoopDelayMs: 0,
    stallSampleUs: 1000,
    setupUnderLoad: { liveCalls: 50, ratePerSecond: 5, burstCalls: 50 },
  };
}
