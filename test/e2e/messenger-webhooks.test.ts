import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectEvent } from "../../sim/webhook-events.js";
import { graphRequests, sleep, startHarness, TEST_PAGE_ID, waitFor, type Harness } from "../support/harness.js";

/** Webhook delivery as Meta really does it: signed, retried, duplicated, batched, late. */
describe("Messenger webhooks into the gateway", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it.each(["wrong", "missing"] as const)("refuses a %s signature with 401 and creates no call", async (signature) => {
    const logsBefore = h.logs.find(/signature check failed/).length;
    const call = await h.sim.placeCall({ delivery: { signature, retries: 0 } });
    expect(call.connectWebhookStatus).toBe(401);
    await sleep(300);
    expect(h.gateway.registry.get(call.id)).toBeUndefined();
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
    const refused = h.logs.find(/signature check failed/);
    expect(refused.length).toBe(logsBefore + 1);
    expect(refused.at(-1)!.reason).toBe(signature === "wrong" ? "mismatch" : "missing");
  });

  it("answers the verify handshake only with the right token", async () => {
    const ok = await fetch(`${h.webhookUrl}?hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=1158201444`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("1158201444");
    const bad = await fetch(`${h.webhookUrl}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`);
    expect(bad.status).toBe(403);
  });

  it("creates one call from a duplicated connect", async () => {
    const call = await h.sim.placeCall({ delivery: { duplicates: 2 } });
    await call.waitForState("media", 10_000);
    await sleep(200);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    expect(h.gateway.registry.all().filter((c) => c.callId === call.id)).toHaveLength(1);
    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
  });

  it("drops a connect retried after the ring window", async () => {
    const callId = "c_9990001112223";
    const status = await h.sim.webhooks.sendEvent(
      connectEvent({ callId, pageId: TEST_PAGE_ID, psid: "5550001", direction: "user_initiated", at: Date.now() - 5 * 60_000 }),
    );
    expect(status).toBe(200);
    await sleep(300);
    expect(h.gateway.registry.get(callId)).toBeUndefined();
    expect(graphRequests(h.sim, "accept", callId)).toHaveLength(0);
    expect(h.logs.find(/stale connect dropped/).some((l) => l.callId === callId)).toBe(true);
  });

  it("handles every event of a batched delivery", async () => {
    const ids = ["c_8880001", "c_8880002"];
    // Not calls the simulator knows: the gateway's accept for them must fail cleanly with "invalid call id".
    const status = await h.sim.webhooks.sendBatch(
      ids.map((callId, i) => connectEvent({ callId, pageId: TEST_PAGE_ID, psid: `77700${i}`, direction: "user_initiated" })),
      "entry-per-event",
    );
    expect(status).toBe(200);
    await waitFor(() => ids.every((id) => graphRequests(h.sim, "accept", id).length === 1), 5000, "both accepts");
    await waitFor(() => h.gateway.registry.size === 0, 5000, "both calls to end");
    for (const id of ids) {
      expect(h.logs.find("call ended").some((l) => l.callId === id && l.outcome === "accept-failed")).toBe(true);
    }
  });

  it("ends the call cleanly when accept fails with a Graph error", async () => {
    h.sim.failNext("accept", { httpStatus: 400, code: 100, subcode: 2018392, message: "Invalid SDP parameter" });
    const call = await h.sim.placeCall();
    await call.waitForState("ended", 10_000);
    await waitFor(() => h.gateway.registry.get(call.id) === undefined, 5000, "the gateway to drop the call");
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    // A definite refusal leaves the consumer ringing at Meta: the gateway rejects.
    expect(graphRequests(h.sim, "reject", call.id)).toHaveLength(1);
    const ended = h.logs.find("call ended").find((l) => l.callId === call.id);
    expect(ended?.outcome).toBe("accept-failed");
    const failed = h.logs.find("accept failed").find((l) => l.callId === call.id);
    expect((failed?.err as { subcode?: number }).subcode).toBe(2018392);
  });

  it("never retries an accept that timed out, and ends the call", async () => {
    h.sim.failNext("accept", "timeout");
    const call = await h.sim.placeCall();
    await waitFor(() => h.gateway.registry.get(call.id) === undefined, 10_000, "the gateway to drop the call");
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    // Nobody knows whether a timed-out accept took: terminate covers both cases.
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    expect(h.logs.find("call ended").find((l) => l.callId === call.id)?.outcome).toBe("accept-failed");
  });

  it("survives a signed body that is not JSON, and one with a wrong object", async () => {
    expect(await h.sim.sendRawWebhook("{not json", { signature: "valid" })).toBe(400);
    expect(await h.sim.sendRawWebhook(JSON.stringify({ object: "instagram", entry: [] }), { signature: "valid" })).toBe(200);
    const health = await fetch(h.webhookUrl.replace("/webhooks/meta", "/healthz"));
    expect(health.status).toBe(200);
  });
});
