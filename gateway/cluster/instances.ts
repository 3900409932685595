import type { Logger } from "pino";
import { pickInstanceWithRoom, type InstanceSnapshot, type InstanceState } from "./admission.js";
import type { ClusterKeys } from "./keys.js";
import type { OrphanCall, Ownership } from "./ownership.js";
import type { RedisLink } from "./redis-link.js";

export interface SelfReport {
  url: string;
  liveCalls: number;
  maxCalls: number;
  state: InstanceState;
}

const STATES: readonly InstanceState[] = ["ready", "full", "overloaded", "draining"];

/**
 * The instances of the cluster: this one's published address, load and state (its liveness key,
 * renewed with its claims), the others' as last read, and the clean-up after an instance that is
 * gone: its calls are taken over one by one and ended at Meta.
 */
export class Instances {
  private peers: InstanceSnapshot[] = [];

  constructor(
    private readonly o: {
      selfId: string;
      keys: ClusterKeys;
      link: RedisLink;
      ownership: Ownership;
      leaseMs: number;
      log: Logger;
      report: () => SelfReport;
    },
  ) {}

  /** The others, as of the last refresh. */
  get known(): readonly InstanceSnapshot[] {
    return this.peers;
  }

  urlOf(id: string): string | undefined {
    return this.peers.find((p) => p.id === id)?.url;
  }

  /** Reads one instance's published address now (one that started after the last refresh). */
  async fetchUrl(id: string): Promise<string | undefined> {
    const url = await this.o.link.run("read an instance", (r) => r.hget(this.o.keys.instance(id), "url"));
    return url ?? undefined;
  }

  /**
   * The instance with most room for a new call. Its load is counted up here at once, so a burst of
   * calls arriving at a full instance spreads out instead of all going to the same one.
   */
  takeRoom(): InstanceSnapshot | undefined {
    const peer = pickInstanceWithRoom(this.peers, this.o.selfId);
    if (peer) peer.liveCalls++;
    return peer;
  }

  /** Publishes this instance (its liveness) and renews its claims, in one round. */
  async heartbeat(): Promise<void> {
    const k = this.o.keys;
    const me = this.o.report();
    await this.o.link.run("publish this instance", async (r) => {
      await r
        .multi()
        .hset(k.instance(this.o.selfId), { url: me.url, live: me.liveCalls, max: me.maxCalls, state: me.state, at: Date.now() })
        .pexpire(k.instance(this.o.selfId), this.o.leaseMs)
        .sadd(k.instances(), this.o.selfId)
        .exec();
    });
    await this.o.ownership.renewAll();
  }

  /** Reads every other instance's published state; the ones whose liveness key expired are returned as gone. */
  async refresh(): Promise<string[]> {
    const k = this.o.keys;
    const ids = (await this.o.link.run("list instances", (r) => r.smembers(k.instances()))).filter((id) => id !== this.o.selfId);
    if (ids.length === 0) {
      this.peers = [];
      return [];
    }
    const rows = await this.o.link.run("read instances", async (r) => {
      const p = r.pipeline();
      for (const id of ids) p.hgetall(k.instance(id));
      return (await p.exec()) ?? [];
    });
    const peers: InstanceSnapshot[] = [];
    const gone: string[] = [];
    rows.forEach(([err, row], i) => {
      const id = ids[i]!;
      const snap = err ? undefined : toSnapshot(id, row as Record<string, string>);
      if (snap) peers.push(snap);
      else if (!err) gone.push(id);
    });
    this.peers = peers;
    return gone;
  }

  /**
   * Ends at Meta every call of the instances that are gone, each taken over atomically so that only
   * one survivor ends it. Calls whose claim still runs are left for the next round.
   */
  async sweep(gone: readonly string[], end: (call: OrphanCall) => Promise<void>): Promise<number> {
    const k = this.o.keys;
    let ended = 0;
    for (const dead of gone) {
      const callIds = await this.o.link.run("list a gone instance's calls", (r) => r.smembers(k.callsOf(dead)));
      for (const callId of callIds) {
        const orphan = await this.o.ownership.takeOrphan(callId, dead);
        if (!orphan) continue;
        ended++;
        this.o.log.warn({ callId, owner: dead }, "owner of the call is gone: ending it at Meta");
        await end(orphan);
      }
      const left = await this.o.link.run("check a gone instance", (r) => r.scard(k.callsOf(dead)));
      if (left === 0) {
        await this.o.link.run("forget a gone instance", (r) => r.multi().srem(k.instances(), dead).del(k.callsOf(dead)).exec());
        this.o.log.info({ instance: dead }, "gone instance forgotten: none of its calls left");
      }
    }
    return ended;
  }

  /** Takes this instance out at a clean stop (its calls are already over). */
  async withdraw(): Promise<void> {
    const k = this.o.keys;
    await this.o.link.run("withdraw this instance", (r) => r.multi().del(k.instance(this.o.selfId)).srem(k.instances(), this.o.selfId).exec());
  }
}

function toSnapshot(id: string, row: Record<string, string>): InstanceSnapshot | undefined {
  if (!row.url) return undefined;
  const state = STATES.find((s) => s === row.state) ?? "draining";
  const live = Number(row.live);
  const max = Number(row.max);
  return { id, url: row.url, liveCalls: Number.isFinite(live) ? live : 0, maxCalls: Number.isFinite(max) ? max : 0, state };
}
