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

/** RFC 3261 §14.2: a 500 refusing an offer while an earlier one is unanswered says retry in 0–10 s. */
const MAX_RETRY_AFTER_S = 10;

/** The Retry-After of such a 500: chosen at random, so the two sides' retries spread out. */
export function overlapRetryAfter(): string {
  return String(Math.floor(Math.random() * (MAX_RETRY_AFTER_S + 1)));
}

/**
 * How long to wait before sending a refused re-INVITE again, or undefined when it is not retried:
 * a 491 (glare, §14.1) after `glareMs`, a 500 with Retry-After (the peer was still busy with an
 * earlier INVITE, §14.2) after the time it asked for, up to 10 s.
 */
export function reinviteRetryDelayMs(status: number, retryAfter: string | undefined, glareMs: () => number): number | undefined {
  if (status === 491) return glareMs();
  if (status !== 500 || retryAfter === undefined) return undefined;
  // Retry-After = delta-seconds [comment] *( ";" retry-param ) (RFC 3261 §20.33).
  const m = /^\s*(\d{1,6})(?:\s|;|\(|$)/.exec(retryAfter);
  if (!m) return undefined;
  const seconds = Number(m[1]);
  return seconds <= MAX_RETRY_AFTER_S ? seconds * 1000 : undefined;
}
