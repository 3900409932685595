import { SimTimeoutError } from "./errors.js";

interface Waiter {
  count: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Waits for a consumer's received-packet count to reach a number: `waitFor` resolves once `update`
 * has seen it, and rejects on its timeout, when `closed` rejects, or at `close`.
 */
export class PacketWaiters {
  private readonly waiters = new Set<Waiter>();

  /** `received` reads the count now; `describe` says, for the timeout, what was received of what. */
  waitFor(
    received: () => number,
    count: number,
    timeoutMs: number,
    options: { closed?: Promise<never>; describe?: (received: number, count: number) => string } = {},
  ): Promise<void> {
    if (received() >= count) return Promise.resolve();
    const describe = options.describe ?? ((n, of) => `consumer received ${n}/${of} packets`);
    const wait = new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(error);
        },
      };
      const timer = setTimeout(() => waiter.reject(new SimTimeoutError(`${describe(received(), count)} in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.add(waiter);
      options.closed?.catch((error: unknown) => waiter.reject(error instanceof Error ? error : new Error(String(error))));
    });
    return wait;
  }

  update(received: number): void {
    for (const waiter of this.waiters) {
      if (received >= waiter.count) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Every pending wait rejects with `error`. */
  close(error: Error): void {
    for (const waiter of [...this.waiters]) waiter.reject(error);
  }

  /** Pending waits are forgotten (they settle only by their timeout). */
  clear(): void {
    this.waiters.clear();
  }
}
