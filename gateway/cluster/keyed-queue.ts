/**
 * One serial queue per key (a call id): steps for a key run one at a time in the order they were
 * pushed, steps for different keys run side by side. A key's queue is dropped once it is empty, so
 * memory follows the calls with webhooks in flight, and both the number of keys and each key's
 * backlog are bounded.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, { tail: Promise<void>; pending: number }>();

  constructor(
    private readonly o: { maxKeys: number; maxPerKey: number; onError: (key: string, err: unknown) => void },
  ) {}

  get keys(): number {
    return this.tails.size;
  }

  /** False (and the step dropped) when the bounds are reached. */
  push(key: string, step: () => Promise<void>): boolean {
    let q = this.tails.get(key);
    if (!q) {
      if (this.tails.size >= this.o.maxKeys) return false;
      q = { tail: Promise.resolve(), pending: 0 };
      this.tails.set(key, q);
    }
    if (q.pending >= this.o.maxPerKey) return false;
    const entry = q;
    entry.pending++;
    entry.tail = entry.tail
      .then(step)
      .catch((err: unknown) => this.o.onError(key, err))
      .finally(() => {
        entry.pending--;
        if (entry.pending === 0 && this.tails.get(key) === entry) this.tails.delete(key);
      });
    return true;
  }

  /** Resolves once every step pushed so far has run. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()].map((q) => q.tail));
  }
}
