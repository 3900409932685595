/**
 * Time spent inside the gateway by packets of one direction (arrival on one leg to departure on the
 * other), kept as a bounded window of recent samples so percentiles stay meaningful on long calls.
 */
export class LatencyRecorder {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;
  private total = 0;
  private max = 0;

  constructor(capacity = 3000) {
    this.samples = new Float64Array(capacity);
  }

  record(ms: number): void {
    if (!(ms >= 0)) return;
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.filled < this.samples.length) this.filled++;
    this.total++;
    if (ms > this.max) this.max = ms;
  }

  snapshot(): LatencySnapshot {
    if (this.filled === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
    const sorted = Array.from(this.samples.subarray(0, this.filled)).sort((a, b) => a - b);
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { count: this.total, p50: at(0.5), p99: at(0.99), max: this.max };
  }
}

export interface LatencySnapshot {
  count: number;
  p50: number;
  p99: number;
  max: number;
}
