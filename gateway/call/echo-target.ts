import { EventEmitter } from "node:events";
import type { CallTarget, CallTargetEvents, Digit, OpusFrame } from "./target.js";

/**
 * A call target that answers at once and plays the consumer's audio back to them. It lets an
 * operator test the Meta side of a deployment (webhooks, Graph API, ICE/DTLS through their network)
 * without a PBX: a caller who hears themselves has a working Meta leg.
 */
export class EchoTarget extends EventEmitter<CallTargetEvents> implements CallTarget {
  readonly kind = "echo";
  private state: "idle" | "ringing" | "answered" | "ended" = "idle";
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly answerDelayMs = 0) {
    super();
  }

  ring(): void {
    if (this.state !== "idle") return;
    this.state = "ringing";
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.state !== "ringing") return;
      this.state = "answered";
      this.emit("answered");
    }, this.answerDelayMs);
  }

  sendAudio(frame: OpusFrame): void {
    if (this.state !== "answered") return;
    // The payload goes back unchanged; the session stamps it with the outbound stream's numbering.
    this.emit("audio", frame);
  }

  sendDtmf(digit: Digit, durationMs: number): void {
    if (this.state !== "answered") return;
    this.emit("dtmf", digit, durationMs);
  }

  async hangup(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.state = "ended";
    this.removeAllListeners();
  }
}
