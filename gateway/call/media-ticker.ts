/** Where a failing handler is reported; a pino Logger fits. */
export interface TickerLog {
  error(obj: object, msg?: string): void;
}

import { LogThrottle } from "../log.js";

/**
 * One timer for the media work of every call in the process (jitter-buffer deadlines, silence
 * fill toward the PBX, comfort audio toward Meta). A timer per call costs an event-loop wakeup per
 * call per tick; one shared tick keeps that cost flat as calls grow.
 */
export class MediaTicker {
  private readonly handlers = new Set<(nowMs: number) => void>();
  private timer: NodeJS.Timeout | undefined;
  /** A handler failing every 5 ms must not flood the log. */
  private readonly errorLog = new LogThrottle(1_000);

  constructor(
    private readonly periodMs = 5,
    private readonly log?: TickerLog,
  ) {}

  /** Runs `handler(performance.now())` every period until the returned function is called. */
  add(handler: (nowMs: number) => void): () => void {
    this.handlers.add(handler);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.periodMs);
      this.timer.unref();
    }
    return () => {
      this.handlers.delete(handler);
      if (this.handlers.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  get size(): number {
    return this.handlers.size;
  }

  private tick(): void {
    const now = performance.now();
    for (const h of this.handlers) {
      try {
        h(now);
      } catch (err) {
        // A failing call must not stop the others' media; the call's own checks end it.
        this.reportError(err, now);
      }
    }
  }

  private reportError(err: unknown, now: number): void {
    this.errorLog.run("handler", (suppressed) => this.log?.error({ err, suppressed }, "media tick handler failed"), now);
  }
}
