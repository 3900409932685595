import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canBind, resourceCounts } from "../support/resources.js";
import { graphRequests, requestSdp, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/** A gateway that leaks a socket or a timer per call dies in production after a busy week. */
describe("resources over sequential calls", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("leaves no sockets, timers or ports after 20 calls", async () => {
    const runCall = async (i: number): Promise<number> => {
      const call = await h.sim.placeCall({ toneHz: 300 + i * 10 });
      await call.waitForState("media", 10_000);
      // Alternate who hangs up, so both teardown paths are counted.
      if (i % 2 === 0) await call.hangup();
      else await h.gateway.registry.get(call.id)!.hangup("test");
      await call.waitForState("ended", 5_000);
      await waitFor(() => h.gateway.registry.size === 0, 5_000, "the gateway to release the call");
      const sdp = requestSdp(graphRequests(h.sim, "accept", call.id)[0]!)!;
      return Number(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+)/.exec(sdp)![1]);
    };

    await runCall(0); // first call creates process-wide state (the DTLS certificate)
    await sleep(300);
    const before = resourceCounts();
    const ports: number[] = [];
    for (let i = 1; i <= 20; i++) ports.push(await runCall(i));
    // Connections in the gateway's keep-alive pool toward the Graph API are not per call, but the
    // pool grows to two when a call's call_metrics report overlaps the next call's accept: wait
    // (up to 15 s) for idle connections to close, so only per-call resources remain.
    const settled = (): boolean => ["UDPWrap", "TCPSocketWrap", "Timeout", "Immediate"].every((k) => (resourceCounts()[k] ?? 0) <= (before[k] ?? 0));
    for (let waited = 0; waited < 15_000 && !settled(); waited += 250) await sleep(250);
    const after = resourceCounts();

    for (const kind of ["UDPWrap", "TCPSocketWrap", "Timeout", "Immediate"]) {
      expect({ kind, count: after[kind] ?? 0 }).toEqual({ kind, count: Math.min(after[kind] ?? 0, before[kind] ?? 0) });
    }
    expect(h.sim.activeCalls()).toHaveLength(0);
    for (const port of new Set(ports)) expect({ port, free: await canBind(port) }).toEqual({ port, free: true });
    const calls = h.gateway.registry.stats();
    expect(calls.active).toBe(0);
    expect(calls.started).toBe(21);
  }, 120_000);
});
