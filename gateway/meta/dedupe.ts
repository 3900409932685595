import type { ConnectEvent } from "./webhook.js";

export interface EventDeduperOptions {
  /** Upper bound on remembered keys; the oldest are forgotten first. */
  maxEntries?: number;
  /** How long a key is remembered. Messenger gives up retrying a failing endpoint after about an hour. */
  ttlMs?: number;
  now?: () => number;
}

const DEFAULT_MAX_ENTRIES = 50_000;
const DEFAULT_TTL_MS = 60 * 60_000;

/**
 * Remembers recently seen webhook event keys so retried and duplicated deliveries are
 * processed once. Memory is bounded by both a key count and a time to live.
 */
export class EventDeduper {
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** key → expiry time. Map order is insertion order, which is also expiry order. */
  private readonly expiries = new Map<string, number>();

  constructor(options: EventDeduperOptions = {}) {
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.now = options.now ?? Date.now;
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${this.maxEntries}`);
    }
    if (!(this.ttlMs > 0) || !Number.isFinite(this.ttlMs)) {
      throw new RangeError(`ttlMs must be a positive finite number, got ${this.ttlMs}`);
    }
  }

  /** True the first time a key is offered within its time to live, false for repeats. */
  firstSeen(key: string): boolean {
    const now = this.now();
    this.evictExpired(now);
    const expiry = this.expiries.get(key);
    if (expiry !== undefined && expiry > now) return false;

    // A repeat does not extend the original window: it is forgotten on the first sighting's schedule.
    this.expiries.delete(key);
    this.expiries.set(key, now + this.ttlMs);
    while (this.expiries.size > this.maxEntries) {
      const oldest = this.expiries.keys().next();
      if (oldest.done === true) break;
      this.expiries.delete(oldest.value);
    }
    return true;
  }

  get size(): number {
    return this.expiries.size;
  }

  private evictExpired(now: number): void {
    for (const [key, expiry] of this.expiries) {
      if (expiry > now) break;
      this.expiries.delete(key);
    }
  }
}

/** Seconds below this, milliseconds above: 1e11 s is the year 5138, 1e11 ms is 1973. */
const MILLISECONDS_THRESHOLD = 1e11;

export function epochToMs(timestamp: number): number {
  return timestamp < MILLISECONDS_THRESHOLD ? timestamp * 1000 : timestamp;
}

/**
 * A `connect` older than the ring window is a late retry: answering it would accept a
 * call the consumer has already given up on. Timestamps ahead of our clock are not stale.
 */
export function isStaleConnect(
  event: Pick<ConnectEvent, "timestamp">,
  nowMs: number,
  maxAgeMs: number = 60_000,
): boolean {
  return nowMs - epochToMs(event.timestamp) > maxAgeMs;
}
