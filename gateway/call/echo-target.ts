import { EventEmitter } from "node:events";
import type { FarMedia, FarMediaEvents } from "./far-media.js";
import type { CallTarget, CallTargetEvents, Digit, OpusFrame } from "./target.js";

/** Plays the consumer's audio and digits back to them. */
class EchoMedia extends EventEmitter<FarMediaEvents> implements FarMedia {
  private closed = false;

  sendAudio(frame: OpusFrame): void {
    // The payload goes back unchanged; the consumer's stream stamps it with its own numbering.
    if (!this.closed) this.emit("audio", frame);
  }

  sendDtmf(digit: Digit, durationMs: number): void {
    if (!this.closed) this.emit("dtmf", digit, durationMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.removeAllListeners();
  }
}

/**
 * A call target that answers at once and plays the consumer's audio back to them. It lets an
 * operator test the Meta side of a deployment (webhooks, Graph API, ICE/DTLS through their network)
 * without a PBX: a caller who hears themselves has a working Meta leg.
 */
export class EchoTarget extends EventEmitter<CallTargetEvents> implements CallTarget {
  readonly kind = "echo";
  private state: "idle" | "ringing" | "answered" | "ended" = "idle";
  private timer: NodeJS.Timeout | undefined;
  private media: EchoMedia | undefined;

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
      this.media = new EchoMedia();
      this.emit("answered", this.media);
    }, this.answerDelayMs);
  }

  async hangup(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.state = "ended";
    await this.media?.close();
    this.removeAllListeners();
  }
}
