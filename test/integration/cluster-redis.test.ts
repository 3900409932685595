import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterKeys } from "../../gateway/cluster/keys.js";
import { Instances } from "../../gateway/cluster/instances.js";
import { defineOwnershipScripts, Ownership } from "../../gateway/cluster/ownership.js";
import { RedisLink } from "../../gateway/cluster/redis-link.js";
import { SharedDedupe } from "../../gateway/cluster/shared-dedupe.js";
import { RedisServer } from "../support/redis.js";
import { sleep, waitFor } from "../support/harness.js";

const log = pino({ level: "silent" });
const LEASE_MS = 600;

/** One instance's view of the shared state, on its own connection to a real redis-server. */
function member(redis: RedisServer, id: string, prefix: string) {
  const keys = new ClusterKeys(prefix);
  const link = new RedisLink({ url: redis.url, commandTimeoutMs: 500, log });
  defineOwnershipScripts(link.client);
  const ownership = new Ownership({ selfId: id, keys, link, leaseMs: LEASE_MS, log });
  const instances = new Instances({ selfId: id, keys, link, ownership, leaseMs: LEASE_MS, log, report: () => ({ url: `http://${id}`, liveCalls: ownership.localCount, maxCalls: 10, state: "ready" }) });
  const dedupe = new SharedDedupe<{ callId: string; event: string }>({ keys, link, keyOf: (e) => JSON.stringify(e) });
  link.start();
  return { id, link, ownership, instances, dedupe };
}

describe("cluster state in a real Redis", () => {
  let redis: RedisServer;
  let a: ReturnType<typeof member>;
  let b: ReturnType<typeof member>;
  let c: ReturnType<typeof member>;
  const prefix = `t${Date.now()}:`;

  beforeAll(async () => {
    redis = await RedisServer.start();
    [a, b, c] = [member(redis, "a", prefix), member(redis, "b", prefix), member(redis, "c", prefix)];
    await waitFor(() => a.link.isUp && b.link.isUp && c.link.isUp, 5000, "three connections");
  });
  afterAll(async () => {
    await Promise.all([a, b, c].map((m) => m?.link.close()));
    await redis?.stop();
  });

  it("a claim is exclusive while its lease runs, and the others see its owner", async () => {
    await a.ownership.claim({ callId: "c_1", tag: "" });
    await b.ownership.claim({ callId: "c_1", tag: "" });
    expect(await a.ownership.locate("c_1")).toEqual({ kind: "self" });
    expect(await c.ownership.locate("c_1")).toEqual({ kind: "peer", owner: "a" });
    await b.ownership.release("c_1");
    expect(await c.ownership.locate("c_1")).toEqual({ kind: "peer", owner: "a" });
    await a.ownership.release("c_1");
    expect(await c.ownership.locate("c_1")).toEqual({ kind: "ended" });
    expect(await c.ownership.locate("c_never")).toEqual({ kind: "unclaimed" });
  });

  it("an event is fresh for exactly one instance, however many see it at once", async () => {
    const e = { callId: "c_2", event: "terminate" };
    const results = await Promise.all([a, b, c].map((m) => m.dedupe.fresh([e, e])));
    expect(results.map((r) => r.length).sort()).toEqual([0, 0, 1]);
  });

  it("a dead instance's calls are taken over by exactly one survivor once its lease ran out", async () => {
    await b.instances.heartbeat();
    await b.ownership.claim({ callId: "c_3", tag: "t3" });
    await b.ownership.claim({ callId: "c_4", tag: "t4" });
    expect(await a.instances.refresh()).toEqual([]);
    expect(a.instances.known.map((p) => p.id)).toContain("b");
    // b stops renewing (killed): while its lease runs nobody takes its calls.
    expect(await a.ownership.takeOrphan("c_3", "b")).toBeUndefined();
    await sleep(LEASE_MS + 100);
    expect(await a.ownership.locate("c_3")).toEqual({ kind: "orphan", owner: "b" });
    const gone = await a.instances.refresh();
    expect(gone).toEqual(["b"]);
    const ended: string[] = [];
    const counts = await Promise.all([a, c].map((m) => m.instances.sweep(gone, async (o) => void ended.push(`${o.callId}:${o.tag}`))));
    expect(counts.reduce((x, y) => x + y, 0)).toBe(2);
    expect(ended.sort()).toEqual(["c_3:t3", "c_4:t4"]);
    expect(await a.ownership.locate("c_3")).toEqual({ kind: "ended" });
    // Forgotten once none of its calls are left.
    await a.instances.refresh();
    expect(a.instances.known.map((p) => p.id)).not.toContain("b");
  });

  it("a lapsed claim of an instance still alive is not an orphan: its webhooks still go to it", async () => {
    await a.instances.heartbeat();
    await a.ownership.claim({ callId: "c_6", tag: "" });
    await a.link.client.del(`${prefix}own:c_6`);
    expect(await b.ownership.locate("c_6")).toEqual({ kind: "peer", owner: "a" });
    expect(await b.ownership.takeOrphan("c_6", "b")).toBeUndefined();
    await a.ownership.release("c_6");
    expect(await b.ownership.locate("c_6")).toEqual({ kind: "ended" });
  });

  it("a Redis restarted empty hears every live claim again at the next renewal", async () => {
    await c.ownership.claim({ callId: "c_5", tag: "" });
    await redis.halt();
    await waitFor(() => !c.link.isUp, 3000, "the link to go down");
    await expect(c.ownership.locate("c_5")).rejects.toThrow(/redis/);
    await redis.resume();
    await waitFor(() => c.link.isUp && a.link.isUp, 5000, "the links to come back");
    expect(await a.ownership.locate("c_5")).toEqual({ kind: "unclaimed" });
    await c.instances.heartbeat();
    expect(await a.ownership.locate("c_5")).toEqual({ kind: "peer", owner: "c" });
  });
});
