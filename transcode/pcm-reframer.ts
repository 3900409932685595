/**
 * Cuts a stream of PCM chunks of any length (10, 20, 30, 60 ms packets, concealment of odd lengths) into frames
 * of exactly `frameSamples`, remembering for each frame the arrival time of the oldest input that fed it, so
 * end-to-end latency can be measured per output frame.
 */

export interface ReframedPcm {
  pcm: Int16Array;
  /** Arrival time of the oldest chunk with samples in this frame. */
  oldestArrivalMs: number;
}

export class PcmReframer {
  readonly frameSamples: number;
  #frame: Int16Array;
  #filled = 0;
  #oldestArrivalMs = Infinity;

  constructor(frameSamples: number) {
    if (!Number.isInteger(frameSamples) || frameSamples <= 0) {
      throw new RangeError(`frameSamples must be a positive integer, got ${frameSamples}`);
    }
    this.frameSamples = frameSamples;
    this.#frame = new Int16Array(frameSamples);
  }

  /** Samples waiting for their frame to fill. */
  get pending(): number {
    return this.#filled;
  }

  push(pcm: Int16Array, arrivalMs: number, onFrame: (frame: ReframedPcm) => void): void {
    let offset = 0;
    while (offset < pcm.length) {
      const take = Math.min(this.frameSamples - this.#filled, pcm.length - offset);
      this.#frame.set(pcm.subarray(offset, offset + take), this.#filled);
      this.#filled += take;
      offset += take;
      if (arrivalMs < this.#oldestArrivalMs) this.#oldestArrivalMs = arrivalMs;
      if (this.#filled === this.frameSamples) onFrame(this.#take());
    }
  }

  /**
   * Completes the partial frame by letting `pad` write the missing tail, and returns it; undefined when no
   * samples are pending. Used when input stops mid-frame, so its samples go out instead of waiting.
   */
  completePending(pad: (tail: Int16Array) => void): (ReframedPcm & { padded: number }) | undefined {
    if (this.#filled === 0) return undefined;
    const padded = this.frameSamples - this.#filled;
    pad(this.#frame.subarray(this.#filled));
    this.#filled = this.frameSamples;
    return { ...this.#take(), padded };
  }

  clear(): void {
    this.#filled = 0;
    this.#oldestArrivalMs = Infinity;
  }

  #take(): ReframedPcm {
    const frame = { pcm: this.#frame.slice(), oldestArrivalMs: this.#oldestArrivalMs };
    this.#filled = 0;
    this.#oldestArrivalMs = Infinity;
    return frame;
  }
}
