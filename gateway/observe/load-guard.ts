/**
 * Whether the machine has room for one more call's media, from one load sample a second. Live
 * calls come first: when the media threads run late or the cores are nearly all busy, a new call
 * would push every live call's packets past what a listener hears, so new calls are refused
 * (forwarded to another instance in a cluster) until the load has been back within its limits for
 * a few seconds. The same idea as rtpengine's max-load/max-cpu and FreeSWITCH's min-idle-cpu.
 */

/** OVERLOAD_LOOP_DELAY_MS and OVERLOAD_MIN_IDLE_CPU; 0 turns a limit off. */
export interface OverloadLimits {
  /** Refuse while a media thread's event loop runs this late (p99 over a second), in ms. */
  maxLoopDelayMs: number;
  /** Refuse while less than this share of the machine's CPU time is idle, in percent. */
  minIdleCpuPercent: number;
}

/** One second of load: the worst media thread's lateness and the machine's idle CPU. */
export interface LoadSample {
  /** p99 of how late the loop ran a 10 ms timer, worst media thread, ms. */
  loopDelayMs: number;
  /** Idle share of every core's time over the second, percent. */
  idleCpuPercent: number;
}

/** `accepting`: new calls start here; `overloaded`: refused until the load has been within limits for a while. */
export type LoadState = "accepting" | "overloaded";

/** Samples within limits in a row that end an overload: a few seconds, so a call refused is not retried into the same overload. */
export const RECOVERY_SAMPLES = 3;

/** Which limit a sample breaks, in words for `/readyz` and the log; undefined when it breaks none. */
export function overloadReason(limits: OverloadLimits, s: LoadSample): string | undefined {
  if (limits.maxLoopDelayMs > 0 && s.loopDelayMs > limits.maxLoopDelayMs) {
    return `media event loop ${s.loopDelayMs.toFixed(1)} ms late (limit ${limits.maxLoopDelayMs} ms)`;
  }
  if (limits.minIdleCpuPercent > 0 && s.idleCpuPercent < limits.minIdleCpuPercent) {
    return `idle CPU ${s.idleCpuPercent.toFixed(1)} % (minimum ${limits.minIdleCpuPercent} %)`;
  }
  return undefined;
}

/** What one sample changed. */
export interface LoadVerdict {
  state: LoadState;
  /** The state differs from the one before this sample. */
  changed: boolean;
  /** The limit broken (the latest sample's, or the one that started the overload while recovering). */
  reason: string | undefined;
}

/**
 * The admission state machine. One sample over a limit starts an overload at once (the next
 * call would already hurt the live ones); RECOVERY_SAMPLES within limits in a row end it.
 * Waiting for two seconds over was measured (bench, 2 cores, limit 20 ms): calls arriving ten at a
 * time past capacity all got in before the second one, and every live call was late by then. The
 * limit itself is what keeps the spike of a few calls set up at once from refusing the next ones.
 */
export class LoadGuard {
  #state: LoadState = "accepting";
  #reason: string | undefined;
  #within = 0;

  constructor(private readonly limits: OverloadLimits) {}

  get state(): LoadState {
    return this.#state;
  }

  /** Why new calls are refused, while they are. */
  get reason(): string | undefined {
    return this.#state === "overloaded" ? this.#reason : undefined;
  }

  observe(sample: LoadSample): LoadVerdict {
    const before = this.#state;
    const broken = overloadReason(this.limits, sample);
    if (broken !== undefined) {
      this.#state = "overloaded";
      this.#reason = broken;
      this.#within = 0;
    } else if (this.#state === "overloaded" && ++this.#within >= RECOVERY_SAMPLES) {
      this.#state = "accepting";
      this.#within = 0;
    }
    return { state: this.#state, changed: this.#state !== before, reason: broken ?? this.reason };
  }
}
