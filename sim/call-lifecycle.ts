import { SimCallEndedError, SimTimeoutError } from "./errors.js";

/** Points a test can wait for; `media` means the consumer has received audio packets from the business. */
export type SimCallMilestone = "accepted" | "media" | "ended";

/** Packets the consumer must have received before a call counts as having media. */
export const MEDIA_MILESTONE_PACKETS = 5;

/** Timers that die with a call, and listeners told of every change: what both products' call records share. */
export abstract class CallLifecycle {
  private readonly listeners = new Set<() => void>();
  private readonly timers = new Set<NodeJS.Timeout>();

  abstract get hasEnded(): boolean;

  /** A timer that dies with the call. */
  after(ms: number, work: () => void): void {
    if (this.hasEnded) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      work();
    }, ms);
    this.timers.add(timer);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  protected clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  protected notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** Drops ended calls from a simulator's record and facade maps; returns how many went. */
export function forgetEnded(records: Map<string, { readonly hasEnded: boolean }>, facades: Map<string, unknown>): number {
  let n = 0;
  for (const [id, record] of records) {
    if (!record.hasEnded) continue;
    records.delete(id);
    facades.delete(id);
    n++;
  }
  return n;
}

/** What waitForMilestone needs to know about a call. */
export interface MilestoneSource {
  readonly id: string;
  readonly record: CallLifecycle & { readonly hasEnded: boolean };
  isAccepted(): boolean;
  waitForPackets(count: number, timeoutMs: number): Promise<void>;
  /** The call's state, for timeout messages. */
  describe(): string;
}

/**
 * Resolves when the call reaches `milestone`. Rejects with SimCallEndedError when the call ends first
 * (unless waiting for "ended"), and with SimTimeoutError after `timeoutMs`.
 */
export async function waitForMilestone(call: MilestoneSource, milestone: SimCallMilestone, timeoutMs: number): Promise<void> {
  const record = call.record;
  if (milestone === "media") {
    await waitForMilestone(call, "accepted", timeoutMs);
    let unsubscribe: () => void = () => undefined;
    try {
      await Promise.race([
        call.waitForPackets(MEDIA_MILESTONE_PACKETS, timeoutMs),
        new Promise<never>((_resolve, reject) => {
          const check = (): void => {
            if (record.hasEnded) reject(new SimCallEndedError(call.id, milestone));
          };
          unsubscribe = record.subscribe(check);
          check();
        }),
      ]);
    } finally {
      unsubscribe();
    }
    return;
  }
  const reached = (): boolean => (milestone === "ended" ? record.hasEnded : call.isAccepted());
  if (reached()) return;
  if (record.hasEnded) throw new SimCallEndedError(call.id, milestone);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new SimTimeoutError(`call ${call.id} did not reach "${milestone}" within ${timeoutMs} ms (${call.describe()})`));
    }, timeoutMs);
    const unsubscribe = record.subscribe(() => {
      if (reached()) {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      } else if (record.hasEnded) {
        clearTimeout(timer);
        unsubscribe();
        reject(new SimCallEndedError(call.id, milestone));
      }
    });
  });
}
