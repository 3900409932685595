import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  callStatusEvent,
  connectEvent,
  mediaUpdateEvent,
  terminateEvent,
  webhookPayload,
  type CallEvent,
} from "../../sim/webhook-events.js";
import { WebhookSender } from "../../sim/webhook-sender.js";
import { WebhookReceiver } from "./sim-helpers.js";

const SECRET = "webhook-secret";
const PAGE = "111222333";

describe("webhook event builders", () => {
  const at = Date.UTC(2026, 3, 1, 12, 0, 0, 789);

  it("builds connect events for both directions with integer second timestamps", () => {
    expect(connectEvent({ callId: "c_1", pageId: PAGE, psid: "42", direction: "user_initiated", at })).toEqual({
      id: "c_1",
      to: PAGE,
      from: "42",
      event: "connect",
      timestamp: Math.floor(at / 1000),
      call_direction: "user_initiated",
    });
    expect(connectEvent({ callId: "c_1", pageId: PAGE, psid: "42", direction: "business_initiated", at })).toMatchObject({ to: "42", from: PAGE });
  });

  it("builds call_status and media_update events", () => {
    expect(callStatusEvent({ callId: "c_1", psid: "42", status: "ringing", at })).toEqual({
      id: "c_1",
      event: "call_status",
      timestamp: Math.floor(at / 1000),
      recipient_id: "42",
      call_status: "ringing",
    });
    expect(mediaUpdateEvent({ callId: "c_1", version: 3, sdp: "v=0", at }).session).toEqual({
      version: 3,
      sdp_renegotiation: { sdp_type: "offer", sdp: "v=0" },
    });
  });

  it("builds terminate events with a duration only when the business connected", () => {
    const connected = terminateEvent({ callId: "c_1", status: "Completed", startedAt: at, connectedAt: at + 2000, endedAt: at + 122_400 });
    expect(connected).toEqual({
      id: "c_1",
      event: "terminate",
      timestamp: Math.floor((at + 122_400) / 1000),
      status: "Completed",
      start_time: Math.floor(at / 1000),
      end_time: Math.floor((at + 122_400) / 1000),
      duration: 120,
    });
    expect("duration" in terminateEvent({ callId: "c_1", status: "Failed", startedAt: at, endedAt: at + 60_000 })).toBe(false);
  });

  it("wraps events in page entries with an integer millisecond time", () => {
    const e: CallEvent = callStatusEvent({ callId: "c_1", psid: "42", status: "accepted", at });
    expect(webhookPayload(PAGE, [[e], [e, e]], at + 0.5)).toEqual({
      object: "page",
      entry: [
        { id: PAGE, time: at, calls: [e] },
        { id: PAGE, time: at, calls: [e, e] },
      ],
    });
  });
});

describe("WebhookSender", () => {
  let receiver: WebhookReceiver;
  let sender: WebhookSender;
  const event = (n: number): CallEvent => callStatusEvent({ callId: `c_${n}`, psid: "42", status: "ringing" });

  beforeAll(async () => {
    receiver = await WebhookReceiver.start(SECRET);
  });
  afterEach(async () => {
    await sender?.close();
    receiver.received.length = 0;
    receiver.statusForValid = 200;
  });
  afterAll(async () => {
    await receiver.close();
  });

  const newSender = (extra: Partial<ConstructorParameters<typeof WebhookSender>[0]> = {}): WebhookSender =>
    (sender = new WebhookSender({ url: receiver.url, appSecret: SECRET, pageId: PAGE, graphVersion: "v26.0", ...extra }));

  it("signs the exact escaped-unicode bytes and sends Meta's headers", async () => {
    newSender();
    const status = await sender.sendPayload({ object: "page", entry: [{ id: PAGE, time: 1, calls: [{ ...event(1), recipient_id: "Zoë" } as CallEvent] }] });
    expect(status).toBe(200);
    const got = receiver.received[0]!;
    expect(got.signatureValid).toBe(true);
    expect(got.rawBody).toContain("Zo\\u00eb");
    expect(got.headers["facebook-api-version"]).toBe("v26.0");
    expect(got.headers["x-hub-signature"]).toMatch(/^sha1=[0-9a-f]{40}$/);
    expect(got.headers["content-type"]).toBe("application/json");
  });

  it("can send a wrong or a missing signature", async () => {
    newSender();
    expect(await sender.sendEvent(event(1), { signature: "wrong" })).toBe(403);
    expect(receiver.received[0]?.headers["x-hub-signature-256"]).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(await sender.sendEvent(event(1), { signature: "missing" })).toBe(403);
    expect(receiver.received[1]?.headers["x-hub-signature-256"]).toBeUndefined();
    expect(sender.deliveries.map((d) => d.signature)).toEqual(["wrong", "missing"]);
  });

  it("delivers duplicates as identical bytes", async () => {
    newSender();
    expect(await sender.sendEvent(event(1), { duplicates: 2 })).toBe(200);
    expect(receiver.received).toHaveLength(3);
    expect(new Set(receiver.received.map((r) => r.rawBody)).size).toBe(1);
    expect(sender.deliveries.map((d) => d.duplicate)).toEqual([0, 1, 2]);
  });

  it("batches events in one entry or one entry each", async () => {
    newSender();
    await sender.sendBatch([event(1), event(2)], "one-entry");
    await sender.sendBatch([event(1), event(2)], "entry-per-event");
    const [one, perEvent] = receiver.received.map((r) => r.body as { entry: Array<{ calls: unknown[] }> });
    expect(one!.entry.map((e) => e.calls.length)).toEqual([2]);
    expect(perEvent!.entry.map((e) => e.calls.length)).toEqual([1, 1]);
  });

  it("delivers out of order and after a delay", async () => {
    newSender();
    const started = Date.now();
    expect(await sender.sendOutOfOrder([event(1), event(2), event(3)], { delayMs: 30 })).toEqual([200, 200, 200]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(85);
    expect(receiver.events().map((e) => e["id"])).toEqual(["c_3", "c_2", "c_1"]);
  });

  it("retries a non-200 answer immediately, as Meta does", async () => {
    newSender({ retries: 2 });
    receiver.statusForValid = 500;
    expect(await sender.sendEvent(event(1))).toBe(500);
    expect(sender.deliveries.map((d) => [d.attempt, d.status])).toEqual([
      [1, 500],
      [2, 500],
      [3, 500],
    ]);
  });

  it("counts a slow or absent answer as status 0", async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      sender = new WebhookSender({
        url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`,
        appSecret: SECRET,
        pageId: PAGE,
        graphVersion: "v26.0",
        timeoutMs: 150,
      });
      expect(await sender.sendEvent(event(1))).toBe(0);
      expect(sender.deliveries[0]?.error).toMatch(/timeout/);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it("cancels delayed deliveries on close", async () => {
    newSender();
    const pending = sender.sendEvent(event(1), { delayMs: 10_000 });
    await sender.close();
    expect(await pending).toBe(0);
    expect(receiver.received).toHaveLength(0);
  });
});
