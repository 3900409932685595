import { describe, expect, it } from "vitest";
import { RtpPacket } from "werift";
import { TransportFeedbackRecorder, transportSequenceNumber } from "../../gateway/webrtc/transport-cc.js";

/*
 * A transport-cc feedback parser written from draft-holmer-rmcat-transport-wide-cc-extensions-01
 * §3.1 alone, sharing nothing with the module under test. It is strict where a careless encoder
 * goes wrong: the length field, 32-bit alignment, the padding count, chunks that announce more
 * packets than the status count, reserved symbols, and deltas that do not fill the packet exactly.
 */

interface ParsedStatus {
  /** 16-bit transport-wide sequence number. */
  seq: number;
  received: boolean;
  /** Receive delta in 250 µs ticks, for received packets. */
  delta?: number;
  /** Whether the delta was written in 2 bytes. */
  large?: boolean;
}

interface ParsedFeedback {
  senderSsrc: number;
  mediaSsrc: number;
  baseSeq: number;
  statusCount: number;
  /** 24-bit signed, in 64 ms. */
  referenceTime: number;
  fbCount: number;
  chunks: number[];
  statuses: ParsedStatus[];
  padding: number;
}

function parseFeedback(buf: Buffer): ParsedFeedback {
  const fail = (why: string): never => {
    throw new Error(`malformed transport-cc feedback (${why}): ${buf.toString("hex")}`);
  };
  if (buf.length < 20) fail("shorter than the fixed fields");
  if (buf.length % 4 !== 0) fail("not a multiple of 32 bits");
  if (buf[0]! >> 6 !== 2) fail("version");
  const hasPadding = (buf[0]! & 0x20) !== 0;
  if ((buf[0]! & 0x1f) !== 15) fail("FMT");
  if (buf[1] !== 205) fail("PT");
  if ((buf.readUInt16BE(2) + 1) * 4 !== buf.length) fail("length field");
  let end = buf.length;
  let padding = 0;
  if (hasPadding) {
    padding = buf[buf.length - 1]!;
    if (padding === 0 || padding > buf.length - 20) fail("padding count");
    for (let i = buf.length - padding; i < buf.length - 1; i++) if (buf[i] !== 0) fail("padding bytes");
    end -= padding;
  }
  const statusCount = buf.readUInt16BE(14);
  if (statusCount === 0) fail("no packet status");
  const symbols: number[] = [];
  const chunks: number[] = [];
  let pos = 20;
  while (symbols.length < statusCount) {
    if (pos + 2 > end) fail("chunks run past the end");
    const chunk = buf.readUInt16BE(pos);
    pos += 2;
    chunks.push(chunk);
    const remaining = statusCount - symbols.length;
    if ((chunk & 0x8000) === 0) {
      // Run length chunk: T=0, S (2), run length (13).
      const s = (chunk >> 13) & 0x3;
      const run = chunk & 0x1fff;
      if (s === 3) fail("reserved symbol");
      if (run === 0 || run > remaining) fail("run length");
      for (let i = 0; i < run; i++) symbols.push(s);
    } else if ((chunk & 0x4000) === 0) {
      // Status vector, S=0: 14 one-bit symbols.
      for (let i = 0; i < 14; i++) {
        const s = (chunk >> (13 - i)) & 0x1;
        if (i < remaining) symbols.push(s);
        else if (s !== 0) fail("symbol past the status count");
      }
    } else {
      // Status vector, S=1: 7 two-bit symbols.
      for (let i = 0; i < 7; i++) {
        const s = (chunk >> (2 * (6 - i))) & 0x3;
        if (i < remaining) {
          if (s === 3) fail("reserved symbol");
          symbols.push(s);
        } else if (s !== 0) fail("symbol past the status count");
      }
    }
  }
  const baseSeq = buf.readUInt16BE(12);
  const statuses: ParsedStatus[] = symbols.map((s, i) => {
    const seq = (baseSeq + i) & 0xffff;
    if (s === 0) return { seq, received: false };
    if (s === 1) {
      if (pos + 1 > end) fail("deltas run past the end");
      return { seq, received: true, delta: buf[pos++]!, large: false };
    }
    if (pos + 2 > end) fail("deltas run past the end");
    const delta = buf.readInt16BE(pos);
    pos += 2;
    return { seq, received: true, delta, large: true };
  });
  if (pos !== end) fail(`${end - pos} bytes left after the deltas`);
  return {
    senderSsrc: buf.readUInt32BE(4),
    mediaSsrc: buf.readUInt32BE(8),
    baseSeq,
    statusCount,
    referenceTime: buf.readIntBE(16, 3),
    fbCount: buf[19]!,
    chunks,
    statuses,
    padding,
  };
}

const WRAP_US = 2 ** 24 * 64_000;
/** Arrival times the sender reconstructs (µs, modulo the reference time's wrap), by status index. */
function arrivalTimesUs(fb: ParsedFeedback): (number | undefined)[] {
  let t = fb.referenceTime * 64_000;
  return fb.statuses.map((s) => {
    if (!s.received) return undefined;
    t += s.delta! * 250;
    return ((t % WRAP_US) + WRAP_US) % WRAP_US;
  });
}

/** Distance between two times on the reference time's circle. */
function circularDiffUs(a: number, b: number): number {
  const d = (((a - b) % WRAP_US) + WRAP_US) % WRAP_US;
  return d > WRAP_US / 2 ? d - WRAP_US : d;
}

/** Small deterministic PRNG (mulberry32), so a failing pattern can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (s: string): string => s.replace(/\s+/g, "");

describe("transport-wide sequence number from a header extension", () => {
  it("reads it from werift's parse of the one-byte (RFC 8285 §4.2) form", () => {
    // V=2 X=1, PT 111, seq 7, ts 0, SSRC 1; profile 0xBEDE, 2 words; elements: id 1 len 1 (L=0) 0x30,
    // id 3 L=1 (2 bytes) 0xFFFE, then padding.
    const raw = Buffer.from(hex("906f0007 00000000 00000001 bede0002 1030 31fffe 000000 aabbcc"), "hex");
    const packet = RtpPacket.deSerialize(raw);
    expect(packet.header.extensions.map((e) => e.id)).toEqual([1, 3]);
    expect(transportSequenceNumber(packet.header.extensions, 3)).toBe(65534);
    expect(transportSequenceNumber(packet.header.extensions, 5)).toBeUndefined();
    // Another element of the wrong size under the id is not a sequence number.
    expect(transportSequenceNumber(packet.header.extensions, 1)).toBeUndefined();
  });

  it("reads it from werift's parse of the two-byte (RFC 8285 §4.3) form", () => {
    // Profile 0x1000, 2 words; elements: id 20 len 2 0x1234, id 3 len 0, then padding.
    const raw = Buffer.from(hex("906f0007 00000000 00000001 10000002 14021234 0300 0000 aabbcc"), "hex");
    const packet = RtpPacket.deSerialize(raw);
    expect(transportSequenceNumber(packet.header.extensions, 20)).toBe(0x1234);
    expect(transportSequenceNumber(packet.header.extensions, 3)).toBeUndefined();
  });
});

describe("transport-cc feedback, byte for byte", () => {
  it("encodes a worked example with a loss, small, large and negative deltas and padding", () => {
    const r = new TransportFeedbackRecorder();
    r.record(100, 1000.0);
    r.record(101, 1001.0);
    // 102 lost.
    r.record(103, 1100.0);
    r.record(104, 1099.5);
    r.record(105, 1100.25);
    const packets = r.build(0x11223344, 0x55667788);
    /*
     * Reference time: first received (100) at 1 000 000 µs; floor(1 000 000 / 64 000) = 15 → 0x00000F,
     *   i.e. 960 ms. Deltas in 250 µs ticks, each from the previous packet's time:
     *   100: 1000 - 960 = 40 ms = 160 → small 0xA0      101: 1 ms = 4 → small 0x04
     *   103: 99 ms = 396 → large 0x018C                  104: -0.5 ms = -2 → large 0xFFFE
     *   105: 0.75 ms = 3 → small 0x03
     * Statuses 100..105: 1 1 0 2 2 1 (6 mixed symbols with a large one) → one two-bit vector chunk:
     *   11 | 01 01 00 10 10 01 00 = 1101 0100 1010 0100 = 0xD4A4 (the 7th slot unused, zero).
     * Size: 20 fixed + 2 chunk + 7 deltas = 29 → 32 with 3 bytes of padding: P set → 0xAF (V=2 P=1
     *   FMT=15), PT 205 = 0xCD, length 32/4 - 1 = 7; padding 00 00 03.
     * base 100 = 0x0064, status count 6, fb pkt count 0.
     */
    expect(packets.map((p) => p.toString("hex"))).toEqual([
      hex("afcd0007 11223344 55667788 00640006 00000f00 d4a4a004 018cfffe 03000003"),
    ]);
  });

  it("encodes a worked example across the 65535 → 0 wrap with a one-bit vector and a run", () => {
    const r = new TransportFeedbackRecorder();
    // 24 packets from 65530, 5 ms apart from 64 000 ms; the 3rd (65532) and the 11th (4) are lost.
    for (let k = 0; k < 24; k++) {
      if (k === 2 || k === 10) continue;
      r.record((65530 + k) & 0xffff, 64_000 + 5 * k);
    }
    const packets = r.build(1, 2);
    /*
     * Reference time: 64 000 ms / 64 ms = 1000 = 0x0003E8; first delta 0.
     * Statuses 65530..65535, 0..17: 1 1 0 1 1 1 1 1 1 1 0 1 1 1 | 1 × 10.
     *   The first 14 mix 0 and 1 without large deltas: a one-bit vector chunk,
     *   10 | 11 0111 1111 0111 = 1011 0111 1111 0111 = 0xB7F7;
     *   the last 10 are all "small delta": a run length chunk 0 01 0000000001010 = 0x200A.
     * Deltas: 0, 5 ms = 20 (0x14), 10 ms = 40 (0x28) after each loss:
     *   00 14 | 28 14 14 14 14 14 14 | 28 14 ×12 = 22 bytes.
     * Size 20 + 4 + 22 = 46 → 48 with padding 00 02; length 11; base 65530 = 0xFFFA, count 24 = 0x0018.
     */
    expect(packets.map((p) => p.toString("hex"))).toEqual([
      hex("afcd000b 00000001 00000002 fffa0018 0003e800 b7f7200a 00142814 14141414 14281414 14141414 14141414 14140002"),
    ]);
  });

  it("numbers feedback packets and reports only what is new since the last one", () => {
    const r = new TransportFeedbackRecorder();
    r.record(7, 128.0);
    r.record(8, 129.0);
    r.record(9, 130.0);
    /*
     * Ref 128 ms / 64 = 2; deltas 0, 4, 4; three "small delta": run length 0x2003. 20 + 2 + 3 = 25 →
     * 28 with padding 00 00 03, length 6.
     */
    expect(r.build(5, 6)[0]!.toString("hex")).toBe(hex("afcd0006 00000005 00000006 00070003 00000200 20030004 04000003"));
    expect(r.build(5, 6)).toEqual([]);
    r.record(11, 192.5);
    /*
     * Second packet: base 10 (10 lost, 11 received): count 2, ref 192 / 64 = 3, fb count 1; statuses 0 1 as
     * a two-bit vector 11 00 01 00 00 00 00 00 = 0xC400; delta 0.5 ms = 2. 20 + 2 + 1 = 23 → 24, padding 01.
     */
    expect(r.build(5, 6)[0]!.toString("hex")).toBe(hex("afcd0005 00000005 00000006 000a0002 00000301 c4000201"));
  });

  it("needs no padding when the packet is already 32-bit aligned", () => {
    const r = new TransportFeedbackRecorder();
    // 6 packets 1 ms apart from 64 ms: ref 1, deltas 0 4 4 4 4 4, run 0x2006: 20 + 2 + 6 = 28 bytes,
    // aligned, so P is clear (0x8F) and the length is 6.
    for (let i = 0; i < 6; i++) r.record(i, 64 + i);
    const [p] = r.build(0, 0);
    expect(p!.toString("hex")).toBe(hex("8fcd0006 00000000 00000000 00000006 00000100 20060004 04040404"));
  });
});

describe("transport-cc feedback, chunk choice", () => {
  const chunksOf = (p: Buffer): string[] => parseFeedback(p).chunks.map((c) => c.toString(16).padStart(4, "0"));

  it("uses a run length chunk for a long uniform run", () => {
    const r = new TransportFeedbackRecorder();
    for (let i = 0; i < 20; i++) r.record(i, 1000 + i);
    expect(chunksOf(r.build(0, 0)[0]!)).toEqual(["2014"]);
  });

  it("emits 7 two-bit symbols once a large delta rules out a one-bit vector", () => {
    const r = new TransportFeedbackRecorder();
    r.record(0, 64_000);
    r.record(1, 64_100); // 400 ticks: large
    for (let i = 2; i < 21; i++) r.record(i, 64_100 + (i - 1));
    // 1 2 1 1 1 1 1 → 11 01 10 01 01 01 01 01 = 0xD955, then 14 × "small" → 0x200E.
    expect(chunksOf(r.build(0, 0)[0]!)).toEqual(["d955", "200e"]);
  });

  it("splits a long loss into full 8191-packet runs", () => {
    const r = new TransportFeedbackRecorder({ maxPackets: 16384 });
    r.record(0, 1000);
    r.record(10001, 1010);
    // 1 then 13 × 0 fill a one-bit vector (0xA000); 8191 × 0 is a full run (0x1FFF); the other
    // 1796 (0x704) × 0 a shorter run; the last packet a run of one "small" (0x2001).
    const [p] = r.build(0, 0);
    expect(chunksOf(p!)).toEqual(["a000", "1fff", "0704", "2001"]);
    expect(parseFeedback(p!).statusCount).toBe(10002);
  });
});

describe("transport-cc feedback, limits", () => {
  it("keeps a delta of ±32767/-32768 ticks and starts a new packet beyond", () => {
    const fits = new TransportFeedbackRecorder();
    fits.record(0, 64_000);
    fits.record(1, 64_000 + 32767 * 0.25);
    fits.record(2, 64_000 + 32767 * 0.25 - 32768 * 0.25);
    const one = fits.build(0, 0);
    expect(one).toHaveLength(1);
    expect(parseFeedback(one[0]!).statuses.map((s) => s.delta)).toEqual([0, 32767, -32768]);

    const splits = new TransportFeedbackRecorder();
    splits.record(0, 64_000);
    splits.record(1, 64_000 + 32768 * 0.25);
    const two = splits.build(0, 0).map(parseFeedback);
    expect(two.map((f) => [f.baseSeq, f.statusCount, f.fbCount])).toEqual([
      [0, 1, 0],
      [1, 1, 1],
    ]);
    // The second packet has its own reference time: floor(72 192 ms / 64 ms) = 1128, delta 0.
    expect(two[1]!.referenceTime).toBe(1128);
    expect(two[1]!.statuses[0]!.delta).toBe(0);
  });

  it("starts a new packet after a pause longer than 8.19 s and keeps every time exact", () => {
    const r = new TransportFeedbackRecorder();
    const times = [5000, 5003, 14_000, 14_001, 30_000.3];
    times.forEach((t, i) => r.record(i, t));
    const fbs = r.build(0, 0).map(parseFeedback);
    expect(fbs.map((f) => [f.baseSeq, f.statusCount])).toEqual([
      [0, 2],
      [2, 2],
      [4, 1],
    ]);
    const got = fbs.flatMap(arrivalTimesUs);
    got.forEach((t, i) => expect(Math.abs(circularDiffUs(t!, times[i]! * 1000))).toBeLessThanOrEqual(125));
  });

  it("keeps each packet within the size limit and splits without losing a status", () => {
    const r = new TransportFeedbackRecorder({ maxPacketBytes: 100 });
    const rand = prng(7);
    const sent: number[] = [];
    let t = 10_000;
    for (let seq = 0; seq < 400; seq++) {
      t += rand() < 0.5 ? 70 : 1; // alternate large and small deltas
      if (rand() < 0.3) continue;
      r.record(seq, t);
      sent.push(seq);
    }
    const fbs = r.build(0, 0);
    expect(fbs.length).toBeGreaterThan(5);
    let next = sent[0]!;
    const received: number[] = [];
    fbs.forEach((p, i) => {
      expect(p.length).toBeLessThanOrEqual(100);
      const f = parseFeedback(p);
      expect(f.baseSeq).toBe(next);
      expect(f.fbCount).toBe(i);
      expect(f.statuses.at(-1)!.received).toBe(true);
      next = f.baseSeq + f.statusCount;
      for (const s of f.statuses) if (s.received) received.push(s.seq);
    });
    expect(received).toEqual(sent);
  });

  it("wraps the 8-bit feedback packet count", () => {
    const r = new TransportFeedbackRecorder();
    const counts: number[] = [];
    for (let i = 0; i < 300; i++) {
      r.record(i, 100 + i * 20);
      counts.push(...r.build(0, 0).map((p) => parseFeedback(p).fbCount));
    }
    expect(counts).toEqual(Array.from({ length: 300 }, (_, i) => i % 256));
  });

  it("wraps the 24-bit reference time and keeps the deltas across it", () => {
    const r = new TransportFeedbackRecorder();
    const wrapMs = 2 ** 24 * 64;
    r.record(0, wrapMs - 64 + 10); // reference 2^24 - 1
    r.record(1, wrapMs - 64 + 20);
    const [a] = r.build(0, 0).map(parseFeedback);
    expect(a!.referenceTime).toBe(-1); // 0xFFFFFF read as signed
    r.record(2, wrapMs + 30);
    const [b] = r.build(0, 0).map(parseFeedback);
    expect(b!.referenceTime).toBe(0);
    // 1 (2^24 × 64 ms - 44 ms) to 2 (2^24 × 64 ms + 30 ms): 74 ms across the wrap.
    expect(circularDiffUs(arrivalTimesUs(b!)[0]!, arrivalTimesUs(a!)[1]!)).toBe(74_000);
  });
});

describe("transport-cc recorder, arrivals out of order", () => {
  it("ignores a duplicate and keeps its first arrival", () => {
    const r = new TransportFeedbackRecorder();
    expect(r.record(1, 640)).toBe(true);
    expect(r.record(1, 650)).toBe(false);
    const f = parseFeedback(r.build(0, 0)[0]!);
    expect(f.statuses).toEqual([{ seq: 1, received: true, delta: 0, large: false }]);
  });

  it("takes a reordered start before the first feedback", () => {
    const r = new TransportFeedbackRecorder();
    r.record(5, 1000);
    r.record(3, 1001);
    r.record(4, 1002);
    const f = parseFeedback(r.build(0, 0)[0]!);
    expect(f.baseSeq).toBe(3);
    // 3 then 4 (1 ms later) then 5 (2 ms earlier: negative).
    expect(f.statuses.map((s) => s.delta)).toEqual([4 * 41, 4, -8]);
  });

  it("reports a packet that arrives after it was reported lost, repeating the ones after it", () => {
    const r = new TransportFeedbackRecorder();
    for (let i = 0; i < 10; i++) if (i !== 5) r.record(i, 6400 + i);
    const first = parseFeedback(r.build(0, 0)[0]!);
    expect(first.statuses[5]).toEqual({ seq: 5, received: false });
    expect(r.record(5, 6420)).toBe(true);
    r.record(10, 6421);
    const again = parseFeedback(r.build(0, 0)[0]!);
    expect(again.baseSeq).toBe(5);
    const times = arrivalTimesUs(again);
    expect(again.statuses.map((s) => s.received)).toEqual([true, true, true, true, true, true]);
    [6420, 6406, 6407, 6408, 6409, 6421].forEach((ms, i) => expect(Math.abs(circularDiffUs(times[i]!, ms * 1000))).toBeLessThanOrEqual(125));
  });

  it("drops a packet far older than the last feedback and stays bounded under a burst of old ones", () => {
    const r = new TransportFeedbackRecorder({ maxPackets: 1024 });
    for (let i = 0; i < 10; i++) if (i !== 5) r.record(i, 1000 + i);
    r.build(0, 0);
    for (let i = 10; i < 200; i++) r.record(i, 1000 + 5 * i);
    r.build(0, 0);
    // 6 (the packet after 5) arrived ~1 s before the newest (> 500 ms): 5 is no longer expected.
    expect(r.record(5, 2000)).toBe(false);
    expect(r.build(0, 0)).toEqual([]);

    const rand = prng(3);
    for (let i = 0; i < 100_000; i++) r.record(Math.floor(rand() * 65536), 2000 + i * 0.01);
    expect(r.heldPackets).toBeLessThanOrEqual(1024);
    for (const p of r.build(0, 0)) expect(parseFeedback(p).statusCount).toBeLessThanOrEqual(1024);
    expect(r.heldPackets).toBeLessThanOrEqual(1024);
  });
});

describe("transport-cc feedback, random round trips through an independent parser", () => {
  interface Arrival {
    seq: number;
    ms: number;
  }

  /** Sends `count` packets from `startSeq` with losses, jitter, late packets, duplicates and pauses. */
  function traffic(seed: number, count: number, startSeq: number): Arrival[] {
    const rand = prng(seed);
    const loss = 0.05 + rand() * 0.25;
    const arrivals: Arrival[] = [];
    let send = 1_000 + rand() * 1e6;
    for (let k = 0; k < count; k++) {
      send += rand() < 0.003 ? 8_500 + rand() * 4_000 : 0.5 + rand() * 20;
      if (rand() < loss) continue;
      // Late by up to 120 ms now and then: reordered past many packets, still within 500 ms.
      const delay = 20 + rand() * 15 + (rand() < 0.05 ? rand() * 120 : 0);
      arrivals.push({ seq: startSeq + k, ms: send + delay });
      if (rand() < 0.02) arrivals.push({ seq: startSeq + k, ms: send + delay + rand() * 40 });
    }
    arrivals.sort((a, b) => a.ms - b.ms);
    return arrivals;
  }

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`seed ${seed}: every arrival reported as received within half a tick, every loss as lost`, () => {
      const startSeq = 65536 - 500 - seed * 37; // crosses 65535 → 0
      const arrivals = traffic(seed, 3000, startSeq);
      const r = new TransportFeedbackRecorder();
      const firstArrival = new Map<number, number>();
      const packets: Buffer[] = [];
      let nextBuild = arrivals[0]!.ms + 100;
      for (const a of arrivals) {
        while (a.ms >= nextBuild) {
          packets.push(...r.build(0xabcdef01, 0x12345678));
          nextBuild += 100;
        }
        const isNew = !firstArrival.has(a.seq);
        expect(r.record(a.seq & 0xffff, a.ms)).toBe(isNew);
        if (isNew) firstArrival.set(a.seq, a.ms);
      }
      packets.push(...r.build(0xabcdef01, 0x12345678));

      const reportedReceived = new Set<number>();
      const reportedLost = new Set<number>();
      let coveredUpTo: number | undefined; // unwrapped: first sequence number not yet covered
      let sawNegative = false;
      let steppedBack = 0;
      packets.forEach((p, i) => {
        expect(p.length).toBeLessThanOrEqual(1200);
        const f = parseFeedback(p);
        expect(f.senderSsrc).toBe(0xabcdef01);
        expect(f.mediaSsrc).toBe(0x12345678);
        expect(f.fbCount).toBe(i & 0xff);
        // Unwrap the base against what was covered so far.
        const near = coveredUpTo ?? startSeq;
        const base = near + ((((f.baseSeq - near) & 0xffff) << 16) >> 16);
        // Contiguous: never skips ahead; only steps back when a late packet is reported.
        if (coveredUpTo !== undefined) expect(base).toBeLessThanOrEqual(coveredUpTo);
        if (coveredUpTo !== undefined && base < coveredUpTo) steppedBack++;
        expect(f.statuses.some((s) => s.received)).toBe(true);
        expect(f.statuses.at(-1)!.received).toBe(true);
        const times = arrivalTimesUs(f);
        f.statuses.forEach((s, j) => {
          const seq = base + j;
          if (s.received) {
            const ms = firstArrival.get(seq);
            expect(ms, `seq ${seq} reported received but never arrived`).toBeDefined();
            expect(Math.abs(circularDiffUs(times[j]!, ms! * 1000))).toBeLessThanOrEqual(125.001);
            if (s.delta! < 0) sawNegative = true;
            reportedReceived.add(seq);
          } else {
            reportedLost.add(seq);
          }
        });
        coveredUpTo = Math.max(coveredUpTo ?? base, base + f.statusCount);
      });

      const highest = Math.max(...firstArrival.keys());
      const lowest = Math.min(...firstArrival.keys());
      expect([...reportedReceived].sort((a, b) => a - b)).toEqual([...firstArrival.keys()].sort((a, b) => a - b));
      for (let seq = lowest; seq < highest; seq++) {
        if (!firstArrival.has(seq)) expect(reportedLost.has(seq), `lost seq ${seq} never reported`).toBe(true);
      }
      expect(coveredUpTo).toBe(highest + 1);
      // The patterns exercise what they mean to: negative deltas, late packets re-reported.
      expect(sawNegative).toBe(true);
      expect(steppedBack).toBeGreaterThan(0);
    });
  }

  it("splits into several packets within one build when the sender pauses > 8.19 s between reports", () => {
    const r = new TransportFeedbackRecorder();
    const rand = prng(99);
    const arrivals: Arrival[] = [];
    let t = 500;
    for (let seq = 65000; seq < 66000; seq++) {
      t += seq % 250 === 0 ? 9_000 : 1 + rand() * 10;
      if (rand() < 0.1) continue;
      arrivals.push({ seq, ms: t });
    }
    for (const a of arrivals) r.record(a.seq & 0xffff, a.ms);
    const fbs = r.build(0, 0).map(parseFeedback);
    // Pauses before 65250, 65500, 65750: four packets, each starting where the last ended.
    expect(fbs).toHaveLength(4);
    let seqs: number[] = [];
    let expectedBase = arrivals[0]!.seq;
    for (const f of fbs) {
      expect(f.baseSeq).toBe(expectedBase & 0xffff);
      expectedBase += f.statusCount;
      const times = arrivalTimesUs(f);
      f.statuses.forEach((s, j) => {
        if (!s.received) return;
        const seq = f.baseSeq + j;
        seqs.push(seq);
        const a = arrivals.find((x) => (x.seq & 0xffff) === (seq & 0xffff))!;
        expect(Math.abs(circularDiffUs(times[j]!, a.ms * 1000))).toBeLessThanOrEqual(125.001);
      });
    }
    seqs = seqs.map((s) => s & 0xffff);
    expect(seqs).toEqual(arrivals.map((a) => a.seq & 0xffff));
  });
});
