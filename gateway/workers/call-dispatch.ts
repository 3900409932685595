import { groupByCall, hasNonEventItems, opensCall, withEvents, withoutEvents, type Delivery } from "../cluster/delivery.js";

/** A new call handed to a worker counts toward its load until the worker reports it, at most this long. */
const ASSIGNED_COUNTS_MS = 5_000;
/** A call's worker is remembered this long after it ended, so late webhooks reach the worker that knew it. */
const ENDED_KEPT_MS = 60_000;

export interface CallDispatchOptions<D extends Delivery> {
  workers: number;
  /** `admit`: whether a call the delivery opens is to be taken (false: the worker refuses it at Meta). */
  send: (worker: number, delivery: D, admit: boolean) => void;
  /** Whether one more new call may be taken now, given `committed` calls live or just handed out. */
  admits: (committed: number) => boolean;
  now?: () => number;
}

/**
 * Which media worker gets each webhook. A call's events go to the worker that holds it; a
 * consumer's new call goes to the least loaded worker; an event for a call no worker has reported
 * yet (an agent's call whose id Meta's connect response has not given its worker yet) goes to every
 * worker, and each keeps it briefly as the call manager keeps early events, so only the call's own
 * worker acts on it. Items that are not call events stay with worker 0, handled once. Whether a new
 * call is taken is decided here, for the whole process, and travels with its delivery.
 */
export class CallDispatch<D extends Delivery> {
  /** Each call's worker; `businessId` (its Page or number) once the worker registered it. */
  private readonly owners = new Map<string, { worker: number; businessId?: string; endedAt?: number }>();
  private readonly live: number[];
  /** In the order handed out, so the oldest are first. */
  private readonly assigned = new Map<string, { worker: number; at: number }>();
  /** Ended calls in the order they ended: expiry reads only the head, not every call remembered. */
  private readonly ended: { callId: string; at: number }[] = [];
  private endedHead = 0;
  private readonly now: () => number;

  constructor(private readonly o: CallDispatchOptions<D>) {
    this.live = Array.from({ length: o.workers }, () => 0);
    this.now = o.now ?? Date.now;
  }

  route(delivery: D): void {
    for (const { callId, events } of groupByCall(delivery.events)) {
      const sub = withEvents(delivery, events);
      const owner = this.owners.get(callId);
      if (owner) {
        this.o.send(owner.worker, sub, true);
      } else if (events.some(opensCall)) {
        const worker = this.leastLoaded();
        const admit = this.o.admits(this.committed);
        this.owners.set(callId, { worker });
        // A refused call still goes to a worker, which rejects it at Meta; it never counts as load.
        if (admit) this.assigned.set(callId, { worker, at: this.now() });
        this.o.send(worker, sub, admit);
      } else {
        for (let w = 0; w < this.o.workers; w++) this.o.send(w, sub, true);
      }
    }
    if (hasNonEventItems(delivery)) this.o.send(0, withoutEvents(delivery), true);
  }

  /** A worker registered a call (a consumer's it was handed, or an agent's it placed). */
  callAdded(worker: number, callId: string, businessId: string): void {
    this.owners.set(callId, { worker, businessId });
    this.assigned.delete(callId);
    this.live[worker] = (this.live[worker] ?? 0) + 1;
  }

  callEnded(worker: number, callId: string): void {
    this.live[worker] = Math.max(0, (this.live[worker] ?? 0) - 1);
    const owner = this.owners.get(callId);
    if (owner) this.markEnded(callId, owner);
    this.expire();
  }

  /**
   * The worker a new call would go to: fewest live and just-assigned calls (plus `extra`, e.g. SIP
   * calls not yet registered), lowest index on a tie.
   */
  leastLoaded(extra?: (worker: number) => number): number {
    this.expire();
    const load = this.live.map((n, w) => n + (extra?.(w) ?? 0));
    for (const a of this.assigned.values()) load[a.worker] = (load[a.worker] ?? 0) + 1;
    let best = 0;
    for (let w = 1; w < load.length; w++) if ((load[w] ?? 0) < (load[best] ?? 0)) best = w;
    return best;
  }

  /** Live calls per worker, as the workers reported them. */
  liveCalls(): readonly number[] {
    return this.live;
  }

  get totalLive(): number {
    return this.live.reduce((a, b) => a + b, 0);
  }

  /** Live calls and new calls handed out but not reported yet: what admission counts. */
  get committed(): number {
    this.expire();
    return this.totalLive + this.assigned.size;
  }

  /** A worker is gone: its calls are no longer anybody's. Returns the live calls it held. */
  dropWorker(worker: number): { callId: string; businessId: string }[] {
    const held: { callId: string; businessId: string }[] = [];
    for (const [callId, o] of this.owners) {
      if (o.worker !== worker) continue;
      if (o.businessId !== undefined && o.endedAt === undefined) held.push({ callId, businessId: o.businessId });
      this.owners.delete(callId);
    }
    for (const [id, a] of this.assigned) if (a.worker === worker) this.assigned.delete(id);
    this.live[worker] = 0;
    return held;
  }

  private markEnded(callId: string, owner: { endedAt?: number }): void {
    owner.endedAt = this.now();
    this.ended.push({ callId, at: owner.endedAt });
  }

  /** Amortised O(1) per call: both lists are in time order, so only expired heads are read. */
  private expire(): void {
    const now = this.now();
    for (const [id, a] of this.assigned) {
      if (now - a.at <= ASSIGNED_COUNTS_MS) break;
      this.assigned.delete(id);
      // Never reported: the worker refused it (full, draining) or it failed before it was registered.
      const owner = this.owners.get(id);
      if (owner?.worker === a.worker && owner.endedAt === undefined) this.markEnded(id, owner);
    }
    while (this.endedHead < this.ended.length) {
      const e = this.ended[this.endedHead]!;
      if (now - e.at <= ENDED_KEPT_MS) break;
      this.endedHead++;
      // Unless the id was seen again since (a later end is further down the list).
      if (this.owners.get(e.callId)?.endedAt === e.at) this.owners.delete(e.callId);
    }
    if (this.endedHead > 1024 && this.endedHead * 2 > this.ended.length) {
      this.ended.splice(0, this.endedHead);
      this.endedHead = 0;
    }
  }
}
