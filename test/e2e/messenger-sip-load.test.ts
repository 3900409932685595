import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canBind, resourceCounts } from "../support/resources.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp, type SippProcess } from "../support/sipp.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

function heapMB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc (vitest.config.ts sets it)");
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Calls through both legs, one after another and side by side: nothing may stay behind. */
describe("Messenger calls to SIPp, sequential and parallel", () => {
  let h: Harness;
  let sipp: SippProcess;
  const CALLS = 60;

  beforeAll(async () => {
    requireSipp();
    const port = await freePort();
    sipp = startSipp({ scenario: "gw-echo.xml", port, calls: CALLS, timeoutS: 170, extraArgs: ["-rtp_echo"] });
    await sipp.ready;
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${port}`, LOG_LEVEL: "info" } });
  });
  afterAll(async () => {
    await h?.stop();
    await killAllSipp();
  });

  it("leaves no ports, sockets, timers or processes after 50 sequential and 10 parallel calls, memory flat", async () => {
    const oneCall = async (): Promise<void> => {
      const call = await h.sim.placeCall();
      await call.waitForState("media", 15_000);
      // The PBX echoes our G.711 back: the consumer must hear real audio, not only comfort noise.
      await waitFor(() => call.consumer.stats.packetsReceived > 15, 5000, "audio at the consumer");
      await call.hangup();
      await call.waitForState("ended", 5000);
    };
    const settle = async (): Promise<void> => {
      await waitFor(() => h.gateway.registry.size === 0, 10_000, "all calls to end");
      await sleep(400);
      // The simulator keeps every call for inspection; only the gateway's memory is measured here.
      h.sim.forgetEndedCalls();
      h.logs.lines.length = 0;
    };

    await oneCall(); // the first call creates process-wide state (certificate, codec tables)
    await settle();
    const before = resourceCounts();
    const heapBefore = heapMB();

    for (let i = 0; i < 49; i++) await oneCall();
    await settle();
    await Promise.all(Array.from({ length: 10 }, () => oneCall()));
    await settle();

    // SIP transactions linger by design after they complete (RFC 3261 Timer J: 64·T1 = 32 s on UDP)
    // to absorb retransmissions; wait for them before counting.
    const t0 = Date.now();
    await waitFor(() => (resourceCounts().Timeout ?? 0) <= (before.Timeout ?? 0), 40_000, "SIP transaction timers to expire");
    console.log(`timers back to baseline after ${Date.now() - t0} ms`);
    const after = resourceCounts();
    const heapAfter = heapMB();
    // TCP sockets are left out: the HTTP keep-alive pools between the simulator and the gateway
    // (webhooks one way, Graph API the other) keep idle connections by design, more after a burst.
    for (const kind of ["UDPWrap", "Timeout", "Immediate", "ProcessWrap"]) {
      expect({ kind, count: after[kind] ?? 0 }).toEqual({ kind, count: Math.min(after[kind] ?? 0, before[kind] ?? 0) });
    }
    console.log(`heap after warm-up ${heapBefore.toFixed(1)} MB, after ${CALLS - 1} more calls ${heapAfter.toFixed(1)} MB`);
    expect(heapAfter - heapBefore, `heap ${heapBefore.toFixed(1)} → ${heapAfter.toFixed(1)} MB`).toBeLessThan(8);
    const stats = h.gateway.registry.stats();
    expect(stats.started).toBe(CALLS);
    expect(stats.ended["completed-consumer-hangup"]).toBe(CALLS);
    // The media range is free again: the SIP side's upper half and the ICE side's lower half.
    const { rtpPortMin, rtpPortMax } = h.config.media;
    for (let p = rtpPortMin; p <= rtpPortMax; p += 37) expect({ port: p, free: await canBind(p) }).toEqual({ port: p, free: true });

    const result = await finish(sipp, 10_000);
    expect(result.code, describeSipp(result)).toBe(0);
  }, 170_000);
});
