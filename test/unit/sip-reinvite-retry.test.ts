import { describe, expect, it } from "vitest";
import { glareDelayMs, reinviteRetryDelayMs } from "../../sip/session-timeouts.js";

describe("reinviteRetryDelayMs (RFC 3261 §14.1, §14.2)", () => {
  it("retries a 491 after the glare delay it is given", () => {
    expect(reinviteRetryDelayMs(491, undefined, () => 1234)).toBe(1234);
    const owner = reinviteRetryDelayMs(491, undefined, () => glareDelayMs(true))!;
    expect(owner).toBeGreaterThanOrEqual(2100);
    expect(owner).toBeLessThanOrEqual(4000);
  });

  it("retries a 500 with Retry-After after the seconds asked for, comment and parameters allowed", () => {
    expect(reinviteRetryDelayMs(500, "0", () => 9)).toBe(0);
    expect(reinviteRetryDelayMs(500, "7", () => 9)).toBe(7000);
    expect(reinviteRetryDelayMs(500, "3 (overlapping offer)", () => 9)).toBe(3000);
    expect(reinviteRetryDelayMs(500, "4;duration=60", () => 9)).toBe(4000);
    expect(reinviteRetryDelayMs(500, " 10", () => 9)).toBe(10_000);
  });

  it("does not retry a 500 without a usable Retry-After, one asking over 10 s, or other failures", () => {
    expect(reinviteRetryDelayMs(500, undefined, () => 9)).toBeUndefined();
    expect(reinviteRetryDelayMs(500, "soon", () => 9)).toBeUndefined();
    expect(reinviteRetryDelayMs(500, "-1", () => 9)).toBeUndefined();
    expect(reinviteRetryDelayMs(500, "11", () => 9)).toBeUndefined();
    expect(reinviteRetryDelayMs(500, "1234567", () => 9)).toBeUndefined();
    expect(reinviteRetryDelayMs(503, "1", () => 9)).toBeUndefined();
    expect(reinviteRetryDelayMs(488, undefined, () => 9)).toBeUndefined();
  });
});
