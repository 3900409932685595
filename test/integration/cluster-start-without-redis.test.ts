import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { graphRequests, startHarness, waitFor, type Harness } from "../support/harness.js";
import { RedisServer, requireRedis } from "../support/redis.js";

/**
 * One cluster member whose Redis is not there when it starts: it runs, says why it takes no calls,
 * refuses them at Meta and answers /readyz 503, then takes calls once Redis appears.
 */
describe("a cluster member started before its Redis", () => {
  let h: Harness;
  let redis: RedisServer;
  const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/readyz`)).status;

  beforeAll(async () => {
    requireRedis();
    redis = await RedisServer.start();
    await redis.halt();
    h = await startHarness({ env: { REDIS_URL: redis.url, CLUSTER_SECRET: "cluster-test-secret-0123456789", CLUSTER_LEASE_MS: "3000" } });
  });
  afterAll(async () => {
    await h?.stop();
    await redis?.stop();
  });

  it("refuses calls with a clear log line and /readyz 503 while Redis is away", async () => {
    await waitFor(() => h.logs.find("Redis unreachable: serving the calls this instance owns, refusing new ones").length > 0, 5000, "the log line");
    expect(await readyz()).toBe(503);
    const call = await h.sim.placeCall();
    await waitFor(() => graphRequests(h.sim, "reject", call.id).length === 1, 5000, "the call to be rejected at Meta");
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
    expect(h.logs.find("new call refused: Redis unreachable, not admitting calls").some((l) => l.callId === call.id)).toBe(true);
  });

  it("takes calls once Redis answers, and claims them there", async () => {
    await redis.resume();
    await waitFor(() => h.logs.find(/^Redis reachable/).length > 0, 10_000, "the gateway to reach Redis");
    expect(await readyz()).toBe(200);
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const { Redis } = await import("ioredis");
    const r = new Redis(redis.url);
    try {
      expect(await r.get(`msgw:own:${call.id}`)).toBe(h.gateway.cluster!.instanceId);
    } finally {
      r.disconnect();
    }
    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 3000, "the call to end");
  });
});
