import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { EVENT_ID_HEADER, EVENT_SIGNATURE_HEADER, EventDelivery } from "../../gateway/observe/event-delivery.js";
import { waitFor } from "../support/harness.js";

const SECRET = "an-events-secret-of-some-length";
const silent = pino({ level: "silent" });

interface Received {
  id: string;
  call: string;
  n: number;
  validSignature: boolean;
  at: number;
}

/**
 * An integrator's receiver on loopback: checks each signature as a receiver would, records what it
 * accepted, and answers what `answer` says for each attempt (status, optional Retry-After, or a
 * dropped connection).
 */
class Receiver {
  readonly accepted: Received[] = [];
  readonly attempts: Received[] = [];
  answer: (r: Received, attempt: number) => { status: number; retryAfter?: string } | "drop" = () => ({ status: 200 });
  private readonly server: Server;

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(): Promise<Receiver> {
    const server = createServer();
    const receiver = new Receiver(server);
    server.on("request", (req, res) => void receiver.onRequest(req, res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/events`;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const expected = `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;
    const got = String(req.headers[EVENT_SIGNATURE_HEADER] ?? "");
    const validSignature = got.length === expected.length && timingSafeEqual(Buffer.from(got), Buffer.from(expected));
    const event = JSON.parse(body.toString("utf8")) as { id: string; call: string; n: number };
    expect(req.headers[EVENT_ID_HEADER]).toBe(event.id);
    const r: Received = { id: event.id, call: event.call, n: event.n, validSignature, at: Date.now() };
    const attempt = this.attempts.filter((a) => a.id === r.id).length + 1;
    this.attempts.push(r);
    const a = this.answer(r, attempt);
    if (a === "drop") {
      req.socket.destroy();
      return;
    }
    if (a.status >= 200 && a.status < 300) this.accepted.push(r);
    res.writeHead(a.status, a.retryAfter ? { "retry-after": a.retryAfter } : {});
    res.end();
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

function ev(call: string, n: number): { id: string; type: string; call: string; n: number } {
  return { id: `evt_${call}_${n}`, type: "call.test", call, n };
}

describe("integrator event delivery over HTTP", () => {
  let receiver: Receiver | undefined;
  let delivery: EventDelivery | undefined;
  afterEach(async () => {
    await delivery?.close();
    await receiver?.close();
  });

  it("signs every POST with HMAC-SHA256 of its body and delivers each call's events in order", async () => {
    receiver = await Receiver.start();
    const results: string[] = [];
    delivery = new EventDelivery({ url: receiver.url, secret: SECRET, log: silent, onResult: (r) => results.push(r) });
    for (let n = 1; n <= 5; n++) for (const call of ["a", "b", "c"]) delivery.enqueue(call, ev(call, n));
    await waitFor(() => receiver!.accepted.length === 15, 5000, "15 deliveries");
    expect(receiver.accepted.every((r) => r.validSignature)).toBe(true);
    for (const call of ["a", "b", "c"]) {
      expect(receiver.accepted.filter((r) => r.call === call).map((r) => r.n)).toEqual([1, 2, 3, 4, 5]);
    }
    expect(delivery.stats()).toEqual({ queued: 0, delivered: 15, retried: 0, failed: 0, dropped: 0 });
    expect(results.filter((r) => r === "delivered")).toHaveLength(15);
  });

  it("retries transient failures with back-off, holding back the same call's later events but not other calls'", async () => {
    receiver = await Receiver.start();
    // a's first event fails three times (503, a dropped connection, 429 with Retry-After: 1), then goes through.
    receiver.answer = (r, attempt) => {
      if (r.id !== "evt_a_1") return { status: 204 };
      if (attempt === 1) return { status: 503 };
      if (attempt === 2) return "drop";
      if (attempt === 3) return { status: 429, retryAfter: "1" };
      return { status: 200 };
    };
    delivery = new EventDelivery({ url: receiver.url, secret: SECRET, log: silent, initialBackoffMs: 50 });
    delivery.enqueue("a", ev("a", 1));
    delivery.enqueue("a", ev("a", 2));
    delivery.enqueue("b", ev("b", 1));
    await waitFor(() => receiver!.accepted.some((r) => r.call === "b"), 2000, "b's event");
    // b went out while a was still retrying.
    expect(receiver.accepted.map((r) => r.id)).toEqual(["evt_b_1"]);
    await waitFor(() => receiver!.accepted.length === 3, 5000, "a's events after its retries");
    expect(receiver.accepted.map((r) => r.id)).toEqual(["evt_b_1", "evt_a_1", "evt_a_2"]);
    const a1 = receiver.attempts.filter((r) => r.id === "evt_a_1");
    expect(a1).toHaveLength(4);
    // Back-off doubled (50, 100 ms) and then honoured Retry-After (1 s).
    expect(a1[1]!.at - a1[0]!.at).toBeGreaterThanOrEqual(45);
    expect(a1[2]!.at - a1[1]!.at).toBeGreaterThanOrEqual(95);
    expect(a1[3]!.at - a1[2]!.at).toBeGreaterThanOrEqual(950);
    expect(delivery.stats()).toMatchObject({ delivered: 3, retried: 3, failed: 0 });
  });

  it("gives up after the last attempt, and at once on a refusal (4xx), then goes on with the call's next event", async () => {
    receiver = await Receiver.start();
    receiver.answer = (r) => (r.id === "evt_a_1" ? { status: 500 } : r.id === "evt_b_1" ? { status: 400 } : { status: 200 });
    delivery = new EventDelivery({ url: receiver.url, secret: SECRET, log: silent, initialBackoffMs: 10, maxAttempts: 3 });
    delivery.enqueue("a", ev("a", 1));
    delivery.enqueue("a", ev("a", 2));
    delivery.enqueue("b", ev("b", 1));
    delivery.enqueue("b", ev("b", 2));
    await waitFor(() => receiver!.accepted.length === 2, 5000, "the events after the failed ones");
    expect(receiver.accepted.map((r) => r.id).sort()).toEqual(["evt_a_2", "evt_b_2"]);
    expect(receiver.attempts.filter((r) => r.id === "evt_a_1")).toHaveLength(3);
    expect(receiver.attempts.filter((r) => r.id === "evt_b_1")).toHaveLength(1);
    expect(delivery.stats()).toMatchObject({ delivered: 2, failed: 2, retried: 2, queued: 0 });
  });

  it("holds a bounded number of events while the receiver is down, dropping the oldest waiting ones", async () => {
    receiver = await Receiver.start();
    let down = true;
    receiver.answer = () => (down ? { status: 503 } : { status: 200 });
    delivery = new EventDelivery({ url: receiver.url, secret: SECRET, log: silent, initialBackoffMs: 100, maxBackoffMs: 100, maxAttempts: 100, maxQueued: 10 });
    for (let n = 1; n <= 30; n++) delivery.enqueue(`call-${n}`, ev(`call-${n}`, 1));
    expect(delivery.stats().queued).toBe(10);
    expect(delivery.stats().dropped).toBe(20);
    down = false;
    await waitFor(() => delivery!.stats().queued === 0, 5000, "the queue to drain");
    // What was kept: the ones on the wire when the queue filled, and the newest ones.
    expect(receiver.accepted).toHaveLength(10);
    expect(receiver.accepted.map((r) => r.call)).toContain("call-30");
    expect(delivery.stats().delivered).toBe(10);
  });

  it("gives queued events a grace period at shutdown and counts the rest as dropped", async () => {
    receiver = await Receiver.start();
    receiver.answer = (r) => (r.call === "stuck" ? { status: 503 } : { status: 200 });
    delivery = new EventDelivery({ url: receiver.url, secret: SECRET, log: silent, initialBackoffMs: 50, maxBackoffMs: 50, maxAttempts: 1000 });
    delivery.enqueue("ok", ev("ok", 1));
    delivery.enqueue("stuck", ev("stuck", 1));
    delivery.enqueue("stuck", ev("stuck", 2));
    const started = Date.now();
    await delivery.close(400);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(receiver.accepted.map((r) => r.id)).toEqual(["evt_ok_1"]);
    expect(delivery.stats()).toMatchObject({ delivered: 1, dropped: 2, queued: 0 });
    // Closed: nothing more is taken.
    delivery.enqueue("late", ev("late", 1));
    expect(delivery.stats().queued).toBe(0);
  });
});
