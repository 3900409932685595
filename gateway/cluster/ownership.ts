import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { decodeCallState, encodeLive, locate, type CallLocation } from "./call-state.js";
import type { ClusterKeys } from "./keys.js";
import type { RedisLink } from "./redis-link.js";

/** A live call's record outlives its lease by far, so survivors can still tell whose it was. */
const LIVE_RECORD_S = 6 * 3600;
/** An ended call is remembered as long as Meta may still retry its webhooks. */
const ENDED_RECORD_S = 3600;

/**
 * Claims a call for `owner` unless another instance holds it; renews it when `owner` already
 * does. KEYS: claim, record, owner's set. ARGV: owner, lease ms, record, record ttl s, call id.
 * Returns the holder after the call: `owner` on success, the other instance otherwise.
 */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
return ARGV[1]`;

/**
 * Lets go of a call that ended: the claim goes, the record says ended. KEYS: claim, record, owner's
 * set. ARGV: owner, ended ttl s, call id. Touches nothing another instance holds.
 */
const RELEASE = `
local cur = redis.call('GET', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[3])
if cur and cur ~= ARGV[1] then return 0 end
if cur then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[2], 'ended', 'EX', ARGV[2])
return 1`;

/**
 * Takes over a call whose owner's lease ran out, so that exactly one instance ends it at Meta.
 * KEYS: claim, record, dead owner's set. ARGV: dead owner, ended ttl s, call id. Returns the
 * record it replaced (with the call's tag), or false when the call is held again or not the dead
 * owner's.
 */
const TAKE_ORPHAN = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local rec = redis.call('GET', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[3])
local prefix = 'live\\t' .. ARGV[1] .. '\\t'
if not rec or string.sub(rec, 1, #prefix) ~= prefix then return false end
redis.call('SET', KEYS[2], 'ended', 'EX', ARGV[2])
return rec`;

type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;
interface Scripted {
  msgwClaim: ScriptCall;
  msgwRelease: ScriptCall;
  msgwTakeOrphan: ScriptCall;
}

export function defineOwnershipScripts(r: Redis): void {
  r.defineCommand("msgwClaim", { numberOfKeys: 3, lua: CLAIM });
  r.defineCommand("msgwRelease", { numberOfKeys: 3, lua: RELEASE });
  r.defineCommand("msgwTakeOrphan", { numberOfKeys: 3, lua: TAKE_ORPHAN });
}

function scripted(r: unknown): Scripted {
  return r as Scripted;
}

/** A call this instance holds, as it is written into Redis. */
export interface OwnedCall {
  callId: string;
  /** Opaque to the cluster: what ending the call at Meta needs beyond its id (e.g. a business id). */
  tag: string;
}

/** A dead owner's call, taken over so it can be ended at Meta. */
export interface OrphanCall {
  callId: string;
  tag: string;
  /** The instance that held it. */
  owner: string;
}

/**
 * This instance's claims on its calls, and where anyone's call is. The local set is the truth for
 * this instance's own calls: it is what gets re-asserted after Redis comes back, and what is served
 * while Redis is away.
 */
export class Ownership {
  private readonly local = new Map<string, OwnedCall>();
  /** Ended calls whose release Redis did not take: retried with the next renewal. */
  private readonly unreleased = new Set<string>();

  constructor(
    private readonly o: { selfId: string; keys: ClusterKeys; link: RedisLink; leaseMs: number; log: Logger },
  ) {}

  isLocal(callId: string): boolean {
    return this.local.has(callId);
  }

  get localCount(): number {
    return this.local.size;
  }

  localCallIds(): string[] {
    return [...this.local.keys()];
  }

  /** Takes a call this instance started; kept locally even when Redis cannot be told (re-asserted later). */
  async claim(call: OwnedCall): Promise<void> {
    this.local.set(call.callId, call);
    try {
      const holder = await this.o.link.run("claim a call", (r) => this.claimOn(r, call));
      if (holder !== this.o.selfId) this.o.log.error({ callId: call.callId, holder }, "call already claimed by another instance");
    } catch (err) {
      this.o.log.warn({ callId: call.callId, err: (err as Error).message }, "call claim not written yet: re-asserted once Redis answers");
    }
  }

  async release(callId: string): Promise<void> {
    if (!this.local.delete(callId)) return;
    const k = this.o.keys;
    try {
      await this.o.link.run("release a call", (r) =>
        scripted(r).msgwRelease(k.owner(callId), k.call(callId), k.callsOf(this.o.selfId), this.o.selfId, ENDED_RECORD_S, callId),
      );
    } catch (err) {
      // Meanwhile the claim lapses and the record names this instance, alive: nobody takes the
      // call for an orphan. The release is written with the next renewal that reaches Redis.
      this.unreleased.add(callId);
      this.o.log.warn({ callId, err: (err as Error).message }, "call release not written yet: retried with the next renewal");
    }
  }

  /** Renews every local claim in one round trip (and re-asserts them after Redis lost them). */
  async renewAll(): Promise<void> {
    await this.retryReleases();
    if (this.local.size === 0) return;
    const calls = [...this.local.values()];
    const results = await this.o.link.run("renew claims", async (r) => {
      const p = r.pipeline();
      for (const c of calls) this.claimOn(p as unknown as Redis, c);
      return (await p.exec()) ?? [];
    });
    results.forEach(([err, holder], i) => {
      const callId = calls[i]!.callId;
      if (err) this.o.log.warn({ callId, err: err.message }, "claim renewal failed");
      else if (holder !== this.o.selfId) this.o.log.error({ callId, holder }, "call now claimed by another instance");
    });
  }

  async locate(callId: string): Promise<CallLocation> {
    const k = this.o.keys;
    const [owner, record] = await this.o.link.run("look up a call", (r) => r.mget(k.owner(callId), k.call(callId)));
    const where = locate(this.o.selfId, owner ?? null, decodeCallState(record ?? null));
    if (where.kind !== "orphan") return where;
    // A lapsed claim alone is not a death: an owner still alive keeps its call (it re-asserts it,
    // or has ended it and not yet written so); only a gone instance's calls are orphans.
    const alive = await this.o.link.run("check an owner", (r) => r.exists(k.instance(where.owner)));
    return alive ? { kind: "peer", owner: where.owner } : where;
  }

  /** Takes over a dead owner's call; undefined when another instance got there first or it is held again. */
  async takeOrphan(callId: string, deadOwner: string): Promise<OrphanCall | undefined> {
    const k = this.o.keys;
    const rec = await this.o.link.run("take over a call", (r) =>
      scripted(r).msgwTakeOrphan(k.owner(callId), k.call(callId), k.callsOf(deadOwner), deadOwner, ENDED_RECORD_S, callId),
    );
    if (typeof rec !== "string") return undefined;
    const state = decodeCallState(rec);
    return { callId, owner: deadOwner, tag: state?.kind === "live" ? state.tag : "" };
  }

  private async retryReleases(): Promise<void> {
    if (this.unreleased.size === 0) return;
    const k = this.o.keys;
    const ids = [...this.unreleased];
    await this.o.link.run("release calls", async (r) => {
      const p = r.pipeline();
      for (const id of ids) (scripted(p).msgwRelease as ScriptCall)(k.owner(id), k.call(id), k.callsOf(this.o.selfId), this.o.selfId, ENDED_RECORD_S, id);
      await p.exec();
    });
    for (const id of ids) this.unreleased.delete(id);
  }

  private claimOn(r: Redis, call: OwnedCall): Promise<unknown> {
    const k = this.o.keys;
    return scripted(r).msgwClaim(
      k.owner(call.callId),
      k.call(call.callId),
      k.callsOf(this.o.selfId),
      this.o.selfId,
      this.o.leaseMs,
      encodeLive(this.o.selfId, call.tag),
      LIVE_RECORD_S,
      call.callId,
    );
  }
}

