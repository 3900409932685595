import { describe, expect, it } from "vitest";
import { keepWaitingForClaim, leaseHolds, leaseTiming, unclaimedRetryDelayMs, UNCLAIMED_WAIT_MS } from "../../gateway/cluster/lease.js";
import { decodeCallState, encodeLive, locate } from "../../gateway/cluster/call-state.js";
import { pickInstanceWithRoom, stateOf, type InstanceSnapshot } from "../../gateway/cluster/admission.js";

describe("lease arithmetic", () => {
  it("renews every third of the lease and sweeps at least every 2 s", () => {
    expect(leaseTiming(3_000)).toEqual({ leaseMs: 3_000, renewEveryMs: 1_000, sweepEveryMs: 1_000, settleMs: 3_000 });
    expect(leaseTiming(15_000)).toEqual({ leaseMs: 15_000, renewEveryMs: 5_000, sweepEveryMs: 2_000, settleMs: 15_000 });
    // A dead instance's calls are found within lease + one sweep period, whatever the lease.
    for (const lease of [1_000, 3_000, 15_000, 300_000]) {
      const t = leaseTiming(lease);
      expect(t.renewEveryMs * 2).toBeLessThan(t.leaseMs);
      expect(t.sweepEveryMs).toBeLessThanOrEqual(2_000);
    }
  });

  it("refuses a lease too short to renew", () => {
    expect(() => leaseTiming(299)).toThrow(RangeError);
    expect(() => leaseTiming(Number.NaN)).toThrow(RangeError);
  });

  it("a claim holds strictly less than its lease after renewal", () => {
    expect(leaseHolds(1_000, 3_999, 3_000)).toBe(true);
    expect(leaseHolds(1_000, 4_000, 3_000)).toBe(false);
  });

  it("waits for an unclaimed call's claim quickly at first, then every quarter second, for 10 s", () => {
    expect([0, 1, 2, 3, 4, 5, 50].map(unclaimedRetryDelayMs)).toEqual([25, 50, 100, 200, 250, 250, 250]);
    expect(keepWaitingForClaim(0, UNCLAIMED_WAIT_MS - 1)).toBe(true);
    expect(keepWaitingForClaim(0, UNCLAIMED_WAIT_MS)).toBe(false);
  });
});

describe("where a call's webhooks go", () => {
  it("follows the claim first, then the record", () => {
    const live = (owner: string) => decodeCallState(encodeLive(owner, "tag"));
    expect(locate("a", "a", live("a"))).toEqual({ kind: "self" });
    expect(locate("a", "b", live("b"))).toEqual({ kind: "peer", owner: "b" });
    // The lease ran out but the record still names the owner: it is gone.
    expect(locate("a", null, live("b"))).toEqual({ kind: "orphan", owner: "b" });
    // Our own lease lapsed (a Redis blip): still ours, re-asserted at the next renewal.
    expect(locate("a", null, live("a"))).toEqual({ kind: "self" });
    expect(locate("a", null, decodeCallState("ended"))).toEqual({ kind: "ended" });
    expect(locate("a", null, undefined)).toEqual({ kind: "unclaimed" });
  });

  it("reads back what it writes, tags with tabs included, and nothing else", () => {
    expect(decodeCallState(encodeLive("gw-1", "123\tx"))).toEqual({ kind: "live", owner: "gw-1", tag: "123\tx" });
    expect(decodeCallState(null)).toBeUndefined();
    expect(decodeCallState("live\t\tx")).toBeUndefined();
    expect(decodeCallState("junk")).toBeUndefined();
  });
});

describe("admission across instances", () => {
  const snap = (id: string, live: number, max: number, state: InstanceSnapshot["state"] = "ready"): InstanceSnapshot => ({ id, url: `http://${id}`, liveCalls: live, maxCalls: max, state });

  it("picks the live instance with most room, never itself, never a full or draining one", () => {
    expect(pickInstanceWithRoom([snap("a", 0, 10), snap("b", 1, 10), snap("c", 0, 3)], "a")?.id).toBe("b");
    expect(pickInstanceWithRoom([snap("b", 10, 10), snap("c", 0, 10, "draining"), snap("d", 2, 2, "full")], "a")).toBeUndefined();
    expect(pickInstanceWithRoom([snap("c", 5, 10), snap("b", 5, 10)], "a")?.id).toBe("b");
    expect(pickInstanceWithRoom([snap("b", 0, 10, "overloaded"), snap("c", 9, 10)], "a")?.id).toBe("c");
  });

  it("names an instance's state from its load", () => {
    const load = { draining: false, liveCalls: 2, maxCalls: 3, overloaded: false };
    expect(stateOf(load)).toBe("ready");
    expect(stateOf({ ...load, liveCalls: 3 })).toBe("full");
    expect(stateOf({ ...load, overloaded: true })).toBe("overloaded");
    expect(stateOf({ ...load, draining: true, overloaded: true })).toBe("draining");
    expect(stateOf({ ...load, liveCalls: 3, overloaded: true })).toBe("full");
  });
});
