import { describe, expect, it } from "vitest";
import { groupByCall, hasNonEventItems, withEvents, withoutEvents } from "../../gateway/cluster/delivery.js";
import { KeyedQueue } from "../../gateway/cluster/keyed-queue.js";
import { MAX_SKEW_MS, signForward, verifyForward } from "../../gateway/cluster/forward-auth.js";

const ev = (callId: string, event: string, n = 0) => ({ callId, event, n });

describe("splitting a delivery by call", () => {
  it("groups events per call, calls in order of first appearance, each call's events in order", () => {
    const groups = groupByCall([ev("c1", "connect"), ev("c2", "connect"), ev("c1", "media_update", 1), ev("c2", "terminate"), ev("c1", "terminate")]);
    expect(groups.map((g) => g.callId)).toEqual(["c1", "c2"]);
    expect(groups[0]!.events.map((e) => e.event)).toEqual(["connect", "media_update", "terminate"]);
    expect(groups[1]!.events.map((e) => e.event)).toEqual(["connect", "terminate"]);
  });

  it("a sub-delivery keeps the platform tag and drops the other lists, which stay with the receiver", () => {
    const delivery = { platform: "whatsapp" as const, events: [ev("c1", "connect"), ev("c2", "connect")], permissionReplies: [{ psid: "1" }], rejected: [{ index: "entry[0]" }] };
    const sub = withEvents(delivery, [delivery.events[1]!]);
    expect(sub).toEqual({ platform: "whatsapp", events: [ev("c2", "connect")], permissionReplies: [], rejected: [] });
    expect(withoutEvents(delivery)).toEqual({ ...delivery, events: [] });
    expect(hasNonEventItems(delivery)).toBe(true);
    expect(hasNonEventItems(sub)).toBe(false);
  });
});

describe("per-call ordering", () => {
  it("runs one call's steps in push order even when earlier ones are slower, and calls side by side", async () => {
    const q = new KeyedQueue({ maxKeys: 10, maxPerKey: 10, onError: () => undefined });
    const done: string[] = [];
    const step = (name: string, ms: number) => () => new Promise<void>((r) => setTimeout(() => (done.push(name), r()), ms));
    q.push("c1", step("c1-a", 60));
    q.push("c1", step("c1-b", 1));
    q.push("c2", step("c2-a", 5));
    q.push("c1", step("c1-c", 1));
    await q.idle();
    expect(done.filter((n) => n.startsWith("c1"))).toEqual(["c1-a", "c1-b", "c1-c"]);
    // c2 did not wait behind c1's slow step.
    expect(done.indexOf("c2-a")).toBeLessThan(done.indexOf("c1-a"));
    expect(q.keys).toBe(0);
  });

  it("a failing step does not stop the next one; the bounds refuse more", async () => {
    const errors: unknown[] = [];
    const q = new KeyedQueue({ maxKeys: 1, maxPerKey: 2, onError: (_k, e) => errors.push(e) });
    const ran: number[] = [];
    expect(q.push("c1", async () => Promise.reject(new Error("boom")))).toBe(true);
    expect(q.push("c1", async () => void ran.push(2))).toBe(true);
    expect(q.push("c1", async () => void ran.push(3))).toBe(false);
    expect(q.push("c2", async () => void ran.push(4))).toBe(false);
    await q.idle();
    expect(ran).toEqual([2]);
    expect(errors).toHaveLength(1);
  });
});

describe("forwarding signature", () => {
  const secret = "cluster-secret-0123456789";
  const body = Buffer.from('{"from":"a"}');

  it("accepts its own signature within the skew and nothing else", () => {
    const now = 1_700_000_000_000;
    const sig = signForward(secret, now, body);
    expect(verifyForward(secret, body, String(now), sig, now + 1000)).toEqual({ ok: true });
    expect(verifyForward(secret, Buffer.from('{"from":"b"}'), String(now), sig, now)).toEqual({ ok: false, reason: "mismatch" });
    expect(verifyForward(`${secret}x`, body, String(now), sig, now)).toEqual({ ok: false, reason: "mismatch" });
    expect(verifyForward(secret, body, String(now), sig, now + MAX_SKEW_MS + 1)).toEqual({ ok: false, reason: "stale" });
    expect(verifyForward(secret, body, undefined, sig, now)).toEqual({ ok: false, reason: "missing" });
    expect(verifyForward(secret, body, "12abc", sig, now)).toEqual({ ok: false, reason: "missing" });
  });
});
