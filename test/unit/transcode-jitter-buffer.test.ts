import { describe, expect, it } from "vitest";
import { JitterBuffer, type JitterBufferOptions, type JitterEvent, type JitterPacket } from "../../transcode/jitter-buffer.js";

const FRAME = 960; // 20 ms at 48 kHz

function setup(options: Partial<JitterBufferOptions> = {}) {
  const events: JitterEvent[] = [];
  const buffer = new JitterBuffer({
    clockRate: 48000,
    durationOf: () => FRAME,
    onEvent: (event) => events.push(event),
    initialWaitMs: 20,
    ...options,
  });
  return { buffer, events };
}

/** Packet n of a stream that started at seq `base`, timestamp `n * FRAME` (+ `tsOffset` for pauses). */
function packet(n: number, base = 1000, tsOffset = 0, ssrc = 42): JitterPacket {
  return { seq: (base + n) & 0xffff, timestamp: (n * FRAME + tsOffset) >>> 0, ssrc, payload: Uint8Array.of(n & 0xff) };
}

function summary(events: JitterEvent[]): string[] {
  return events.map((e) => {
    switch (e.kind) {
      case "frame":
        return `frame ${e.packet.seq}`;
      case "lost":
        return `lost ${e.timestamp / FRAME}${e.fecFrom ? ` fec<-${e.fecFrom.seq}` : ""}`;
      case "silence":
        return `silence ${e.samples / FRAME} ${e.cause}`;
      case "reset":
        return `reset ${e.reason}`;
    }
  });
}

describe("JitterBuffer", () => {
  it("releases packets that arrive in order at once", () => {
    const { buffer, events } = setup();
    for (let n = 0; n < 5; n++) {
      buffer.push(packet(n), n * 20);
      expect(events.length).toBe(n + 1);
    }
    expect(summary(events)).toEqual(["frame 1000", "frame 1001", "frame 1002", "frame 1003", "frame 1004"]);
    expect(buffer.nextDeadlineMs()).toBeUndefined();
  });

  it("puts reordered packets back in order without declaring loss", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(1), 20);
    buffer.push(packet(3), 60);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001"]);
    buffer.push(packet(2), 65);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001", "frame 1002", "frame 1003"]);
    buffer.tick(1000);
    expect(buffer.stats()).toMatchObject({ reordered: 1, lost: 0, late: 0 });
  });

  it("declares a gap lost after the wait, conceals it once and drops the late packet", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(1), 20);
    buffer.push(packet(3), 60);
    const deadline = buffer.nextDeadlineMs();
    expect(deadline).toBeGreaterThan(60);
    expect(deadline).toBeLessThanOrEqual(60 + 60);
    buffer.tick((deadline as number) - 1);
    expect(events.length).toBe(2);
    buffer.tick(deadline as number);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001", "lost 2 fec<-1003", "frame 1003"]);
    const lost = events[2];
    expect(lost).toMatchObject({ kind: "lost", samples: FRAME });

    buffer.push(packet(2), (deadline as number) + 10);
    expect(events.length).toBe(4);
    expect(buffer.stats()).toMatchObject({ lost: 1, late: 1, reordered: 0 });
  });

  it("reports each packet of a multi-packet gap, with FEC only from the packet right after", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(4), 80);
    buffer.tick(500);
    expect(summary(events)).toEqual(["frame 1000", "lost 1", "lost 2", "lost 3 fec<-1004", "frame 1004"]);
  });

  it("drops duplicates, released or still held", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(1), 20);
    buffer.push(packet(1), 21);
    buffer.push(packet(3), 60);
    buffer.push(packet(3), 61);
    buffer.push(packet(2), 62);
    buffer.push(packet(0), 63);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001", "frame 1002", "frame 1003"]);
    expect(buffer.stats()).toMatchObject({ duplicates: 3, late: 0, lost: 0, received: 7, released: 4 });
  });

  it("treats a DTX pause (sequence continues, timestamp jumps) as silence, not loss", () => {
    const { buffer, events } = setup();
    for (let n = 0; n < 3; n++) buffer.push(packet(n), n * 20);
    // 400 ms of silence: the next packet is sequence 3 but timestamp of frame 23.
    buffer.push(packet(3, 1000, 20 * FRAME), 460);
    buffer.tick(2000);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001", "frame 1002", "silence 20 dtx", "frame 1003"]);
    expect(buffer.stats()).toMatchObject({ lost: 0, silences: 1 });
  });

  it("conceals only the lost packets of a gap that also spans a DTX pause", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(2, 1000, 10 * FRAME), 300);
    buffer.tick(1000);
    expect(summary(events)).toEqual(["frame 1000", "lost 1 fec<-1002", "silence 10 dtx", "frame 1002"]);
  });

  it("crosses the sequence number wrap at 65535", () => {
    const { buffer, events } = setup();
    const base = 65532;
    buffer.push(packet(0, base), 0); // 65532
    buffer.push(packet(1, base), 20); // 65533
    buffer.push(packet(2, base), 40); // 65534
    buffer.push(packet(4, base), 80); // 0, before 65535
    buffer.push(packet(3, base), 85); // 65535
    buffer.push(packet(5, base), 100); // 1
    buffer.push(packet(7, base), 140); // 3, 2 is lost
    buffer.tick(1000);
    expect(summary(events)).toEqual([
      "frame 65532",
      "frame 65533",
      "frame 65534",
      "frame 65535",
      "frame 0",
      "frame 1",
      "lost 6 fec<-3",
      "frame 3",
    ]);
    buffer.push(packet(4, base), 1001); // a duplicate from before the wrap
    expect(buffer.stats()).toMatchObject({ reordered: 1, lost: 1, duplicates: 1 });
  });

  it("crosses the 32-bit timestamp wrap without seeing a pause", () => {
    const { buffer, events } = setup();
    const start = 0x100000000 - 2 * FRAME;
    for (let n = 0; n < 4; n++) buffer.push(packet(n, 10, start), n * 20);
    expect(summary(events)).toEqual(["frame 10", "frame 11", "frame 12", "frame 13"]);
  });

  it("waits longer after seeing late reordering, and relaxes again when it stops", () => {
    const { buffer } = setup({ minWaitMs: 5, maxWaitMs: 60, initialWaitMs: 5 });
    let now = 0;
    let n = 0;
    const send = (k: number, at: number) => buffer.push(packet(k), at);
    send(n++, now);
    const initial = buffer.currentWaitMs();
    // Packet 1 is overtaken and arrives 35 ms after packet 2.
    send(2, (now += 20));
    buffer.tick(now + 30); // waited too short: packet 1 declared lost
    send(1, now + 35); // ... and turns up 35 ms after the gap opened
    n = 3;
    expect(buffer.stats().late).toBe(1);
    expect(buffer.currentWaitMs()).toBeGreaterThanOrEqual(35);
    expect(buffer.currentWaitMs()).toBeGreaterThan(initial);
    now += 40;
    // Next time the same reordering is absorbed.
    send(n + 1, (now += 20));
    send(n, now + 30);
    expect(buffer.stats()).toMatchObject({ reordered: 1, lost: 1 });
    n += 2;
    // A minute of clean packets later the wait is back near its floor.
    for (let i = 0; i < 3000; i++) send(n++, (now += 20));
    expect(buffer.currentWaitMs()).toBeLessThan(10);
  });

  it("never waits longer than maxWaitMs", () => {
    const { buffer, events } = setup({ maxWaitMs: 30 });
    buffer.push(packet(0), 0);
    buffer.push(packet(2), 20);
    buffer.push(packet(1), 500); // 480 ms late: observed, but the wait is capped
    buffer.push(packet(3), 520);
    buffer.push(packet(5), 540);
    expect(buffer.nextDeadlineMs()).toBe(540 + 30);
    buffer.tick(570);
    expect(summary(events).slice(-2)).toEqual(["lost 4 fec<-1005", "frame 1005"]);
  });

  it("declares loss at once when too many packets are held", () => {
    const { buffer, events } = setup({ maxHeldPackets: 3 });
    buffer.push(packet(0), 0);
    for (let n = 2; n <= 5; n++) buffer.push(packet(n), n);
    expect(summary(events)).toEqual(["frame 1000", "lost 1 fec<-1002", "frame 1002", "frame 1003", "frame 1004", "frame 1005"]);
  });

  it("conceals at most maxConcealedPerGap packets and reports the rest of an outage as silence", () => {
    const { buffer, events } = setup({ maxConcealedPerGap: 3 });
    buffer.push(packet(0), 0);
    buffer.push(packet(11), 220);
    buffer.tick(1000);
    expect(summary(events)).toEqual(["frame 1000", "lost 1", "lost 2", "lost 3", "silence 7 outage", "frame 1011"]);
    expect(buffer.stats().lost).toBe(10);
  });

  it("restarts on an SSRC change", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(1), 20);
    buffer.push({ ...packet(0, 5000), ssrc: 7, timestamp: 123 }, 40);
    buffer.push({ ...packet(1, 5000), ssrc: 7, timestamp: 123 + FRAME }, 60);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001", "reset ssrc-change", "frame 5000", "frame 5001"]);
  });

  it("restarts on a long sequence jump confirmed by a second packet, and ignores a lone stray", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(0, 30000), 10); // stray
    buffer.push(packet(1), 20);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001"]);
    buffer.push(packet(0, 40000, 5_000_000), 40);
    buffer.push(packet(1, 40000, 5_000_000), 60);
    buffer.push(packet(2, 40000, 5_000_000), 80);
    expect(summary(events)).toEqual(["frame 1000", "frame 1001", "reset sequence-jump", "frame 40000", "frame 40001", "frame 40002"]);
    expect(buffer.stats().resets).toBe(1);
  });

  it("flushes held packets on demand", () => {
    const { buffer, events } = setup();
    buffer.push(packet(0), 0);
    buffer.push(packet(2), 20);
    buffer.flush(21);
    expect(summary(events)).toEqual(["frame 1000", "lost 1 fec<-1002", "frame 1002"]);
  });
});
