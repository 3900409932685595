import { describe, expect, it } from "vitest";
import {
  buildTelephoneEvent,
  convertDuration,
  DtmfReceiver,
  dtmfPackets,
  parseTelephoneEvent,
  TelephoneEventError,
  type DtmfDigit,
  type DtmfDigitEvent,
  type DtmfPacket,
} from "../../transcode/dtmf.js";

function receiver(clockRate: number) {
  const digits: DtmfDigitEvent[] = [];
  return { rx: new DtmfReceiver(clockRate, (d) => digits.push(d)), digits };
}

describe("telephone-event payload (RFC 4733 §2.3)", () => {
  it("parses the fields", () => {
    // Event 5, E bit, volume 10, duration 800.
    expect(parseTelephoneEvent(Uint8Array.of(5, 0x8a, 0x03, 0x20))).toEqual({ event: 5, end: true, volume: 10, duration: 800 });
    // The R bit is ignored.
    expect(parseTelephoneEvent(Uint8Array.of(11, 0x40 | 7, 0, 160))).toEqual({ event: 11, end: false, volume: 7, duration: 160 });
  });

  it("builds what it parses", () => {
    const event = { event: 15, end: true, volume: 63, duration: 65535 };
    expect(Array.from(buildTelephoneEvent(event))).toEqual([15, 0xbf, 0xff, 0xff]);
    expect(parseTelephoneEvent(buildTelephoneEvent(event))).toEqual(event);
  });

  it("rejects short payloads and out-of-range fields", () => {
    expect(() => parseTelephoneEvent(Uint8Array.of(1, 2, 3))).toThrow(TelephoneEventError);
    expect(() => buildTelephoneEvent({ event: 1, end: false, volume: 64, duration: 0 })).toThrow(TelephoneEventError);
    expect(() => buildTelephoneEvent({ event: 1, end: false, volume: 0, duration: 70000 })).toThrow(TelephoneEventError);
  });

  it("converts durations between clock rates", () => {
    expect(convertDuration(800, 8000, 48000)).toBe(4800);
    expect(convertDuration(4800, 48000, 8000)).toBe(800);
  });
});

describe("dtmfPackets", () => {
  it("sends updates every 20 ms and three end packets, all on the event's timestamp (8 kHz)", () => {
    const packets = dtmfPackets("5", { clockRate: 8000, timestamp: 12345, durationMs: 100 });
    const fields = packets.map((p) => ({ ...parseTelephoneEvent(p.payload), marker: p.marker, at: p.sendOffsetMs }));
    expect(fields).toEqual([
      { event: 5, end: false, volume: 10, duration: 160, marker: true, at: 0 },
      { event: 5, end: false, volume: 10, duration: 320, marker: false, at: 20 },
      { event: 5, end: false, volume: 10, duration: 480, marker: false, at: 40 },
      { event: 5, end: false, volume: 10, duration: 640, marker: false, at: 60 },
      { event: 5, end: true, volume: 10, duration: 800, marker: false, at: 80 },
      { event: 5, end: true, volume: 10, duration: 800, marker: false, at: 100 },
      { event: 5, end: true, volume: 10, duration: 800, marker: false, at: 120 },
    ]);
    expect(new Set(packets.map((p) => p.timestamp))).toEqual(new Set([12345]));
  });

  it("counts durations in 48 kHz ticks toward Meta", () => {
    const packets = dtmfPackets("#", { clockRate: 48000, timestamp: 0, durationMs: 100 });
    expect(packets.map((p) => parseTelephoneEvent(p.payload).duration)).toEqual([960, 1920, 2880, 3840, 4800, 4800, 4800]);
    expect(parseTelephoneEvent((packets[0] as DtmfPacket).payload).event).toBe(11);
  });

  it("marks the only packets of a digit shorter than one interval", () => {
    const packets = dtmfPackets("1", { clockRate: 8000, timestamp: 0, durationMs: 10 });
    expect(packets.map((p) => [p.marker, parseTelephoneEvent(p.payload).end])).toEqual([
      [true, true],
      [false, true],
      [false, true],
    ]);
  });

  it("splits an event longer than 65535 ticks into segments", () => {
    const packets = dtmfPackets("9", { clockRate: 48000, timestamp: 1000, durationMs: 2000 });
    const timestamps = [...new Set(packets.map((p) => p.timestamp))];
    expect(timestamps).toEqual([1000, 1000 + 65535]);
    const end = packets.at(-1) as DtmfPacket;
    expect(parseTelephoneEvent(end.payload)).toMatchObject({ end: true, duration: 96000 - 65535 });
    expect(packets.filter((p) => p.marker).length).toBe(1);
    for (const p of packets) expect(parseTelephoneEvent(p.payload).duration).toBeLessThanOrEqual(65535);
  });
});

describe("DtmfReceiver", () => {
  it("reports a digit once although its end packet comes three times", () => {
    const { rx, digits } = receiver(8000);
    for (const p of dtmfPackets("7", { clockRate: 8000, timestamp: 500, durationMs: 120 })) rx.push(p);
    expect(digits).toEqual([{ digit: "7", timestamp: 500, durationMs: 120, volume: 10, endedBy: "end-packet" }]);
  });

  it("round-trips a sequence of digits at both clock rates", () => {
    for (const clockRate of [8000, 48000]) {
      const { rx, digits } = receiver(clockRate);
      const sequence: DtmfDigit[] = ["1", "2", "3", "*", "0", "#", "A", "D", "1", "1"];
      let timestamp = 0xffffff00; // crosses the 32-bit wrap
      for (const digit of sequence) {
        for (const p of dtmfPackets(digit, { clockRate, timestamp, durationMs: 80 })) rx.push(p);
        timestamp = (timestamp + clockRate / 5) >>> 0;
      }
      expect(digits.map((d) => d.digit)).toEqual(sequence);
      expect(digits.every((d) => d.durationMs === 80)).toBe(true);
    }
  });

  it("reports a digit whose end packets were all lost when the next one starts", () => {
    const { rx, digits } = receiver(8000);
    const first = dtmfPackets("4", { clockRate: 8000, timestamp: 0, durationMs: 100 }).filter((p) => !parseTelephoneEvent(p.payload).end);
    for (const p of first) rx.push(p);
    expect(digits).toEqual([]);
    for (const p of dtmfPackets("2", { clockRate: 8000, timestamp: 2000, durationMs: 100 })) rx.push(p);
    expect(digits.map((d) => [d.digit, d.endedBy, d.durationMs])).toEqual([
      ["4", "superseded", 80],
      ["2", "end-packet", 100],
    ]);
  });

  it("reports a digit whose start packets were lost, and ignores stale updates after the end", () => {
    const { rx, digits } = receiver(8000);
    const packets = dtmfPackets("8", { clockRate: 8000, timestamp: 0, durationMs: 100 });
    const ends = packets.filter((p) => parseTelephoneEvent(p.payload).end);
    rx.push(ends[0] as DtmfPacket);
    rx.push(packets[1] as DtmfPacket); // reordered update arriving after the end
    rx.push(ends[1] as DtmfPacket);
    expect(digits.map((d) => d.digit)).toEqual(["8"]);
  });

  it("merges the segments of a long event into one digit", () => {
    const { rx, digits } = receiver(48000);
    for (const p of dtmfPackets("0", { clockRate: 48000, timestamp: 77, durationMs: 2000 })) rx.push(p);
    expect(digits).toEqual([{ digit: "0", timestamp: 77, durationMs: 2000, volume: 10, endedBy: "end-packet" }]);
  });

  it("ignores events that are not DTMF digits", () => {
    const { rx, digits } = receiver(8000);
    rx.push({ payload: buildTelephoneEvent({ event: 32, end: true, volume: 10, duration: 800 }), timestamp: 0 });
    expect(digits).toEqual([]);
  });
});
