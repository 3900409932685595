import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import { sendHttp, type HttpSend } from "../http/http-send.js";

/** Header carrying `sha256=<hex HMAC-SHA256 of the body>`, as Meta signs its own webhooks. */
export const EVENT_SIGNATURE_HEADER = "x-gateway-signature-256";
export const EVENT_ID_HEADER = "x-gateway-event-id";

export interface DeliverableEvent {
  id: string;
  type: string;
}

export interface EventDeliveryOptions {
  url: string;
  secret: string;
  log: Logger;
  /** Events held at most (queued and in flight); past it the oldest waiting one is dropped. */
  maxQueued?: number;
  /** Attempts per event before it is given up. */
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  timeoutMs?: number;
  /** Calls whose events are delivered at the same time. */
  concurrency?: number;
  /** Each outcome, for metrics. */
  onResult?: (result: "delivered" | "retried" | "failed" | "dropped") => void;
  /** How the POSTs are sent (in a media worker: by the owner thread). */
  send?: HttpSend;
}

export interface EventDeliveryStats {
  queued: number;
  delivered: number;
  /** Attempts that failed and were tried again. */
  retried: number;
  /** Events given up after their last attempt, or refused for good by the receiver (4xx). */
  failed: number;
  /** Events dropped unsent because the queue was full. */
  dropped: number;
}

interface Pending {
  event: DeliverableEvent;
  body: string;
  attempts: number;
}

/** Answers worth trying again: the receiver is busy, restarting or rate limiting. */
function transientStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

export function signEventBody(body: string, secret: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/**
 * POSTs events to the integrator's URL, signed with HMAC-SHA256. Events of one call go out one
 * at a time in the order they happened (a retried event holds back that call's later ones);
 * different calls go out side by side. Transient failures (network, timeout, 408/425/429/5xx) are
 * retried with exponential back-off (Retry-After respected); memory is bounded by `maxQueued`.
 * Nothing here ever waits on the call path: `enqueue` returns at once.
 */
export class EventDelivery {
  /** Per call, its events not yet delivered, oldest first; Map order = order the calls appeared. */
  private readonly queues = new Map<string, Pending[]>();
  /** Calls with an event on the wire or waiting for its retry. */
  private readonly busy = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<void>>();
  private held = 0;
  private closed = false;
  private readonly counters = { delivered: 0, retried: 0, failed: 0, dropped: 0 };
  private readonly maxQueued: number;
  private readonly maxAttempts: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly timeoutMs: number;
  private readonly concurrency: number;

  constructor(private readonly o: EventDeliveryOptions) {
    this.maxQueued = o.maxQueued ?? 10_000;
    this.maxAttempts = o.maxAttempts ?? 8;
    this.initialBackoffMs = o.initialBackoffMs ?? 500;
    this.maxBackoffMs = o.maxBackoffMs ?? 60_000;
    this.timeoutMs = o.timeoutMs ?? 5_000;
    this.concurrency = o.concurrency ?? 8;
  }

  /** Queues one event of the call `key`, after that call's earlier events. */
  enqueue(key: string, event: DeliverableEvent): void {
    if (this.closed) return;
    if (this.held >= this.maxQueued) this.dropOldest();
    const queue = this.queues.get(key) ?? [];
    queue.push({ event, body: JSON.stringify(event), attempts: 0 });
    this.queues.set(key, queue);
    this.held++;
    this.pump();
  }

  stats(): EventDeliveryStats {
    return { queued: this.held, ...this.counters };
  }

  /**
   * Stops taking events; what is queued gets up to `graceMs` to go out (retries included), then the
   * rest is counted as dropped and logged.
   */
  async close(graceMs = 0): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const until = Date.now() + graceMs;
    while (this.held > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.held > 0) {
      this.o.log.warn({ undelivered: this.held }, "call events not delivered before shutdown");
      this.counters.dropped += this.held;
      for (let i = 0; i < this.held; i++) this.o.onResult?.("dropped");
      this.held = 0;
      this.queues.clear();
    }
    await Promise.allSettled([...this.inFlight]);
  }

  /** Starts deliveries for calls that have events waiting and nothing in flight, up to the concurrency. */
  private pump(): void {
    for (const [key, queue] of this.queues) {
      if (this.busy.size >= this.concurrency) return;
      if (this.busy.has(key) || queue.length === 0) continue;
      this.busy.add(key);
      this.attempt(key, queue[0]!);
    }
  }

  private attempt(key: string, p: Pending): void {
    p.attempts++;
    const run = this.post(p).then((outcome) => this.settle(key, p, outcome));
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
  }

  private async post(p: Pending): Promise<{ ok: true } | { ok: false; transient: boolean; retryAfterMs: number | undefined; why: string }> {
    try {
      const res = await (this.o.send ?? sendHttp)({
        url: this.o.url,
        method: "POST",
        headers: {
          "content-type": "application/json",
          [EVENT_SIGNATURE_HEADER]: signEventBody(p.body, this.o.secret),
          [EVENT_ID_HEADER]: p.event.id,
          "user-agent": "meta-sip-gateway",
        },
        body: p.body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      if (res.status >= 200 && res.status < 300) return { ok: true };
      return { ok: false, transient: transientStatus(res.status), retryAfterMs: retryAfterMs(res.headers["retry-after"]), why: `HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, transient: true, retryAfterMs: undefined, why: err instanceof Error ? err.message : String(err) };
    }
  }

  private settle(key: string, p: Pending, outcome: Awaited<ReturnType<EventDelivery["post"]>>): void {
    const queue = this.queues.get(key);
    // Dropped meanwhile (queue full, or shutdown): nothing left to do for it.
    if (!queue || queue[0] !== p) {
      this.busy.delete(key);
      this.pump();
      return;
    }
    if (outcome.ok) {
      this.counters.delivered++;
      this.o.onResult?.("delivered");
      this.next(key, queue);
      return;
    }
    if (outcome.transient && p.attempts < this.maxAttempts) {
      this.counters.retried++;
      this.o.onResult?.("retried");
      const backoff = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (p.attempts - 1));
      const delay = Math.min(this.maxBackoffMs, Math.max(backoff, outcome.retryAfterMs ?? 0));
      this.o.log.debug({ eventId: p.event.id, type: p.event.type, attempt: p.attempts, why: outcome.why, retryInMs: delay }, "call event delivery failed; retrying");
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (this.queues.get(key)?.[0] === p) this.attempt(key, p);
        else {
          this.busy.delete(key);
          this.pump();
        }
      }, delay);
      timer.unref();
      this.timers.add(timer);
      return;
    }
    this.counters.failed++;
    this.o.onResult?.("failed");
    this.o.log.warn({ eventId: p.event.id, type: p.event.type, attempts: p.attempts, why: outcome.why }, "call event not delivered: given up");
    this.next(key, queue);
  }

  private next(key: string, queue: Pending[]): void {
    queue.shift();
    this.held--;
    if (queue.length === 0) this.queues.delete(key);
    this.busy.delete(key);
    this.pump();
  }

  /** The oldest event not on the wire makes room: calls that appeared first lose first. */
  private dropOldest(): void {
    for (const [key, queue] of this.queues) {
      // A call's head may be in flight or waiting for its retry; its followers can still go.
      const index = this.busy.has(key) ? 1 : 0;
      if (queue.length <= index) continue;
      const [dropped] = queue.splice(index, 1);
      this.held--;
      this.counters.dropped++;
      this.o.onResult?.("dropped");
      if (queue.length === 0) this.queues.delete(key);
      this.o.log.warn({ eventId: dropped!.event.id, type: dropped!.event.type }, "call event dropped: delivery queue full");
      return;
    }
  }
}

/** Retry-After as seconds (RFC 9110 §10.2.3; an HTTP date is rare from webhook receivers and ignored). */
function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}
