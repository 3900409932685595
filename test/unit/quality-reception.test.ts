import { describe, expect, it } from "vitest";
import { StreamReception } from "../../gateway/quality/reception.js";

/** Feeds packets 20 ms apart (8 kHz clock) for the given sequence numbers, in the given order. */
function feed(r: StreamReception, seqs: number[], o: { ssrc?: number; startMs?: number; jitterMs?: (i: number) => number } = {}): void {
  seqs.forEach((seq, i) => {
    const ts = (seq * 160) >>> 0;
    r.onPacket(o.ssrc ?? 1, seq & 0xffff, ts, (o.startMs ?? 0) + seq * 20 + (o.jitterMs?.(i) ?? 0));
  });
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe("stream reception figures", () => {
  it("counts nothing lost for a clean stream, with zero jitter", () => {
    const r = new StreamReception(8000);
    feed(r, range(100, 500));
    const s = r.snapshot();
    expect(s).toMatchObject({ packetsReceived: 500, packetsExpected: 500, packetsLost: 0, lossRatio: 0, lossBursts: 0, burstRatio: 1 });
    expect(s.jitterMs).toBeCloseTo(0, 6);
  });

  it("measures 5 % random loss, single-packet bursts, BurstR near 1", () => {
    const r = new StreamReception(8000);
    // Every 20th packet missing: 5 % loss, never two in a row.
    feed(r, range(0, 2000).filter((s) => s % 20 !== 7));
    const s = r.snapshot();
    expect(s.packetsExpected).toBe(2000);
    expect(s.packetsLost).toBe(100);
    expect(s.lossRatio).toBeCloseTo(0.05, 6);
    expect(s.lossBursts).toBe(100);
    expect(s.maxBurstPackets).toBe(1);
    expect(s.meanBurstPackets).toBe(1);
    // Isolated losses are slightly less bursty than random: BurstR clamps at 1.
    expect(s.burstRatio).toBe(1);
  });

  it("tells bursty loss from random loss of the same amount", () => {
    const r = new StreamReception(8000);
    // 5 % loss in runs of 5.
    feed(r, range(0, 2000).filter((s) => s % 100 < 50 || s % 100 >= 55));
    const s = r.snapshot();
    expect(s.lossRatio).toBeCloseTo(0.05, 6);
    expect(s.lossBursts).toBe(20);
    expect(s.maxBurstPackets).toBe(5);
    expect(s.meanBurstPackets).toBe(5);
    // 1/(p+q) with p = 20/1900, q = 1/5.
    expect(s.burstRatio).toBeCloseTo(1 / (20 / 1900 + 20 / 100), 2);
  });

  it("does not count reordering inside the window as loss, and counts far-late packets as late", () => {
    const r = new StreamReception(8000, 16);
    const order = range(0, 100);
    // Swap neighbours: 10 ↔ 11, and 50 arrives 5 packets late.
    [order[10], order[11]] = [order[11]!, order[10]!];
    order.splice(50, 1);
    order.splice(55, 0, 50);
    feed(r, order);
    expect(r.snapshot()).toMatchObject({ packetsReceived: 100, packetsLost: 0, late: 0 });

    const late = new StreamReception(8000, 16);
    const seqs = range(0, 100).filter((s) => s !== 20);
    seqs.splice(60, 0, 20); // 40 packets later than its slot: past the 16-packet window.
    feed(late, seqs);
    expect(late.snapshot()).toMatchObject({ packetsReceived: 99, packetsLost: 1, late: 1 });
  });

  it("ignores duplicates and follows sequence wrap-around", () => {
    const r = new StreamReception(8000);
    const seqs = range(65500, 100).map((s) => s & 0xffff);
    feed(r, [...seqs.slice(0, 50), seqs[49]!, ...seqs.slice(50)]);
    expect(r.snapshot()).toMatchObject({ packetsReceived: 100, packetsLost: 0, duplicates: 1 });
  });

  it("adds up loss across an SSRC change", () => {
    const r = new StreamReception(8000);
    feed(r, range(0, 100).filter((s) => s !== 30), { ssrc: 1 });
    feed(r, range(5000, 100).filter((s) => s !== 5040 && s !== 5041), { ssrc: 2, startMs: 10_000 });
    const s = r.snapshot();
    expect(s.streams).toBe(2);
    expect(s.packetsExpected).toBe(200);
    expect(s.packetsLost).toBe(3);
    expect(s.lossBursts).toBe(2);
    expect(s.maxBurstPackets).toBe(2);
  });

  it("raises the jitter figure when arrival times vary", () => {
    const steady = new StreamReception(8000);
    feed(steady, range(0, 500));
    const jittery = new StreamReception(8000);
    // ±15 ms around the nominal arrival, alternating: RFC 3550 jitter converges near 30 ms·(15/16)…
    feed(jittery, range(0, 500), { jitterMs: (i) => (i % 2 === 0 ? 15 : -15) });
    expect(steady.snapshot().jitterMs).toBeLessThan(0.01);
    expect(jittery.snapshot().jitterMs).toBeGreaterThan(20);
    expect(jittery.snapshot().maxJitterMs).toBeGreaterThanOrEqual(jittery.snapshot().jitterMs);
  });

  it("judges a trailing gap as lost once the snapshot is taken", () => {
    const r = new StreamReception(8000);
    feed(r, [0, 1, 2, 5, 6]);
    expect(r.snapshot()).toMatchObject({ packetsExpected: 7, packetsLost: 2, lossBursts: 1, maxBurstPackets: 2 });
    // The snapshot judged provisionally: a late 3 is still accepted afterwards.
    feed(r, [3]);
    expect(r.snapshot()).toMatchObject({ packetsLost: 1, late: 0 });
  });
});
