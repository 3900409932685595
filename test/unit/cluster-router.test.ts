import pino from "pino";
import { describe, expect, it } from "vitest";
import type { CallLocation } from "../../gateway/cluster/call-state.js";
import { ClusterMetrics } from "../../gateway/cluster/cluster-metrics.js";
import type { ForwardedDelivery } from "../../gateway/cluster/forwarding.js";
import { RedisUnavailableError } from "../../gateway/cluster/errors.js";
import { WebhookRouter, type RouterDeps } from "../../gateway/cluster/router.js";
import { loadConfig } from "../../gateway/config/config.js";

interface Ev {
  callId: string;
  event: string;
  n: number;
  direction?: string;
}
interface D {
  events: Ev[];
  replies: string[];
}

/** A router over fakes: where calls are, what was seen, what went where. */
function rig(over: Partial<RouterDeps<D>> = {}) {
  const where = new Map<string, CallLocation>();
  const seen = new Set<string>();
  const local: D[] = [];
  const sent: { to: string; body: ForwardedDelivery<D> }[] = [];
  const terminated: string[] = [];
  let redisUp = true;
  const deps: RouterDeps<D> = {
    selfId: "a",
    log: pino({ level: "silent" }),
    metrics: new ClusterMetrics(),
    deliverLocal: (d) => void local.push(d),
    localReady: () => true,
    redisUp: () => redisUp,
    isLocal: (id) => where.get(id)?.kind === "self",
    fresh: async (events) => {
      if (!redisUp) throw new RedisUnavailableError("down");
      return events.filter((e) => {
        const k = JSON.stringify(e);
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
    },
    locate: async (id) => where.get(id) ?? { kind: "unclaimed" },
    takeOrphan: async (callId, owner) => {
      if (where.get(callId)?.kind !== "orphan") return undefined;
      where.set(callId, { kind: "ended" });
      return { callId, owner, tag: "" };
    },
    terminateAtMeta: async (c) => void terminated.push(c.callId),
    send: async (to, body) => void sent.push({ to, body }),
    takeRoom: () => undefined,
    peers: () => [{ id: "b" }, { id: "c" }],
    sleep: () => new Promise((r) => setTimeout(r, 1)),
    ...over,
  };
  const router = new WebhookRouter<D>(deps);
  return { router, where, local, sent, terminated, setRedis: (up: boolean) => (redisUp = up) };
}

const d = (...events: Ev[]): D => ({ events, replies: [] });
const ev = (callId: string, event: string, n = 0): Ev => ({ callId, event, n });

describe("webhook router", () => {
  it("splits a delivery: own calls here, others' to their owners, in order, each event once", async () => {
    const r = rig();
    r.where.set("mine", { kind: "self" });
    r.where.set("theirs", { kind: "peer", owner: "b" });
    r.router.route({ events: [ev("mine", "media_update", 1), ev("theirs", "media_update", 1), ev("theirs", "terminate")], replies: ["r1"] });
    r.router.route(d(ev("theirs", "terminate"), ev("mine", "terminate")));
    await r.router.idle();
    // The permission reply is handled where it arrived, once, with no events.
    expect(r.local[0]).toEqual({ events: [], replies: ["r1"] });
    expect(r.local.slice(1).map((x) => x.events.map((e) => e.event))).toEqual([["media_update"], ["terminate"]]);
    expect(r.sent).toHaveLength(1);
    expect(r.sent[0]!.to).toBe("b");
    expect(r.sent[0]!.body.delivery.events.map((e) => e.event)).toEqual(["media_update", "terminate"]);
    expect(r.sent[0]!.body.delivery.replies).toEqual([]);
  });

  it("holds a call's webhooks until its claim lands, then forwards them in order", async () => {
    const r = rig();
    r.router.route(d(ev("agent", "call_status", 1)));
    r.router.route(d(ev("agent", "call_status", 2)));
    await new Promise((res) => setTimeout(res, 30));
    expect(r.sent).toHaveLength(0);
    r.where.set("agent", { kind: "peer", owner: "c" });
    await r.router.idle();
    expect(r.sent.map((s) => [s.to, s.body.delivery.events[0]!.n])).toEqual([
      ["c", 1],
      ["c", 2],
    ]);
  });

  it("a business-initiated connect (WhatsApp's answer to an agent's call) waits for the agent's instance, never admitted as a new call", async () => {
    const r = rig({ localReady: () => false, takeRoom: () => ({ id: "b" }) });
    r.router.route(d({ ...ev("agent", "connect", 1), direction: "business_initiated" }));
    await new Promise((res) => setTimeout(res, 30));
    expect(r.sent).toHaveLength(0);
    expect(r.local).toHaveLength(0);
    r.where.set("agent", { kind: "peer", owner: "c" });
    await r.router.idle();
    expect(r.sent.map((s) => [s.to, s.body.delivery.events[0]!.direction])).toEqual([["c", "business_initiated"]]);
  });

  it("a webhook for a gone owner's call ends it at Meta once; a terminate does not", async () => {
    const r = rig();
    r.where.set("o1", { kind: "orphan", owner: "dead" });
    r.where.set("o2", { kind: "orphan", owner: "dead" });
    r.router.route(d(ev("o1", "media_update", 1)));
    r.router.route(d(ev("o1", "media_update", 2)));
    r.router.route(d(ev("o2", "terminate")));
    await r.router.idle();
    expect(r.terminated).toEqual(["o1"]);
    expect(r.local).toHaveLength(0);
  });

  it("a new call at a full instance goes to one with room, else stays to be refused here", async () => {
    const withRoom = rig({ localReady: () => false, takeRoom: () => ({ id: "c" }) });
    withRoom.router.route(d(ev("n1", "connect")));
    await withRoom.router.idle();
    expect(withRoom.sent.map((s) => s.to)).toEqual(["c"]);
    const none = rig({ localReady: () => false });
    none.router.route(d(ev("n2", "connect")));
    await none.router.idle();
    expect(none.local.map((x) => x.events[0]!.callId)).toEqual(["n2"]);
  });

  it("without Redis: own calls served, new calls passed on to be refused, others offered to every instance", async () => {
    const r = rig();
    r.where.set("mine", { kind: "self" });
    r.setRedis(false);
    r.router.route(d(ev("mine", "terminate"), ev("new", "connect"), ev("elsewhere", "terminate")));
    await r.router.idle();
    expect(r.local.map((x) => x.events[0]!.callId)).toEqual(["mine", "new"]);
    expect(r.sent.map((s) => [s.to, s.body.onlyIfOwned])).toEqual([
      ["b", true],
      ["c", true],
    ]);
    // A receiver of such an offer takes only the calls it holds.
    const b = rig();
    b.router.accept({ from: "a", onlyIfOwned: true, delivery: d(ev("elsewhere", "terminate")) });
    expect(b.local).toHaveLength(0);
    b.where.set("elsewhere", { kind: "self" });
    b.router.accept({ from: "a", onlyIfOwned: true, delivery: d(ev("elsewhere", "terminate")) });
    expect(b.local).toHaveLength(1);
  });
});

describe("cluster settings", () => {
  const base = { META_APP_SECRET: "s", META_VERIFY_TOKEN: "v", META_PAGE_ID: "1", META_PAGE_ACCESS_TOKEN: "t" };

  it("REDIS_URL unset: one instance, and cluster settings alone are an error", () => {
    expect(loadConfig(base).cluster).toBeUndefined();
    expect(() => loadConfig({ ...base, CLUSTER_SECRET: "0123456789abcdef" })).toThrow(/CLUSTER_SECRET: only applies with REDIS_URL/);
  });

  it("REDIS_URL set: a secret is required, the rest validated and defaulted", () => {
    expect(() => loadConfig({ ...base, REDIS_URL: "redis://127.0.0.1:6379" })).toThrow(/CLUSTER_SECRET: is required/);
    expect(() => loadConfig({ ...base, REDIS_URL: "http://x", CLUSTER_SECRET: "0123456789abcdef" })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ ...base, REDIS_URL: "redis://x", CLUSTER_SECRET: "short" })).toThrow(/at least 16/);
    expect(() => loadConfig({ ...base, REDIS_URL: "redis://x", CLUSTER_SECRET: "0123456789abcdef", CLUSTER_LEASE_MS: "10" })).toThrow(/CLUSTER_LEASE_MS/);
    expect(() => loadConfig({ ...base, REDIS_URL: "redis://x", CLUSTER_SECRET: "0123456789abcdef", CLUSTER_ADVERTISE_URL: "10.0.0.1:8080" })).toThrow(/CLUSTER_ADVERTISE_URL/);
    const c = loadConfig({ ...base, REDIS_URL: "redis://:pw@127.0.0.1:6379", CLUSTER_SECRET: "0123456789abcdef", CLUSTER_ADVERTISE_URL: "http://10.0.0.1:8080/" }).cluster;
    expect(c).toEqual({ redisUrl: "redis://:pw@127.0.0.1:6379", secret: "0123456789abcdef", advertiseUrl: "http://10.0.0.1:8080", instanceId: undefined, leaseMs: 15_000, keyPrefix: "msgw:" });
  });
});
