/**
 * Latency histogram with fixed 0.05 ms bins up to 1 s (beyond that one overflow bin and the exact
 * maximum). Fixed bins merge exactly across processes, which raw samples at 100 packets/s per
 * call would make expensive to ship.
 */
export const BIN_MS = 0.05;
const BINS = 20_000;

export interface HistogramData {
  /** Sparse: [bin index, count] pairs; index BINS is the overflow bin. */
  bins: [number, number][];
  count: number;
  max: number;
  min: number;
  sum: number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  /** Share of samples at or under the deadline (20 ms). */
  withinDeadline: number;
}

export class Histogram {
  private counts = new Uint32Array(BINS + 1);
  private n = 0;
  private maxValue = 0;
  private minValue = Infinity;
  private total = 0;

  add(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    const bin = Math.min(BINS, Math.floor(v / BIN_MS));
    this.counts[bin] = (this.counts[bin] as number) + 1;
    this.n++;
    this.total += v;
    if (v > this.maxValue) this.maxValue = v;
    if (v < this.minValue) this.minValue = v;
  }

  get count(): number {
    return this.n;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.maxValue = 0;
    this.minValue = Infinity;
    this.total = 0;
  }

  merge(data: HistogramData): void {
    for (const [bin, c] of data.bins) this.counts[bin] = (this.counts[bin] as number) + c;
    this.n += data.count;
    this.total += data.sum;
    if (data.count > 0) {
      this.maxValue = Math.max(this.maxValue, data.max);
      this.minValue = Math.min(this.minValue, data.min);
    }
  }

  toData(): HistogramData {
    const bins: [number, number][] = [];
    for (let i = 0; i <= BINS; i++) {
      const c = this.counts[i] as number;
      if (c > 0) bins.push([i, c]);
    }
    return { bins, count: this.n, max: this.maxValue, min: this.n ? this.minValue : 0, sum: this.total };
  }

  /** Upper edge of the bin holding quantile q (0..1), capped by the exact maximum. */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i <= BINS; i++) {
      seen += this.counts[i] as number;
      if (seen >= rank) return i === BINS ? this.maxValue : Math.min(this.maxValue, (i + 1) * BIN_MS);
    }
    return this.maxValue;
  }

  /** Share of samples at or under `ms` (to the bin: the bin holding `ms` counts as within). */
  shareWithin(ms: number): number {
    if (this.n === 0) return 1;
    const last = Math.min(BINS - 1, Math.floor(ms / BIN_MS));
    let seen = 0;
    for (let i = 0; i <= last; i++) seen += this.counts[i] as number;
    return seen / this.n;
  }

  summary(deadlineMs: number): LatencySummary {
    return {
      count: this.n,
      p50: this.quantile(0.5),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: this.maxValue,
      mean: this.n ? this.total / this.n : 0,
      withinDeadline: this.shareWithin(deadlineMs),
    };
  }
}

/** Percentiles of a small sample (setup times), nearest-rank. */
export function percentiles(values: readonly number[]): { n: number; p50: number; p99: number; max: number; mean: number } {
  if (values.length === 0) return { n: 0, p50: 0, p99: 0, max: 0, mean: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] as number, mean: sorted.reduce((a, b) => a + b, 0) / sorted.length };
}
