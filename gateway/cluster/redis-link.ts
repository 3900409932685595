import { Redis } from "ioredis";
import type { Logger } from "pino";
import { RedisUnavailableError } from "./errors.js";

/**
 * `connecting`: not yet reached since start; `up`: commands are answered; `down`: lost, ioredis is
 * reconnecting; `closed`: stopped at shutdown.
 */
export type RedisLinkState = "connecting" | "up" | "down" | "closed";

export interface RedisLinkOptions {
  url: string;
  /** A command that takes longer than this counts as Redis being unreachable. */
  commandTimeoutMs: number;
  log: Logger;
  /** Told of every change of state. */
  onState?: (state: RedisLinkState, previous: RedisLinkState) => void;
}

/**
 * The one Redis connection of an instance, with its reachability as an explicit state. Commands
 * are never queued while Redis is away (ioredis' offline queue is off): a webhook must be routed
 * now or handled without Redis, not held until a reconnect that may never come.
 */
export class RedisLink {
  readonly client: Redis;
  private current: RedisLinkState = "connecting";
  private upSince = 0;

  constructor(private readonly o: RedisLinkOptions) {
    this.client = new Redis(o.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(1_000, o.commandTimeoutMs),
      commandTimeout: o.commandTimeoutMs,
      // Keeps trying for as long as the process lives: recovery is automatic when Redis returns.
      retryStrategy: (times) => Math.min(100 * times, 1_000),
      reconnectOnError: () => false,
    });
    this.client.on("ready", () => this.moveTo("up"));
    this.client.on("close", () => this.moveTo("down"));
    this.client.on("end", () => this.moveTo("down"));
    this.client.on("error", (err: Error) => o.log.debug({ err: err.message }, "redis connection error"));
  }

  get state(): RedisLinkState {
    return this.current;
  }

  get isUp(): boolean {
    return this.current === "up";
  }

  /** Milliseconds since the link last came up; 0 while it is not up. */
  upForMs(now = Date.now()): number {
    return this.isUp ? now - this.upSince : 0;
  }

  /** Starts connecting; resolves at once whether or not Redis answers (the state says which). */
  start(): void {
    this.client.connect().catch((err: unknown) => this.o.log.debug({ err: (err as Error).message }, "redis first connect failed"));
  }

  async close(): Promise<void> {
    const wasUp = this.isUp;
    this.moveTo("closed");
    // QUIT lets the last releases in flight be answered first; without a link there is nothing to wait for.
    if (wasUp) await this.client.quit().catch(() => undefined);
    this.client.disconnect(false);
  }

  /** Runs one Redis operation; any failure of the link becomes RedisUnavailableError. */
  async run<T>(what: string, op: (r: Redis) => Promise<T>): Promise<T> {
    if (!this.isUp) throw new RedisUnavailableError(`redis ${this.current}: cannot ${what}`);
    try {
      return await op(this.client);
    } catch (err) {
      if (err instanceof Error && err.name === "ReplyError") throw err;
      throw new RedisUnavailableError(`redis: cannot ${what}: ${(err as Error).message}`, { cause: err });
    }
  }

  private moveTo(next: RedisLinkState): void {
    const previous = this.current;
    if (previous === next || previous === "closed") return;
    this.current = next;
    if (next === "up") this.upSince = Date.now();
    this.o.onState?.(next, previous);
  }
}
