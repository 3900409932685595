import { describe, expect, it } from "vitest";
import { MediaVersionError, MediaVersionMachine } from "../../gateway/meta/media-version.js";

describe("media version state machine", () => {
  it("starts at 0 and applies webhooks with higher versions only", () => {
    const m = new MediaVersionMachine();
    expect(m.version).toBe(0);
    expect(m.onWebhook({ version: 1, sdp: "a" })).toEqual({ kind: "apply", offer: { version: 1, sdp: "a" } });
    m.remoteApplied(1);
    expect(m.version).toBe(1);
    expect(m.onWebhook({ version: 1, sdp: "a" })).toEqual({ kind: "drop", reason: "duplicate" });
    expect(m.onWebhook({ version: 0, sdp: "old" })).toEqual({ kind: "drop", reason: "stale" });
    // Out of order: 3 arrives before 2; after 3 is applied, 2 is stale.
    expect(m.onWebhook({ version: 3, sdp: "c" }).kind).toBe("apply");
    m.remoteApplied(3);
    expect(m.onWebhook({ version: 2, sdp: "b" })).toEqual({ kind: "drop", reason: "stale" });
  });

  it("carries from/to versions and applies answer and re-offer of one response", () => {
    const m = new MediaVersionMachine();
    m.remoteApplied(1);
    expect(m.beginLocalOffer()).toEqual({ fromVersion: 1, toVersion: 2 });
    const d = m.onLocalOutcome({ kind: "response", answer: "ans", reoffer: "re" });
    expect(d).toEqual({ kind: "applied", answer: "ans", reoffer: { version: 3, sdp: "re" }, heldOffers: [] });
    m.remoteApplied(3);
    expect(m.version).toBe(3);
    expect(m.state).toBe("stable");
  });

  it("holds webhooks while our offer is in flight", () => {
    const m = new MediaVersionMachine();
    m.beginLocalOffer();
    expect(m.onWebhook({ version: 1, sdp: "x" })).toEqual({ kind: "hold" });
    expect(m.onWebhook({ version: 1, sdp: "x" })).toEqual({ kind: "drop", reason: "duplicate" });
    const d = m.onLocalOutcome({ kind: "conflict" });
    expect(d).toEqual({ kind: "collision", heldOffers: [{ version: 1, sdp: "x" }], retry: true });
    m.remoteApplied(1);
    expect(m.readyToRetry).toBe(true);
    expect(m.beginLocalOffer()).toEqual({ fromVersion: 1, toVersion: 2 });
  });

  it("treats a 200 without SDP as a collision and waits for Meta's offer", () => {
    const m = new MediaVersionMachine();
    m.beginLocalOffer();
    const d = m.onLocalOutcome({ kind: "response" });
    expect(d).toEqual({ kind: "collision", heldOffers: [], retry: true });
    expect(m.state).toBe("collided");
    expect(m.onWebhook({ version: 1, sdp: "meta" }).kind).toBe("apply");
    m.remoteApplied(1);
    expect(m.state).toBe("stable");
    expect(m.beginLocalOffer()).toEqual({ fromVersion: 1, toVersion: 2 });
  });

  it("bounds the retries", () => {
    const m = new MediaVersionMachine(2);
    const outcomes: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      m.beginLocalOffer();
      const d = m.onLocalOutcome({ kind: "conflict" });
      if (d.kind !== "collision") throw new Error("expected collision");
      outcomes.push(d.retry);
      m.giveUpWaiting();
    }
    expect(outcomes).toEqual([true, true, false]);
  });

  it("drops held webhooks the response already superseded", () => {
    const m = new MediaVersionMachine();
    m.beginLocalOffer();
    m.onWebhook({ version: 1, sdp: "old" });
    const d = m.onLocalOutcome({ kind: "response", answer: "ans", reoffer: "re" });
    if (d.kind !== "applied") throw new Error("expected applied");
    expect(d.reoffer?.version).toBe(2);
    expect(d.heldOffers).toEqual([]);
  });

  it("refuses a second offer in flight and an outcome without one", () => {
    const m = new MediaVersionMachine();
    expect(() => m.onLocalOutcome({ kind: "error" })).toThrow(MediaVersionError);
    m.beginLocalOffer();
    expect(() => m.beginLocalOffer()).toThrow(MediaVersionError);
    expect(m.onLocalOutcome({ kind: "error" })).toEqual({ kind: "failed", heldOffers: [] });
    expect(m.version).toBe(0);
  });
});
