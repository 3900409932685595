import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { graphRequests, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * OVERLOAD_LOOP_DELAY_MS: a gateway whose media loop runs late refuses new calls at Meta, says why
 * on /readyz and in its metrics, and takes calls again once the loop has been on time for a few
 * seconds. The gateway runs on this test's thread, so holding this thread is holding its media loop.
 */
describe("admission under load", () => {
  let h: Harness;
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const r = await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}${path}`);
    return { status: r.status, body: await r.text() };
  };
  const metric = async (name: string): Promise<number> => {
    const line = (await get("/metrics")).body.split("\n").find((l) => l.startsWith(`${name} `));
    if (line === undefined) throw new Error(`no ${name} in /metrics`);
    return Number(line.split(" ")[1]);
  };

  beforeAll(async () => {
    h = await startHarness({ env: { OVERLOAD_LOOP_DELAY_MS: "20" } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("measures the loop and takes calls while it is on time", async () => {
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await metric("gateway_overloaded")).toBe(0);
    expect(await metric("gateway_media_loop_delay_seconds")).toBeLessThan(0.02);
    const idle = await metric("gateway_idle_cpu_ratio");
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThanOrEqual(1);
    expect((await get("/readyz")).status).toBe(200);
  });

  it("refuses a new call at Meta while the loop runs late, with the reason on /readyz", async () => {
    // Work that holds the loop 60 ms at a time for about two seconds: every run of the meter's
    // 10 ms timer comes about 50 ms late.
    const until = Date.now() + 2_200;
    while (Date.now() < until) {
      const chunk = performance.now() + 60;
      while (performance.now() < chunk);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => h.logs.find("overloaded: new calls refused").length > 0, 3_000, "the overload to be noticed");
    const readyz = await get("/readyz");
    expect(readyz.status).toBe(503);
    expect(readyz.body).toMatch(/^not ready: overloaded: media event loop \d+\.\d ms late \(limit 20 ms\)/);
    expect(await metric("gateway_overloaded")).toBe(1);
    expect(await metric("gateway_overloads_total")).toBe(1);

    const call = await h.sim.placeCall();
    await waitFor(() => graphRequests(h.sim, "reject", call.id).length === 1, 5_000, "the call to be rejected at Meta");
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
    expect(h.logs.find("call refused: not admitting calls").some((l) => l.callId === call.id)).toBe(true);
  });

  it("takes calls again once the loop has been on time for a few seconds", async () => {
    await waitFor(() => h.logs.find("load back within limits: new calls taken").length > 0, 20_000, "the load to be back within limits");
    expect((await get("/readyz")).status).toBe(200);
    expect(await metric("gateway_overloaded")).toBe(0);
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 3_000, "the call to end");
  });
});
