/**
 * Runs a call's steps one at a time, in arrival order. Webhooks, target events and timers for one
 * call all go through its queue, so a terminate that arrives while an accept is in flight is
 * handled after it, never in the middle of it. A failing step does not stop later ones.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;

  constructor(private readonly onError: (err: unknown) => void) {}

  get size(): number {
    return this.pending;
  }

  push(step: () => Promise<void> | void): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.pending++;
    const run = this.tail.then(async () => {
      try {
        if (!this.closed) await step();
      } catch (err) {
        this.onError(err);
      } finally {
        this.pending--;
      }
    });
    this.tail = run;
    return run;
  }

  /** Resolves when every queued step has run. */
  drain(): Promise<void> {
    return this.tail;
  }

  /** Drops steps not yet started; the one running finishes. */
  close(): void {
    this.closed = true;
  }
}
