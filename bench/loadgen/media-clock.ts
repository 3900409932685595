import type { StreamSender } from "./stream-sender.js";

/**
 * One timer for every stream a load generator sends. Each stream keeps its own 20 ms phase
 * (calls start at different times), so packets leave spread over the period instead of in one
 * burst per tick, as independent phones would send them.
 */
export class MediaClock {
  private readonly senders = new Set<StreamSender>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly tickMs = 2) {}

  add(sender: StreamSender): void {
    this.senders.add(sender);
    this.timer ??= setInterval(() => this.tick(), this.tickMs);
  }

  remove(sender: StreamSender): void {
    this.senders.delete(sender);
    if (this.senders.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    this.senders.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = performance.now();
    for (const s of this.senders) {
      if (s.dueAt <= now) s.pump(now);
    }
  }
}
