import { randomInt } from "node:crypto";
import type { FrameLoop } from "../audio/frames.js";
import { FRAME_MS, ONSET_FRAME, PERIOD_FRAMES, periodIndex } from "../audio/speech.js";

/** How many recent frames keep their send time: 20 s, far beyond any sane latency. */
const RING = 1024;

/** Writes one frame on the wire. */
export type FrameWriter = (sequenceNumber: number, timestamp: number, payload: Buffer, marker: boolean) => void;

/**
 * One direction of one call's audio as sent into the system under test: frame k of the talk
 * pattern is due at start + 20k ms and carries sequence number seq0 + k and timestamp
 * ts0 + k·step. Send times are kept by frame number for the receiver on the other leg.
 */
export class StreamSender {
  private readonly seq0 = randomInt(0, 0x10000);
  private readonly ts0 = randomInt(0, 2 ** 32);
  private readonly sentAt = new Float64Array(RING).fill(NaN);
  private readonly sentFrame = new Int32Array(RING).fill(-1);
  /** Next frame number to send. */
  private next = 0;
  private startMs = 0;
  private running = false;
  packetsSent = 0;

  constructor(
    private readonly loop: FrameLoop,
    private readonly write: FrameWriter,
  ) {}

  /** Starts the clock; the first frame is due at `startMs`. */
  start(startMs: number): void {
    this.startMs = startMs;
    this.running = true;
  }

  stop(): void {
    this.running = false;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** When the next frame is due (Infinity when stopped). */
  get dueAt(): number {
    return this.running ? this.startMs + this.next * FRAME_MS : Infinity;
  }

  /**
   * Sends every frame due by `now`. A late tick sends the overdue frames back to back, as a
   * real client catching up does, so nothing is skipped and numbering stays continuous.
   */
  pump(now: number): void {
    while (this.running && this.startMs + this.next * FRAME_MS <= now) {
      const k = this.next++;
      const payload = this.loop.payloads[periodIndex(k)] as Buffer;
      const slot = k % RING;
      this.sentAt[slot] = performance.now();
      this.sentFrame[slot] = k;
      this.packetsSent++;
      this.write((this.seq0 + k) & 0xffff, (this.ts0 + k * this.loop.tsStep) >>> 0, payload, k === 0);
    }
  }

  /** Send time of frame k, if it was sent and is still remembered. */
  sentTime(k: number): number | undefined {
    if (k < 0) return undefined;
    const slot = k % RING;
    return this.sentFrame[slot] === k ? this.sentAt[slot] : undefined;
  }

  /** The latest talk onset (frame number) sent at or before `atMs`. */
  onsetSentBefore(atMs: number): number | undefined {
    const last = this.next - 1;
    if (last < ONSET_FRAME) return undefined;
    let k = last - periodIndex(last - ONSET_FRAME);
    for (let tries = 0; tries < RING / PERIOD_FRAMES; tries++, k -= PERIOD_FRAMES) {
      const t = this.sentTime(k);
      if (t === undefined) return undefined;
      if (t <= atMs) return k;
    }
    return undefined;
  }
}
