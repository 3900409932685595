import type { CallEndInfo, CallOutcome } from "./meta-call.js";
import type { MetaCall } from "./meta-call.js";

export interface RegistryStats {
  active: number;
  started: number;
  ended: Partial<Record<CallOutcome, number>>;
}

/**
 * The live calls of this process, by Messenger call id. It also remembers recently ended ids, so
 * a connect retried by Meta after the call ended does not start it again.
 */
export class CallRegistry {
  private readonly calls = new Map<string, MetaCall>();
  private readonly endedIds = new Map<string, number>();
  private readonly counters: RegistryStats = { active: 0, started: 0, ended: {} };
  private readonly endListeners: ((info: CallEndInfo) => void)[] = [];
  private readonly addListeners: ((callId: string, call: MetaCall) => void)[] = [];

  constructor(private readonly rememberEndedMs = 10 * 60_000) {}

  get size(): number {
    return this.calls.size;
  }

  get(callId: string): MetaCall | undefined {
    return this.calls.get(callId);
  }

  /** True when the id belongs to a live call or one that ended recently. */
  knows(callId: string): boolean {
    this.expire();
    return this.calls.has(callId) || this.endedIds.has(callId);
  }

  /** Registers a call under its Messenger call id (given when the call learns it later). */
  add(call: MetaCall, callId: string = call.callId): void {
    this.calls.set(callId, call);
    this.counters.started++;
    call.whenEnded((info) => {
      this.calls.delete(callId);
      this.endedIds.set(callId, Date.now());
      this.counters.ended[info.outcome] = (this.counters.ended[info.outcome] ?? 0) + 1;
      for (const l of this.endListeners) l(info);
    });
    for (const l of this.addListeners) l(callId, call);
  }

  /** Told of every call registered, under the id it is registered with (cluster ownership claims it). */
  onCallAdded(listener: (callId: string, call: MetaCall) => void): void {
    this.addListeners.push(listener);
  }

  onCallEnded(listener: (info: CallEndInfo) => void): void {
    this.endListeners.push(listener);
  }

  all(): MetaCall[] {
    return [...this.calls.values()];
  }

  stats(): RegistryStats {
    return { ...this.counters, active: this.calls.size, ended: { ...this.counters.ended } };
  }

  private expire(): void {
    const cutoff = Date.now() - this.rememberEndedMs;
    for (const [id, at] of this.endedIds) {
      if (at >= cutoff) break;
      this.endedIds.delete(id);
    }
  }
}
