/**
 * A dialog session's timers: each forgets itself when it fires, all go when the session ends, and a
 * sleep ends early when the session does.
 */
export class SessionTimeouts {
  private readonly pending = new Set<NodeJS.Timeout>();

  constructor(private readonly ended: Promise<unknown>) {}

  start(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.pending.delete(t);
      fn();
    }, ms);
    this.pending.add(t);
    return t;
  }

  clear(t: NodeJS.Timeout): void {
    clearTimeout(t);
    this.pending.delete(t);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.start(resolve, ms);
      void this.ended.then(() => resolve());
    });
  }

  clearAll(): void {
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
  }
}

/**
 * RFC 3261 §14.1: after a 491, the Call-ID owner waits 2.1–4 s, the other side 0–2 s, both in
 * 10 ms steps, so the two retries do not collide again.
 */
export function glareDelayMs(ownsCallId: boolean): number {
  const steps = ownsCallId ? 210 + Math.floor(Math.random() * 191) : Math.floor(Math.random() * 201);
  return steps * 10;
}
