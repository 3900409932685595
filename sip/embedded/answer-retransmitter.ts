/**
 * Retransmits our 2xx to an INVITE until its ACK arrives (RFC 3261 §13.3.1.4): the INVITE server
 * transaction sends a 2xx once and leaves the rest to the transaction user. Intervals start at
 * T1 and double up to T2; after 64·T1 without an ACK the caller is told to end the session.
 */
export class AnswerRetransmitter {
  private timer: NodeJS.Timeout | undefined;
  private giveUp: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly resend: () => void,
    private readonly t1Ms: number,
    private readonly t2Ms: number,
    private readonly onTimeout: () => void,
  ) {}

  start(): void {
    const tick = (interval: number): void => {
      this.timer = setTimeout(() => {
        if (this.done) return;
        this.resend();
        tick(Math.min(interval * 2, this.t2Ms));
      }, interval);
    };
    tick(this.t1Ms);
    this.giveUp = setTimeout(() => {
      if (this.done) return;
      this.stop();
      this.onTimeout();
    }, 64 * this.t1Ms);
  }

  stop(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.giveUp) clearTimeout(this.giveUp);
    this.timer = undefined;
    this.giveUp = undefined;
  }
}
