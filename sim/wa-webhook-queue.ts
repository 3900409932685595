import { serializeLikeMeta } from "./signing.js";
import type { DeliveryOptions } from "./webhook-sender.js";
import { batchesOf, whatsAppPayload, type WaBatchLayout, type WaUpdate } from "./wa-webhook-events.js";

export interface FlushOptions {
  /** Default "change-per-update". */
  layout?: WaBatchLayout;
  /** "separate": each held update in its own POST (with `order`, to deliver them out of order). Default "batched". */
  grouping?: "batched" | "separate";
  /** Default "as-queued"; "reverse" sends the last update first. */
  order?: "as-queued" | "reverse";
  delivery?: DeliveryOptions;
}

interface Pending {
  update: WaUpdate;
  delivery: DeliveryOptions;
  resolve: (status: number) => void;
}

/** Sends one body; never throws (0 when nothing answered). */
export type BodySender = (body: string, delivery: DeliveryOptions) => Promise<number>;

/**
 * WhatsApp's webhook delivery: an update goes out in its own POST at once, unless a batching window is set
 * (updates pending within it share POSTs of up to 1000 updates) or the queue is held (everything waits
 * for flush(), which is how a test forces updates of different calls into one POST).
 */
export class WhatsAppWebhookQueue {
  private pending: Pending[] = [];
  private held = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Every POST body the queue sent, with how many updates it held. */
  readonly posts: Array<{ body: string; updates: number; status: number }> = [];

  constructor(
    private readonly send: BodySender,
    private readonly options: { batchWindowMs: number; layout: WaBatchLayout; escapeSlashes?: boolean },
  ) {}

  /** Resolves with the HTTP status of the POST that carried the update (0 when none answered or it was dropped). */
  deliver(update: WaUpdate, delivery: DeliveryOptions = {}): Promise<number> {
    if (this.closed) return Promise.resolve(0);
    if (!this.held && this.options.batchWindowMs <= 0) return this.post([update], this.options.layout, delivery);
    return new Promise<number>((resolve) => {
      this.pending.push({ update, delivery, resolve });
      if (!this.held && this.timer === undefined) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          void this.flush();
        }, this.options.batchWindowMs);
      }
    });
  }

  /** Keeps every later update until flush(). */
  hold(): void {
    this.held = true;
  }

  /** True when updates wait (held, or a batching window): callers must not wait for one before queueing the next. */
  get deferring(): boolean {
    return this.held || this.options.batchWindowMs > 0;
  }

  get heldCount(): number {
    return this.pending.length;
  }

  /** Sends what is pending (and stops holding). Resolves with the statuses of the POSTs made. */
  async flush(options: FlushOptions = {}): Promise<number[]> {
    this.held = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let items = this.pending;
    this.pending = [];
    if (options.order === "reverse") items = [...items].reverse();
    const groups = options.grouping === "separate" ? items.map((p) => [p]) : batchesOf(items);
    const statuses: number[] = [];
    for (const group of groups) {
      const delivery = options.delivery ?? group[0]?.delivery ?? {};
      const status = await this.post(
        group.map((p) => p.update),
        options.layout ?? this.options.layout,
        delivery,
      );
      for (const p of group) p.resolve(status);
      statuses.push(status);
    }
    return statuses;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const p of this.pending) p.resolve(0);
    this.pending = [];
  }

  private async post(updates: WaUpdate[], layout: WaBatchLayout, delivery: DeliveryOptions): Promise<number> {
    const body = serializeLikeMeta(whatsAppPayload(updates, layout), { escapeSlashes: this.options.escapeSlashes });
    const record = { body, updates: updates.length, status: 0 };
    this.posts.push(record);
    record.status = await this.send(body, delivery);
    return record.status;
  }
}
