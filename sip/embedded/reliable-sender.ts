import { initialRSeq, type RAck } from "../reliable-provisional.js";
import { AnswerRetransmitter } from "./answer-retransmitter.js";

interface Reliable {
  rseq: number;
  hasSdp: boolean;
  send: () => void;
  retransmitter: AnswerRetransmitter | undefined;
}

/**
 * Our reliable provisional responses as a UAS (RFC 3262 §3): each carries the next RSeq and is
 * retransmitted (T1, doubling) until its PRACK; the next one waits until the previous is
 * acknowledged. A 2xx must wait for the PRACK of a reliable provisional that carried SDP.
 */
export class ReliableProvisionalSender {
  private nextRSeq = initialRSeq();
  /** Every RSeq that went on the wire, so a late or repeated PRACK still gets its 200. */
  private readonly sent = new Set<number>();
  private current: Reliable | undefined;
  private readonly queue: Reliable[] = [];
  private waiters: (() => void)[] = [];
  private stopped = false;
  /** A reliable provisional with SDP was acknowledged: the INVITE's offer/answer is complete (RFC 3262 §5). */
  sdpAcked = false;

  constructor(
    private readonly inviteCSeq: number,
    private readonly t1Ms: number,
    /** No PRACK within 64·T1: the INVITE should be rejected (§3). */
    private readonly onUnacknowledged: () => void,
  ) {}

  /** Sends (or queues) a reliable provisional built for the RSeq given. */
  send(build: (rseq: number) => () => void, hasSdp: boolean): void {
    if (this.stopped) return;
    const rseq = this.nextRSeq++;
    const item: Reliable = { rseq, hasSdp, send: build(rseq), retransmitter: undefined };
    if (this.current) this.queue.push(item);
    else this.start(item);
  }

  private start(item: Reliable): void {
    this.current = item;
    this.sent.add(item.rseq);
    // §3: the interval doubles each time with no T2 cap, until 64·T1.
    item.retransmitter = new AnswerRetransmitter(item.send, this.t1Ms, 64 * this.t1Ms, () => {
      this.current = undefined;
      this.onUnacknowledged();
    });
    item.send();
    item.retransmitter.start();
  }

  /**
   * A PRACK's RAck: `acked` stops that provisional's retransmissions (and sends the next),
   * `duplicate` is a repeat of one already acknowledged, `unknown` matches nothing we sent (481).
   */
  prack(rack: RAck): "acked" | "duplicate" | "unknown" {
    if (rack.method !== "INVITE" || rack.cseq !== this.inviteCSeq) return "unknown";
    const cur = this.current;
    if (cur && rack.rseq === cur.rseq) {
      cur.retransmitter?.stop();
      this.current = undefined;
      if (cur.hasSdp) this.sdpAcked = true;
      // After this PRACK's 200 has gone out (the caller answers it once this returns).
      queueMicrotask(() => {
        const next = this.queue.shift();
        if (next && !this.stopped) this.start(next);
        this.wake();
      });
      return "acked";
    }
    return this.sent.has(rack.rseq) ? "duplicate" : "unknown";
  }

  /** Resolves once no reliable provisional with SDP is waiting for its PRACK (§3's rule for the 2xx). */
  sdpAcknowledged(): Promise<void> {
    const pending = (): boolean => !this.stopped && ((this.current?.hasSdp ?? false) || this.queue.some((q) => q.hasSdp));
    if (!pending()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (pending()) this.waiters.push(check);
        else resolve();
      };
      this.waiters.push(check);
    });
  }

  /** A final response went out: provisionals are no longer retransmitted (§3). */
  stop(): void {
    this.stopped = true;
    this.current?.retransmitter?.stop();
    this.current = undefined;
    this.queue.length = 0;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
