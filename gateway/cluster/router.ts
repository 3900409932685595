import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { LogThrottle } from "../log.js";
import type { CallLocation } from "./call-state.js";
import type { ClusterMetrics } from "./cluster-metrics.js";
import { groupByCall, hasNonEventItems, opensCall, withEvents, withoutEvents, type CallGroup, type Delivery, type RoutableEvent } from "./delivery.js";
import { RedisUnavailableError } from "./errors.js";
import type { ForwardedDelivery } from "./forwarding.js";
import { KeyedQueue } from "./keyed-queue.js";
import { keepWaitingForClaim, unclaimedRetryDelayMs } from "./lease.js";
import type { OrphanCall } from "./ownership.js";

type EventOf<D extends Delivery> = D["events"][number];

/** What the router needs from the rest of the cluster; an interface so its decisions can be exercised alone. */
export interface RouterDeps<D extends Delivery> {
  selfId: string;
  log: Logger;
  metrics: ClusterMetrics;
  /** The call manager of this instance. */
  deliverLocal: (delivery: D) => void;
  /** Whether this instance would take a new call now (not draining, not full). */
  localReady: () => boolean;
  redisUp: () => boolean;
  isLocal: (callId: string) => boolean;
  fresh: (events: EventOf<D>[]) => Promise<EventOf<D>[]>;
  locate: (callId: string) => Promise<CallLocation>;
  takeOrphan: (callId: string, owner: string) => Promise<OrphanCall | undefined>;
  /** Ends a call at Meta whose owner is gone (the composition root's Graph client). */
  terminateAtMeta: (call: OrphanCall) => Promise<void>;
  /** Posts to the instance; throws when it did not take the delivery. */
  send: (instanceId: string, body: ForwardedDelivery<D>, callId: string) => Promise<void>;
  /** Another instance with room for a new call (its load counted up), if any. */
  takeRoom: () => { id: string } | undefined;
  /** Every other instance last known, for deliveries whose owner cannot be looked up. */
  peers: () => readonly { id: string }[];
  sleep?: (ms: number) => Promise<void>;
}

/** Attempts at handing a call's webhooks to its owner before it is looked up again. */
const FORWARD_ATTEMPTS = 3;
const MAX_CALLS_IN_FLIGHT = 10_000;
const MAX_GROUPS_PER_CALL = 64;

/**
 * Sends each of a delivery's events to the instance that owns its call, in order per call: a
 * call's events wait in its own queue while an earlier one is looked up or forwarded. Meta has had
 * its 200 already; nothing here can make it retry.
 */
export class WebhookRouter<D extends Delivery> {
  private readonly queue: KeyedQueue;
  private readonly refusalLog = new LogThrottle();
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly d: RouterDeps<D>) {
    this.sleep = d.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.queue = new KeyedQueue({
      maxKeys: MAX_CALLS_IN_FLIGHT,
      maxPerKey: MAX_GROUPS_PER_CALL,
      onError: (callId, err) => d.log.error({ callId, err }, "webhook routing failed"),
    });
  }

  route(delivery: D): void {
    const receivedAt = performance.now();
    if (hasNonEventItems(delivery)) this.d.deliverLocal(withoutEvents(delivery));
    for (const group of groupByCall(delivery.events as EventOf<D>[])) {
      const queued = this.queue.push(group.callId, () => this.routeGroup(delivery, group, receivedAt));
      if (!queued) this.d.log.warn({ callId: group.callId, events: group.events.length }, "webhook dropped: too many waiting for the same calls");
    }
  }

  /** Takes a delivery another instance forwarded. */
  accept(forwarded: ForwardedDelivery<D>): void {
    const events = forwarded.delivery.events as EventOf<D>[];
    const mine = forwarded.onlyIfOwned ? events.filter((e) => this.d.isLocal(e.callId)) : events;
    if (mine.length > 0) this.d.deliverLocal(withEvents(forwarded.delivery, mine));
  }

  /** Resolves once every webhook received so far has been routed. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private async routeGroup(delivery: D, group: CallGroup<EventOf<D>>, receivedAt: number): Promise<void> {
    try {
      await this.routeShared(delivery, group, receivedAt);
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) throw err;
      await this.routeAlone(delivery, group);
    }
  }

  private async routeShared(delivery: D, group: CallGroup<EventOf<D>>, receivedAt: number): Promise<void> {
    if (!this.d.redisUp()) throw new RedisUnavailableError("redis down");
    const { callId } = group;
    const events = await this.d.fresh(group.events);
    this.d.metrics.duplicate(group.events.length - events.length);
    if (events.length === 0) {
      this.d.log.debug({ callId }, "duplicate webhook events dropped (seen by the cluster)");
      return;
    }
    const sub = withEvents(delivery, events);
    const since = Date.now();
    let forwardFailures = 0;
    for (let attempt = 0; ; attempt++) {
      const where = await this.d.locate(callId);
      switch (where.kind) {
        case "self":
          return this.local(sub, receivedAt);
        case "peer":
          try {
            const sentAt = performance.now();
            await this.d.send(where.owner, { from: this.d.selfId, onlyIfOwned: false, delivery: sub }, callId);
            this.d.metrics.forwarded("ok", (performance.now() - sentAt) / 1000);
            this.d.metrics.routed("forwarded", (performance.now() - receivedAt) / 1000);
            return;
          } catch (err) {
            this.d.metrics.forwarded("failed");
            if (++forwardFailures >= FORWARD_ATTEMPTS) {
              this.d.log.error({ callId, owner: where.owner, err: (err as Error).message }, "webhook not delivered: the call's owner does not answer");
              return;
            }
            // Looked up again: an owner that stopped answering may be gone, and its call an orphan.
            await this.sleep(100 * forwardFailures);
            continue;
          }
        case "orphan":
          return this.endOrphan(callId, where.owner, events);
        case "ended":
          this.d.log.debug({ callId, events: events.map((e) => e.event) }, "webhook for an ended call dropped");
          return;
        case "unclaimed":
          if (events.some(opensCall)) return this.admit(sub, callId, receivedAt);
          if (keepWaitingForClaim(since, Date.now())) {
            await this.sleep(unclaimedRetryDelayMs(attempt));
            continue;
          }
          // Nobody claimed it: handled here as a single instance would (kept briefly, then dropped).
          return this.local(sub, receivedAt);
      }
    }
  }

  /** A new call: taken here when there is room, else by the instance with most room, else refused here. */
  private async admit(sub: D, callId: string, receivedAt: number): Promise<void> {
    if (this.d.localReady()) return this.local(sub, receivedAt);
    const peer = this.d.takeRoom();
    if (peer) {
      try {
        const sentAt = performance.now();
        await this.d.send(peer.id, { from: this.d.selfId, onlyIfOwned: false, delivery: sub }, callId);
        this.d.metrics.forwarded("ok", (performance.now() - sentAt) / 1000);
        this.d.metrics.handedOff();
        this.d.metrics.routed("forwarded", (performance.now() - receivedAt) / 1000);
        this.d.log.info({ callId, to: peer.id }, "new call handed to an instance with room");
        return;
      } catch (err) {
        this.d.log.warn({ callId, to: peer.id, err: (err as Error).message }, "handing a new call over failed: refused here");
      }
    }
    this.local(sub, receivedAt);
  }

  private async endOrphan(callId: string, owner: string, events: EventOf<D>[]): Promise<void> {
    const orphan = await this.d.takeOrphan(callId, owner);
    if (!orphan) return;
    this.d.metrics.orphanEnded("webhook");
    if (events.some((e) => e.event === "terminate")) {
      this.d.log.info({ callId, owner }, "call of a gone instance ended at Meta already");
      return;
    }
    this.d.log.warn({ callId, owner, events: events.map((e) => e.event) }, "webhook for a call whose owner is gone: ending it at Meta");
    await this.d.terminateAtMeta(orphan);
  }

  /**
   * Redis is away: calls held here go on as before; a new call is passed to the call manager, which
   * refuses it (the cluster is not admitting); anything else is offered to every other instance,
   * which takes it only for a call it holds.
   */
  private async routeAlone(delivery: D, group: CallGroup<EventOf<D>>): Promise<void> {
    const { callId, events } = group;
    const sub = withEvents(delivery, events);
    if (this.d.isLocal(callId)) return this.d.deliverLocal(sub);
    if (events.some(opensCall)) {
      this.refusalLog.run("redis", (suppressed) => this.d.log.warn({ callId, suppressed }, "new call refused: Redis unreachable, not admitting calls"));
      return this.d.deliverLocal(sub);
    }
    const peers = this.d.peers();
    const results = await Promise.allSettled(peers.map((p) => this.d.send(p.id, { from: this.d.selfId, onlyIfOwned: true, delivery: sub }, callId)));
    const reached = results.filter((r) => r.status === "fulfilled").length;
    this.d.log.warn({ callId, peers: peers.length, reached }, "Redis unreachable: webhook offered to every instance");
  }

  private local(sub: D, receivedAt: number): void {
    this.d.deliverLocal(sub);
    this.d.metrics.routed("local", (performance.now() - receivedAt) / 1000);
  }
}

export type { RoutableEvent };
