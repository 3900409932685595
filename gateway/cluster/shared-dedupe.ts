import { createHash } from "node:crypto";
import type { ClusterKeys } from "./keys.js";
import type { RedisLink } from "./redis-link.js";
import type { RoutableEvent } from "./delivery.js";

/** As long as Meta keeps retrying a delivery (about an hour), as the per-process deduper. */
const SEEN_TTL_MS = 60 * 60_000;

/**
 * Webhook dedupe shared by every instance: the first instance to see an event's key wins, so a
 * retry or duplicate that lands elsewhere is still dropped. Keys are hashed, so any event's
 * identity (an SDP included) costs the same in Redis.
 */
export class SharedDedupe<E extends RoutableEvent> {
  constructor(
    private readonly o: { keys: ClusterKeys; link: RedisLink; keyOf: (event: E) => string; ttlMs?: number },
  ) {}

  /** The events not seen before by any instance, in their order. Throws RedisUnavailableError. */
  async fresh(events: readonly E[]): Promise<E[]> {
    if (events.length === 0) return [];
    const keys = events.map((e) => this.o.keys.dedupe(createHash("sha256").update(this.o.keyOf(e)).digest("base64url")));
    const results = await this.o.link.run("dedupe webhooks", async (r) => {
      const p = r.pipeline();
      for (const key of keys) p.set(key, "1", "PX", this.o.ttlMs ?? SEEN_TTL_MS, "NX");
      return (await p.exec()) ?? [];
    });
    // Two copies of one event inside the same delivery: the second one's SET NX answers null too.
    return events.filter((_, i) => {
      const [err, reply] = results[i] ?? [new Error("no reply"), null];
      if (err) throw err;
      return reply === "OK";
    });
  }
}
