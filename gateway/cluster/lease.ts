/**
 * Timing of claims and liveness, from the one lease setting. Pure, so the arithmetic is tested
 * without Redis.
 *
 * An instance renews its calls' claims and its own liveness key every third of the lease: two
 * renewals may be lost (a slow Redis, a GC pause) before anything expires. Survivors look for
 * expired instances often enough that a dead instance's calls are ended at Meta within the
 * lease plus a couple of seconds.
 */
export interface LeaseTiming {
  leaseMs: number;
  renewEveryMs: number;
  sweepEveryMs: number;
  /**
   * After Redis comes back, how long before anyone's calls are judged orphaned: a Redis that lost
   * its data (or let keys expire while down) must first hear every live instance re-assert its calls.
   */
  settleMs: number;
}

/** Upper bound on the sweep period whatever the lease: ends of dead calls are bounded by lease + this. */
const MAX_SWEEP_MS = 2_000;

export function leaseTiming(leaseMs: number): LeaseTiming {
  if (!Number.isFinite(leaseMs) || leaseMs < 300) throw new RangeError(`lease must be at least 300 ms, got ${leaseMs}`);
  const renewEveryMs = Math.floor(leaseMs / 3);
  return { leaseMs, renewEveryMs, sweepEveryMs: Math.min(renewEveryMs, MAX_SWEEP_MS), settleMs: leaseMs };
}

/** Whether a claim renewed at `renewedAt` still holds at `now`. */
export function leaseHolds(renewedAt: number, now: number, leaseMs: number): boolean {
  return now - renewedAt < leaseMs;
}

/** How long a webhook for a call nobody has claimed yet waits for the claim (an agent call's id comes with connect's response). */
export const UNCLAIMED_WAIT_MS = 10_000;

/**
 * Delay before the `attempt`-th (0-based) new look-up of a call nobody owns yet: quick at first,
 * since the claim usually lands within milliseconds, then every quarter second.
 */
export function unclaimedRetryDelayMs(attempt: number): number {
  return Math.min(250, 25 * 2 ** Math.max(0, Math.min(attempt, 4)));
}

/** Whether a webhook that started waiting at `since` should wait for a claim again at `now`. */
export function keepWaitingForClaim(since: number, now: number, waitMs: number = UNCLAIMED_WAIT_MS): boolean {
  return now - since < waitMs;
}
