import { describe, expect, it } from "vitest";
import { notReadyReason, type ReadinessFacts } from "../../gateway/http/readiness.js";

const ready: ReadinessFacts = { draining: false, liveCalls: 3, maxCalls: 10, sipReady: true, clusterHealthy: true, workersDown: [], overloaded: false, overloadReason: undefined };

describe("/readyz's reason", () => {
  it("is absent when every condition holds", () => {
    expect(notReadyReason(ready)).toBeUndefined();
  });

  it("names the condition that keeps new calls away", () => {
    expect(notReadyReason({ ...ready, draining: true })).toBe("draining");
    expect(notReadyReason({ ...ready, workersDown: [1] })).toBe("media worker 1 not up");
    expect(notReadyReason({ ...ready, sipReady: false })).toMatch(/^SIP side not ready/);
    expect(notReadyReason({ ...ready, clusterHealthy: false })).toBe("Redis unreachable");
    expect(notReadyReason({ ...ready, liveCalls: 10 })).toBe("full: 10 of 10 calls");
    expect(notReadyReason({ ...ready, overloaded: true, overloadReason: "idle CPU 3.0 % (minimum 10 %)" })).toBe("overloaded: idle CPU 3.0 % (minimum 10 %)");
  });

  it("gives draining first: a stopping instance is not coming back, whatever else holds", () => {
    expect(notReadyReason({ ...ready, draining: true, sipReady: false, liveCalls: 10 })).toBe("draining");
  });
});
