import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../gateway/config/config.js";
import { checkIdLength, DEFAULT_LIMITS, jsonDepthExceeds, LimitExceededError, sdpOverLimit } from "../../gateway/config/limits.js";
import { connectEvent, webhookPayload } from "../../sim/webhook-events.js";

const base = {
  META_APP_SECRET: "s3cret",
  META_VERIFY_TOKEN: "verify-me",
  META_PAGE_ID: "1234567890",
  META_PAGE_ACCESS_TOKEN: "EAAtoken",
};

describe("jsonDepthExceeds", () => {
  it("finds 10,000 levels of nesting in one linear pass, objects and arrays alike", () => {
    const deepObject = `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`;
    const started = performance.now();
    expect(jsonDepthExceeds(deepObject, 32)).toBe(true);
    expect(jsonDepthExceeds(`${"[".repeat(33)}${"]".repeat(33)}`, 32)).toBe(true);
    expect(performance.now() - started).toBeLessThan(50);
  });

  it("admits nesting up to the bound, and a real Meta delivery", () => {
    expect(jsonDepthExceeds(`${"[".repeat(32)}${"]".repeat(32)}`, 32)).toBe(false);
    const delivery = webhookPayload("1234567890", [[connectEvent({ callId: "c_1", pageId: "1234567890", psid: "24680", direction: "user_initiated" })]]);
    expect(jsonDepthExceeds(JSON.stringify(delivery), DEFAULT_LIMITS.webhook.maxJsonDepth)).toBe(false);
  });

  it("does not count brackets inside strings, escaped quotes included", () => {
    expect(jsonDepthExceeds(JSON.stringify({ sdp: "[".repeat(100), q: 'a\\"{{{{"' }), 2)).toBe(false);
    expect(jsonDepthExceeds(JSON.stringify([["\\", [[]]]]), 3)).toBe(true);
  });
});

describe("id and SDP bounds", () => {
  it("throws LimitExceededError naming MAX_ID_LENGTH for an id over it", () => {
    expect(() => checkIdLength("call id", "c_".padEnd(128, "1"), 128)).not.toThrow();
    let caught: unknown;
    try {
      checkIdLength("call id", "c_".padEnd(129, "1"), 128);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(LimitExceededError);
    expect(caught).toMatchObject({ limit: "MAX_ID_LENGTH", max: 128 });
    expect((caught as Error).message).toBe("call id is 129 characters long (MAX_ID_LENGTH is 128)");
  });

  it("names the SDP bound a description breaks, and admits an ordinary one", () => {
    const sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    expect(sdpOverLimit(sdp, DEFAULT_LIMITS.sdp)).toBeUndefined();
    expect(sdpOverLimit(sdp + "a=x\r\n".repeat(1000), DEFAULT_LIMITS.sdp)?.limit).toBe("SDP_MAX_LINES");
    expect(sdpOverLimit(`${sdp}a=${"x".repeat(40_000)}\r\n`, DEFAULT_LIMITS.sdp)?.limit).toBe("SDP_MAX_BYTES");
    // Multi-byte characters count as the bytes they take.
    expect(sdpOverLimit("é".repeat(20_000), { maxBytes: 32_768, maxLines: 10 })?.limit).toBe("SDP_MAX_BYTES");
  });
});

describe("limit settings", () => {
  it("has documented defaults", () => {
    const { limits } = loadConfig(base);
    expect(limits).toEqual({
      webhook: { maxBodyBytes: 4 * 1024 * 1024, maxJsonDepth: 32 },
      maxIdLength: 128,
      sdp: { maxBytes: 32 * 1024, maxLines: 1000 },
      sip: { maxMessageBytes: 65_535, maxHeaders: 100, maxHeaderBytes: 8192, callsPerSecond: 20 },
    });
  });

  it("reads each setting, and refuses bad values naming the setting", () => {
    const { limits } = loadConfig({
      ...base,
      WEBHOOK_MAX_BODY_BYTES: "65536",
      SIP_MAX_MESSAGE_BYTES: "16384",
      SIP_MAX_HEADERS: "40",
      SIP_MAX_HEADER_BYTES: "2048",
      SIP_MAX_CALLS_PER_SECOND: "0",
    });
    expect(limits.webhook.maxBodyBytes).toBe(65_536);
    expect(limits.sip).toEqual({ maxMessageBytes: 16_384, maxHeaders: 40, maxHeaderBytes: 2048, callsPerSecond: 0 });
    for (const [key, value] of [
      ["WEBHOOK_MAX_BODY_BYTES", "4MB"],
      ["SIP_MAX_MESSAGE_BYTES", "100"],
      ["SIP_MAX_HEADERS", "-1"],
      ["SIP_MAX_CALLS_PER_SECOND", "fast"],
    ] as const) {
      let caught: unknown;
      try {
        loadConfig({ ...base, [key]: value });
      } catch (err) {
        caught = err;
      }
      expect(caught, key).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).setting).toBe(key);
    }
  });
});
