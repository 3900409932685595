import { describe, expect, it } from "vitest";
import { EventDeduper, isStaleConnect } from "../../gateway/meta/dedupe.js";

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe("EventDeduper", () => {
  it("reports a key as new once, then as a repeat", () => {
    const d = new EventDeduper({ now: clock().now });
    expect(d.firstSeen("a")).toBe(true);
    expect(d.firstSeen("a")).toBe(false);
    expect(d.firstSeen("b")).toBe(true);
    expect(d.firstSeen("a")).toBe(false);
  });

  it("forgets keys after the TTL", () => {
    const c = clock();
    const d = new EventDeduper({ ttlMs: 1_000, now: c.now });
    expect(d.firstSeen("a")).toBe(true);
    c.advance(999);
    expect(d.firstSeen("a")).toBe(false);
    c.advance(1);
    expect(d.firstSeen("a")).toBe(true);
  });

  it("does not extend a key's life when a repeat arrives", () => {
    const c = clock();
    const d = new EventDeduper({ ttlMs: 1_000, now: c.now });
    d.firstSeen("a");
    c.advance(800);
    expect(d.firstSeen("a")).toBe(false);
    c.advance(200);
    expect(d.firstSeen("a")).toBe(true);
  });

  it("drops expired keys from memory as time passes", () => {
    const c = clock();
    const d = new EventDeduper({ ttlMs: 100, now: c.now });
    for (let i = 0; i < 50; i++) d.firstSeen(`k${i}`);
    expect(d.size).toBe(50);
    c.advance(100);
    d.firstSeen("fresh");
    expect(d.size).toBe(1);
  });

  it("is bounded: the oldest keys are forgotten first", () => {
    const d = new EventDeduper({ maxEntries: 3, now: clock().now });
    for (const k of ["a", "b", "c", "d"]) expect(d.firstSeen(k)).toBe(true);
    expect(d.size).toBe(3);
    expect(d.firstSeen("d")).toBe(false);
    expect(d.firstSeen("c")).toBe(false);
    expect(d.firstSeen("a")).toBe(true); // evicted, so new again
    expect(d.size).toBe(3);
  });

  it("validates its options", () => {
    expect(() => new EventDeduper({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new EventDeduper({ maxEntries: 1.5 })).toThrow(RangeError);
    expect(() => new EventDeduper({ ttlMs: 0 })).toThrow(RangeError);
    expect(() => new EventDeduper({ ttlMs: Number.NaN })).toThrow(RangeError);
  });
});

describe("isStaleConnect", () => {
  const nowMs = 1_700_000_100_000;

  it("uses integer seconds as Messenger sends them", () => {
    expect(isStaleConnect({ timestamp: 1_700_000_100 }, nowMs)).toBe(false);
    expect(isStaleConnect({ timestamp: 1_700_000_040 }, nowMs)).toBe(false); // exactly 60 s
    expect(isStaleConnect({ timestamp: 1_700_000_039 }, nowMs)).toBe(true);
  });

  it("tolerates millisecond timestamps", () => {
    expect(isStaleConnect({ timestamp: 1_700_000_090_000 }, nowMs)).toBe(false);
    expect(isStaleConnect({ timestamp: 1_700_000_000_000 }, nowMs)).toBe(true);
  });

  it("honours a custom maximum age", () => {
    expect(isStaleConnect({ timestamp: 1_700_000_080 }, nowMs, 10_000)).toBe(true);
    expect(isStaleConnect({ timestamp: 1_700_000_095 }, nowMs, 10_000)).toBe(false);
  });

  it("treats timestamps ahead of the local clock as fresh", () => {
    expect(isStaleConnect({ timestamp: 1_700_000_500 }, nowMs)).toBe(false);
  });
});
