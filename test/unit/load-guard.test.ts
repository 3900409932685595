import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LoadGuard, overloadReason, RECOVERY_SAMPLES, type LoadSample, type OverloadLimits } from "../../gateway/observe/load-guard.js";
import { LoadMonitor, LoopDelayMeter } from "../../gateway/observe/load-monitor.js";

const limits: OverloadLimits = { maxLoopDelayMs: 20, minIdleCpuPercent: 10 };
const calm: LoadSample = { loopDelayMs: 2, idleCpuPercent: 60 };

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe("overload admission (LoadGuard)", () => {
  it("names the limit a sample breaks, and none within limits or with limits off", () => {
    expect(overloadReason(limits, calm)).toBeUndefined();
    expect(overloadReason(limits, { loopDelayMs: 20, idleCpuPercent: 10 })).toBeUndefined();
    expect(overloadReason(limits, { loopDelayMs: 34.26, idleCpuPercent: 60 })).toBe("media event loop 34.3 ms late (limit 20 ms)");
    expect(overloadReason(limits, { loopDelayMs: 1, idleCpuPercent: 4 })).toBe("idle CPU 4.0 % (minimum 10 %)");
    expect(overloadReason({ maxLoopDelayMs: 0, minIdleCpuPercent: 0 }, { loopDelayMs: 900, idleCpuPercent: 0 })).toBeUndefined();
  });

  it("refuses from the first sample over a limit and takes calls again only after RECOVERY_SAMPLES within limits in a row", () => {
    const g = new LoadGuard(limits);
    expect(g.observe(calm)).toEqual({ state: "accepting", changed: false, reason: undefined });
    const over = g.observe({ loopDelayMs: 45, idleCpuPercent: 30 });
    expect(over).toMatchObject({ state: "overloaded", changed: true });
    expect(g.reason).toMatch(/45\.0 ms late/);
    for (let i = 1; i < RECOVERY_SAMPLES; i++) {
      expect(g.observe(calm)).toMatchObject({ state: "overloaded", changed: false });
      // While recovering, the reason stays the one that started the overload.
      expect(g.reason).toMatch(/45\.0 ms late/);
    }
    // A relapse starts the count again.
    expect(g.observe({ loopDelayMs: 1, idleCpuPercent: 2 })).toMatchObject({ state: "overloaded", changed: false, reason: "idle CPU 2.0 % (minimum 10 %)" });
    for (let i = 1; i < RECOVERY_SAMPLES; i++) expect(g.observe(calm).state).toBe("overloaded");
    expect(g.observe(calm)).toEqual({ state: "accepting", changed: true, reason: undefined });
    expect(g.reason).toBeUndefined();
  });
});

describe("load measurement (LoopDelayMeter, LoadMonitor)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("counts a worker that stops reporting as late as its report is overdue", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const m = new LoadMonitor({ limits: { maxLoopDelayMs: 20, minIdleCpuPercent: 0 }, log: pino({ level: "silent" }) });
    m.report("worker-0", 2);
    m.report("worker-1", 3);
    m.sample();
    expect(m.snapshot()).toMatchObject({ state: "accepting", loopDelayMs: 3 });
    // worker-1 goes on reporting; worker-0's loop is held and says nothing for 2.5 s.
    vi.advanceTimersByTime(2_500);
    m.report("worker-1", 3);
    m.sample();
    expect(m.snapshot().loopDelayMs).toBe(1_500);
    expect(m.overloaded).toBe(true);
  });

  it("measures a loop kept busy, and forgets it once taken", async () => {
    const meter = new LoopDelayMeter();
    try {
      // About 40 runs of the 10 ms timer, each held 30 ms by work on the loop.
      for (let i = 0; i < 40; i++) {
        busyFor(30);
        await new Promise((r) => setImmediate(r));
      }
      const busy = meter.take();
      expect(busy).toBeGreaterThan(15);
      await new Promise((r) => setTimeout(r, 300));
      // Idle, the timer runs about on time (a shared machine may still delay it a little).
      expect(meter.take()).toBeLessThan(busy / 2);
    } finally {
      meter.close();
    }
  });

  it("takes the worst media thread's fresh report, refuses over the limit and only measures without limits", () => {
    const guarded = new LoadMonitor({ limits: { maxLoopDelayMs: 20, minIdleCpuPercent: 0 }, log: pino({ level: "silent" }) });
    guarded.report("worker-0", 3);
    guarded.report("worker-1", 31);
    guarded.sample();
    expect(guarded.snapshot()).toMatchObject({ state: "overloaded", loopDelayMs: 31, overloads: 1 });
    expect(guarded.overloaded).toBe(true);
    expect(guarded.reason).toBe("media event loop 31.0 ms late (limit 20 ms)");
    // A worker that is gone no longer holds the machine overloaded.
    guarded.forget("worker-1");
    for (let i = 0; i < RECOVERY_SAMPLES; i++) guarded.sample();
    expect(guarded.snapshot()).toMatchObject({ state: "accepting", loopDelayMs: 3, overloads: 1 });

    const unguarded = new LoadMonitor({ limits: { maxLoopDelayMs: 0, minIdleCpuPercent: 0 }, log: pino({ level: "silent" }) });
    unguarded.report("worker-0", 500);
    unguarded.sample();
    expect(unguarded.snapshot()).toMatchObject({ state: "accepting", loopDelayMs: 500, overloads: 0 });
    const idle = unguarded.snapshot().idleCpuPercent;
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThanOrEqual(100);
  });
});
