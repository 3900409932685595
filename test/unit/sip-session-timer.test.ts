import { describe, expect, it } from "vitest";
import { SipHeaderError } from "../../sip/errors.js";
import {
  decideAsUas,
  expiryDelayMs,
  formatSessionExpires,
  parseMinSe,
  parseSessionExpires,
  refreshDelayMs,
  refresherParam,
  retryAfter422,
  timerFromUacResponse,
} from "../../sip/session-timer.js";

describe("Session-Expires and Min-SE (RFC 4028 §4, §5)", () => {
  it("reads the interval and the refresher, case-insensitively, ignoring other parameters", () => {
    expect(parseSessionExpires("1800")).toEqual({ seconds: 1800, refresher: undefined });
    expect(parseSessionExpires(" 90 ; refresher = UAS ")).toEqual({ seconds: 90, refresher: "uas" });
    expect(parseSessionExpires("4;x-foo=1;refresher=uac")).toEqual({ seconds: 4, refresher: "uac" });
    expect(parseSessionExpires(undefined)).toBeUndefined();
    expect(parseSessionExpires("  ")).toBeUndefined();
  });

  it("refuses what it cannot schedule", () => {
    for (const bad of ["soon", "0", "-5", "1.5", "99999999999", "1800;refresher=both", "90, 120"]) {
      expect(() => parseSessionExpires(bad), bad).toThrow(SipHeaderError);
    }
  });

  it("writes what it reads", () => {
    expect(formatSessionExpires({ seconds: 1800, refresher: "uac" })).toBe("1800;refresher=uac");
    expect(formatSessionExpires({ seconds: 90, refresher: undefined })).toBe("90");
    expect(parseSessionExpires(formatSessionExpires({ seconds: 300, refresher: "uas" }))).toEqual({ seconds: 300, refresher: "uas" });
  });

  it("reads Min-SE", () => {
    expect(parseMinSe("90")).toBe(90);
    expect(parseMinSe("120;lr")).toBe(120);
    expect(parseMinSe(undefined)).toBeUndefined();
    expect(() => parseMinSe("ninety")).toThrow(SipHeaderError);
  });
});

describe("who refreshes, and when", () => {
  it("maps the refresher parameter to our role in either direction of the transaction", () => {
    expect(refresherParam(true, true)).toBe("uac");
    expect(refresherParam(true, false)).toBe("uas");
    expect(refresherParam(false, true)).toBe("uas");
    expect(refresherParam(false, false)).toBe("uac");
  });

  it("refreshes at half the interval and gives up at the interval minus min(32 s, a third)", () => {
    expect(refreshDelayMs(1800)).toBe(900_000);
    expect(expiryDelayMs(1800)).toBe(1_768_000);
    expect(expiryDelayMs(90)).toBe(60_000);
    expect(expiryDelayMs(3)).toBe(2000);
  });

  it("as UAS: 422 below our Min-SE from a requester that can retry", () => {
    expect(decideAsUas({ sessionExpires: { seconds: 30, refresher: undefined }, minSeS: undefined, supportsTimer: true }, 90, undefined)).toEqual({
      kind: "too-small",
      minSeS: 90,
    });
  });

  it("as UAS: a requester without timer support gets a stretched interval and us as refresher instead of a 422", () => {
    const d = decideAsUas({ sessionExpires: { seconds: 30, refresher: undefined }, minSeS: undefined, supportsTimer: false }, 90, undefined);
    expect(d).toEqual({ kind: "timer", timer: { intervalS: 90, weRefresh: true }, sessionExpires: { seconds: 90, refresher: "uas" }, requireTimer: false });
  });

  it("as UAS: honours the refresher asked for, else lets a timer-capable requester refresh", () => {
    const asked = decideAsUas({ sessionExpires: { seconds: 1800, refresher: "uas" }, minSeS: 90, supportsTimer: true }, 90, undefined);
    expect(asked).toMatchObject({ kind: "timer", timer: { intervalS: 1800, weRefresh: true }, sessionExpires: { refresher: "uas" }, requireTimer: true });
    const open = decideAsUas({ sessionExpires: { seconds: 600, refresher: undefined }, minSeS: undefined, supportsTimer: true }, 90, undefined);
    expect(open).toMatchObject({ kind: "timer", timer: { intervalS: 600, weRefresh: false }, sessionExpires: { seconds: 600, refresher: "uac" } });
  });

  it("as UAS: no Session-Expires means no timer, unless one already runs, which is kept", () => {
    expect(decideAsUas({ sessionExpires: undefined, minSeS: undefined, supportsTimer: true }, 90, undefined)).toEqual({ kind: "none" });
    const kept = decideAsUas({ sessionExpires: undefined, minSeS: undefined, supportsTimer: true }, 90, { intervalS: 600, weRefresh: false });
    expect(kept).toMatchObject({ kind: "timer", timer: { intervalS: 600, weRefresh: false }, sessionExpires: { seconds: 600, refresher: "uac" } });
    // A peer that stopped saying it supports timers cannot be relied on to refresh.
    const taken = decideAsUas({ sessionExpires: undefined, minSeS: undefined, supportsTimer: false }, 90, { intervalS: 600, weRefresh: false });
    expect(taken).toMatchObject({ kind: "timer", timer: { weRefresh: true }, requireTimer: false });
  });

  it("as UAS: a running timer's refresher stays when a refresh names none", () => {
    const d = decideAsUas({ sessionExpires: { seconds: 600, refresher: undefined }, minSeS: undefined, supportsTimer: true }, 90, { intervalS: 600, weRefresh: true });
    expect(d).toMatchObject({ timer: { weRefresh: true }, sessionExpires: { refresher: "uas" } });
  });

  it("as UAC: the 2xx decides; no Session-Expires is no timer, a missing refresher makes us refresh", () => {
    expect(timerFromUacResponse(undefined)).toBeUndefined();
    expect(timerFromUacResponse({ seconds: 1800, refresher: "uas" })).toEqual({ intervalS: 1800, weRefresh: false });
    expect(timerFromUacResponse({ seconds: 1800, refresher: "uac" })).toEqual({ intervalS: 1800, weRefresh: true });
    expect(timerFromUacResponse({ seconds: 1800, refresher: undefined })).toEqual({ intervalS: 1800, weRefresh: true });
  });

  it("after a 422, retries only with a longer interval", () => {
    expect(retryAfter422(30, 90)).toBe(90);
    expect(retryAfter422(0, 120)).toBe(120);
    expect(retryAfter422(90, 90)).toBeUndefined();
    expect(retryAfter422(90, undefined)).toBeUndefined();
  });
});
