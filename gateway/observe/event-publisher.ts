import pino, { type Logger } from "pino";
import type { EventsConfig } from "../config/config.js";
import { createLogger } from "../log.js";
import type { CallEvent } from "./call-events.js";
import { EventDelivery, type EventDeliveryOptions, type EventDeliveryStats } from "./event-delivery.js";

/** Name of the log stream event lines carry, so log shippers can route them apart. */
export const EVENT_STREAM = "call-events";

export interface CallEventPublisherOptions {
  log: Logger;
  eventLog: EventsConfig["log"];
  url: string | undefined;
  secret: string | undefined;
  /** Tuning of the HTTP delivery (tests shorten the back-off). */
  delivery?: Partial<Omit<EventDeliveryOptions, "url" | "secret" | "log">>;
}

/**
 * Where call events go: one JSON line per event on a stream of their own (the gateway's log
 * output tagged `"stream":"call-events"`, or a file of their own), and, with EVENTS_URL, a
 * signed POST per event. The line is written at once; the POST is queued.
 */
export class CallEventPublisher {
  private readonly lines: Logger | undefined;
  private readonly delivery: EventDelivery | undefined;
  private published = 0;

  constructor(o: CallEventPublisherOptions) {
    const where = o.eventLog;
    if (where.kind === "log") {
      // Its own level: a CDR stream stays on when LOG_LEVEL quiets the diagnostics.
      this.lines = o.log.child({ stream: EVENT_STREAM }, { level: "info" });
    } else if (where.kind === "file") {
      // Written synchronously: a few lines per call, each on disk before the next, none lost at exit.
      this.lines = createLogger("info", pino.destination({ dest: where.path, append: true, mkdir: true, sync: true })).child({ stream: EVENT_STREAM });
    }
    if (o.url !== undefined && o.secret !== undefined) {
      this.delivery = new EventDelivery({ url: o.url, secret: o.secret, log: o.log, ...o.delivery });
    }
  }

  publish(event: CallEvent, callKey: string): void {
    this.published++;
    this.lines?.info({ event }, event.type);
    this.delivery?.enqueue(callKey, event);
  }

  stats(): { published: number; delivery: EventDeliveryStats | undefined } {
    return { published: this.published, delivery: this.delivery?.stats() };
  }

  async close(graceMs: number): Promise<void> {
    await this.delivery?.close(graceMs);
  }
}
