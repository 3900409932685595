import { describe, expect, it } from "vitest";
import { ReceptionStats } from "../../sip/rtp/reception-stats.js";

function feed(stats: ReceptionStats, seqs: number[], spacingMs = 20, jitterMs: (i: number) => number = () => 0): void {
  seqs.forEach((seq, i) => stats.onPacket(seq & 0xffff, (seq * 160) >>> 0, 1000 + i * spacingMs + jitterMs(i)));
}

describe("ReceptionStats (RFC 3550 A.1/A.3/A.8)", () => {
  it("counts loss and the fraction lost per report interval", () => {
    const s = new ReceptionStats(8000);
    feed(s, [1, 2, 3, 5, 6, 8, 9, 10]);
    expect(s.expected).toBe(10);
    expect(s.cumulativeLost).toBe(2);
    const r1 = s.reportBlock(0x42, 2000);
    expect(r1).toMatchObject({ ssrc: 0x42, cumulativeLost: 2, highestSequence: 10, fractionLost: Math.floor((2 * 256) / 10) });
    expect(s.fractionLost).toBeCloseTo(0.2, 1);
    feed(s, [11, 12, 13, 14]);
    expect(s.reportBlock(0x42, 3000).fractionLost).toBe(0);
    // An interval with nothing expected leaves the last fraction as it was.
    s.reportBlock(0x42, 4000);
    expect(s.fractionLost).toBe(0);
  });

  it("treats reordering and duplicates within the window as received", () => {
    const s = new ReceptionStats(8000);
    feed(s, [1, 3, 2, 4, 4]);
    expect(s.extendedHighestSequence).toBe(4);
    expect(s.cumulativeLost).toBe(-1); // a duplicate counts as received (A.3)
    expect(s.reportBlock(1, 0).cumulativeLost).toBe(-1);
  });

  it("extends the sequence number across wrap-around", () => {
    const s = new ReceptionStats(8000);
    feed(s, [65534, 65535, 65536, 65537]);
    expect(s.extendedHighestSequence).toBe(65536 + 1);
    expect(s.cumulativeLost).toBe(0);
  });

  it("ignores one stray far-away packet but follows a restarted sender", () => {
    const s = new ReceptionStats(8000);
    feed(s, [100, 101, 102]);
    expect(s.onPacket(30000, 0, 2000)).toBe(false);
    expect(s.extendedHighestSequence).toBe(102);
    expect(s.onPacket(30001, 160, 2020)).toBe(true); // the next in sequence confirms the jump
    expect(s.extendedHighestSequence).toBe(30001);
    expect(s.packetsReceived).toBe(1);
  });

  it("jitter is zero for perfectly paced packets and grows with arrival variation", () => {
    const steady = new ReceptionStats(8000);
    feed(steady, Array.from({ length: 50 }, (_, i) => i));
    expect(steady.jitter).toBeCloseTo(0, 5);
    const jittery = new ReceptionStats(8000);
    feed(jittery, Array.from({ length: 200 }, (_, i) => i), 20, (i) => (i % 2 ? 10 : 0));
    // Transit alternates by 10 ms = 80 timestamp units; the estimator converges on that.
    expect(jittery.jitter).toBeGreaterThan(70);
    expect(jittery.jitterMs).toBeCloseTo(jittery.jitter / 8, 5);
  });

  it("puts LSR and DLSR of the last SR into the report", () => {
    const s = new ReceptionStats(8000);
    feed(s, [1]);
    s.onSenderReport(0xabcd1234, 1000);
    const r = s.reportBlock(9, 1500);
    expect(r.lastSenderReport).toBe(0xabcd1234);
    expect(r.delaySinceLastSenderReport).toBe(32768); // 0.5 s in 1/65536 s
  });
});
