import { Agent, request } from "node:http";
import { SimStateError } from "./errors.js";
import { serializeLikeMeta, SIGNATURE_256_HEADER, SIGNATURE_SHA1_HEADER, signBody } from "./signing.js";
import { webhookPayload, type CallEvent, type WebhookPayload } from "./webhook-events.js";

export type SignatureMode = "valid" | "wrong" | "missing";

export interface WebhookSenderOptions {
  /** The gateway's webhook URL, e.g. http://127.0.0.1:8080/webhooks/meta; may be set later with setUrl(). */
  url: string | undefined;
  appSecret: string;
  pageId: string;
  /** Sent as Facebook-API-Version, as Meta does on every webhook POST. */
  graphVersion: string;
  /** Meta wants a 200 within 5 s; a slower answer counts as a failed delivery (status 0). */
  timeoutMs?: number;
  /** Immediate re-deliveries after a non-200 answer, as Meta retries "a few more times". */
  retries?: number;
  /** Write `/` as `\/` in bodies. */
  escapeSlashes?: boolean;
}

export interface DeliveryOptions {
  signature?: SignatureMode;
  /** Extra deliveries of the very same bytes after the first one. */
  duplicates?: number;
  /** Wait this long before delivering (the call returns when the delivery is done). */
  delayMs?: number;
  /** Overrides the sender's retry count for this delivery. */
  retries?: number;
}

export type BatchLayout = "one-entry" | "entry-per-event";

/** One HTTP attempt, kept in `deliveries` for inspection. */
export interface WebhookDelivery {
  body: string;
  signature: SignatureMode;
  /** HTTP status the gateway answered, 0 when it did not answer (refused, reset, timeout). */
  status: number;
  /** 1 for the first attempt, higher for Meta-style retries. */
  attempt: number;
  /** 0 for the original delivery, 1.. for deliberate duplicates. */
  duplicate: number;
  sentAt: number;
  answeredAt: number;
  error: string | undefined;
}

const NO_ANSWER = 0;

/**
 * Posts signed webhook bodies to the gateway like Meta's delivery system, with switches to
 * misbehave: bad or missing signatures, duplicates, delays (and so reordering), batching.
 */
export class WebhookSender {
  readonly deliveries: WebhookDelivery[] = [];
  private readonly agent = new Agent({ keepAlive: false });
  private readonly timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private closed = false;
  private target: string | undefined;

  constructor(private readonly options: WebhookSenderOptions) {
    this.target = options.url;
  }

  get url(): string | undefined {
    return this.target;
  }

  /** Points deliveries at another endpoint (e.g. a gateway started after the simulator). */
  setUrl(url: string): void {
    this.target = url;
  }

  /** Serializes the payload like Meta (escaped unicode) and delivers it. */
  sendPayload(payload: WebhookPayload, options: DeliveryOptions = {}): Promise<number> {
    return this.sendRaw(serializeLikeMeta(payload, { escapeSlashes: this.options.escapeSlashes }), options);
  }

  /** One event in one entry: what Meta sends most of the time. */
  sendEvent(event: CallEvent, options: DeliveryOptions = {}): Promise<number> {
    return this.sendPayload(webhookPayload(this.options.pageId, [[event]]), options);
  }

  /** Several events in one POST, either inside one entry or one entry each. */
  sendBatch(events: CallEvent[], layout: BatchLayout, options: DeliveryOptions = {}): Promise<number> {
    const entries = layout === "one-entry" ? [events] : events.map((e) => [e]);
    return this.sendPayload(webhookPayload(this.options.pageId, entries), options);
  }

  /** Each event in its own POST, last one first. Resolves with the statuses in sending order. */
  async sendOutOfOrder(events: CallEvent[], options: DeliveryOptions = {}): Promise<number[]> {
    const statuses: number[] = [];
    for (const event of [...events].reverse()) statuses.push(await this.sendEvent(event, options));
    return statuses;
  }

  /** Delivers exact bytes. Resolves with the status of the first delivery (duplicates are logged). */
  async sendRaw(body: string, options: DeliveryOptions = {}): Promise<number> {
    if (this.closed) throw new SimStateError("webhook sender is closed");
    if (this.target === undefined) throw new SimStateError("no webhook URL set");
    if (options.delayMs && options.delayMs > 0) await this.sleep(options.delayMs);
    const signature = options.signature ?? "valid";
    const retries = options.retries ?? this.options.retries ?? 0;
    let first = NO_ANSWER;
    for (let duplicate = 0; duplicate <= (options.duplicates ?? 0); duplicate++) {
      let status = NO_ANSWER;
      for (let attempt = 1; attempt <= retries + 1 && !this.closed; attempt++) {
        status = await this.post(body, signature, attempt, duplicate);
        if (status === 200) break;
      }
      if (duplicate === 0) first = status;
    }
    return first;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const pending of this.timers) {
      clearTimeout(pending.timer);
      pending.resolve();
    }
    this.timers.clear();
    this.agent.destroy();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.timers.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      this.timers.add(entry);
    });
  }

  private post(body: string, signature: SignatureMode, attempt: number, duplicate: number): Promise<number> {
    const bytes = Buffer.from(body, "utf8");
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": bytes.length,
      "user-agent": "facebookexternalua",
      "facebook-api-version": this.options.graphVersion,
    };
    if (signature !== "missing") {
      // A wrong signature is well-formed but keyed with another secret, so only the HMAC check catches it.
      const secret = signature === "valid" ? this.options.appSecret : `${this.options.appSecret}-wrong`;
      headers[SIGNATURE_256_HEADER] = signBody(bytes, secret, "sha256");
      headers[SIGNATURE_SHA1_HEADER] = signBody(bytes, secret, "sha1");
    }
    const record: WebhookDelivery = {
      body,
      signature,
      status: NO_ANSWER,
      attempt,
      duplicate,
      sentAt: Date.now(),
      answeredAt: 0,
      error: undefined,
    };
    this.deliveries.push(record);
    return new Promise<number>((resolve) => {
      const finish = (status: number, error?: string): void => {
        if (record.answeredAt !== 0) return;
        record.status = status;
        record.error = error;
        record.answeredAt = Date.now();
        resolve(status);
      };
      const req = request(this.target ?? "", { method: "POST", headers, agent: this.agent }, (res) => {
        res.resume();
        res.on("end", () => finish(res.statusCode ?? NO_ANSWER));
        res.on("error", (err) => finish(res.statusCode ?? NO_ANSWER, err.message));
      });
      req.setTimeout(this.options.timeoutMs ?? 5000, () => {
        req.destroy(new Error("timeout"));
      });
      req.on("error", (err) => finish(NO_ANSWER, err.message));
      req.end(bytes);
    });
  }
}
