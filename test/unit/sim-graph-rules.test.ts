import { describe, expect, it } from "vitest";
import { businessActionError, mediaVersionError, type CallFacts } from "../../sim/call-rules.js";
import { GraphApiError, graphErrors, MessengerCallingCode, NON_SHA256_FINGERPRINT_SUBCODE } from "../../sim/graph-errors.js";
import { accessTokenOf, parseCallsBody, routeGraphPath } from "../../sim/graph-request.js";
import { validateBusinessOffer } from "../../sim/sdp-validation.js";
import { VALID_OFFER } from "./sim-helpers.js";

function graphError(fn: () => unknown): GraphApiError {
  try {
    fn();
  } catch (error) {
    if (error instanceof GraphApiError) return error;
    throw error;
  }
  throw new Error("expected a GraphApiError");
}

describe("Graph error envelope", () => {
  it("has Meta's shape and key order, with error_subcode only when set", () => {
    const withSub = graphErrors.nonSha256Fingerprint("sha-384").toEnvelope("AbCdEfGhIjK");
    expect(Object.keys(withSub.error)).toEqual(["message", "type", "code", "error_subcode", "fbtrace_id"]);
    expect(withSub.error).toMatchObject({ type: "OAuthException", code: 2018392, error_subcode: 2494010, fbtrace_id: "AbCdEfGhIjK" });

    const without = graphErrors.invalidCallId("c_1").toEnvelope();
    expect(Object.keys(without.error)).toEqual(["message", "type", "code", "fbtrace_id"]);
    expect(without.error.fbtrace_id).toMatch(/^[A-Za-z0-9_-]{11}$/);
  });

  it("uses 401 and code 190 for a bad token", () => {
    const error = graphErrors.invalidToken();
    expect([error.httpStatus, error.code, error.type]).toEqual([401, 190, "OAuthException"]);
  });
});

describe("routeGraphPath and accessTokenOf", () => {
  it("routes any vNN.N version to calls and permissions", () => {
    expect(routeGraphPath("/v26.0/123/calls")).toEqual({ kind: "calls", version: "v26.0", pageId: "123" });
    expect(routeGraphPath("/v19.0/123/messenger_call_permissions")).toEqual({ kind: "call-permissions", version: "v19.0", pageId: "123" });
    expect(routeGraphPath("/26.0/123/calls").kind).toBe("unknown");
    expect(routeGraphPath("/v26.0/123/messages").kind).toBe("messages");
    expect(routeGraphPath("/v26.0/123/conversations").kind).toBe("unknown");
    expect(routeGraphPath("/v26.0/123/calls/extra").kind).toBe("unknown");
  });

  it("takes the bearer header first, then the access_token parameter", () => {
    expect(accessTokenOf("Bearer abc", new URLSearchParams("access_token=zzz"))).toBe("abc");
    expect(accessTokenOf(undefined, new URLSearchParams("access_token=zzz"))).toBe("zzz");
    expect(accessTokenOf("Basic abc", new URLSearchParams())).toBeUndefined();
  });
});

describe("parseCallsBody", () => {
  const session = { sdp_type: "offer", sdp: VALID_OFFER };

  it("returns typed requests for every action", () => {
    expect(parseCallsBody({ platform: "messenger", call_id: "c_1", action: "accept", session })).toEqual({ action: "accept", callId: "c_1", session });
    expect(parseCallsBody({ to: "555", action: "connect", session })).toEqual({ action: "connect", to: "555", session });
    expect(parseCallsBody({ call_id: "c_1", action: "reject" })).toEqual({ action: "reject", callId: "c_1" });
    expect(parseCallsBody({ call_id: "c_1", action: "terminate" })).toEqual({ action: "terminate", callId: "c_1" });
    expect(
      parseCallsBody({
        call_id: "c_1",
        action: "media_update",
        session,
        from_version: "0",
        to_version: 1,
        tracks: [{ msid: "t", label: "DEFAULT_VIDEO", status: "enabled" }],
      }),
    ).toEqual({
      action: "media_update",
      callId: "c_1",
      session,
      fromVersion: 0,
      toVersion: 1,
      tracks: [{ msid: "t", label: "default_video", status: "enabled" }],
    });
  });

  it("rejects unknown actions and missing ids with code 100", () => {
    expect(graphError(() => parseCallsBody({ call_id: "c_1", action: "pre_accept" })).code).toBe(100);
    expect(graphError(() => parseCallsBody({ action: "terminate" })).code).toBe(100);
    expect(graphError(() => parseCallsBody({ action: "connect", session })).code).toBe(100);
    expect(graphError(() => parseCallsBody({ call_id: "c_1", action: "accept", session, platform: "whatsapp" })).code).toBe(100);
    expect(graphError(() => parseCallsBody("nope")).code).toBe(100);
  });

  it("answers 2018391 for a missing session and 2018392 for a malformed one", () => {
    expect(graphError(() => parseCallsBody({ call_id: "c_1", action: "accept" })).code).toBe(MessengerCallingCode.invalidConnection);
    const wrongType = graphError(() => parseCallsBody({ call_id: "c_1", action: "accept", session: { sdp_type: "answer", sdp: VALID_OFFER } }));
    expect(wrongType.code).toBe(MessengerCallingCode.invalidSdp);
    expect(graphError(() => parseCallsBody({ call_id: "c_1", action: "accept", session: { sdp_type: "offer" } })).code).toBe(2018392);
    // A JSON string session is decoded, as the media_update guide describes it.
    expect(parseCallsBody({ call_id: "c_1", action: "accept", session: JSON.stringify(session) })).toMatchObject({ session });
  });

  it("validates media_update versions and tracks", () => {
    const base = { call_id: "c_1", action: "media_update", session };
    expect(graphError(() => parseCallsBody({ ...base, to_version: 1 })).code).toBe(100);
    expect(graphError(() => parseCallsBody({ ...base, from_version: -1, to_version: 0 })).code).toBe(100);
    const five = Array.from({ length: 5 }, (_, i) => ({ msid: `m${i}`, label: "default_audio", status: "enabled" }));
    expect(graphError(() => parseCallsBody({ ...base, from_version: 0, to_version: 1, tracks: five })).code).toBe(100);
    const badLabel = [{ msid: "m", label: "front_camera", status: "enabled" }];
    expect(graphError(() => parseCallsBody({ ...base, from_version: 0, to_version: 1, tracks: badLabel })).code).toBe(100);
  });
});

describe("validateBusinessOffer", () => {
  const replace = (from: string, to: string): string => VALID_OFFER.replace(from, to);

  it("accepts a well-formed offer", () => {
    expect(validateBusinessOffer(VALID_OFFER).media).toHaveLength(1);
  });

  it("answers subcode 2494010 for a non-sha-256 or missing fingerprint", () => {
    const sha384 = replace("a=setup:actpass", "a=fingerprint:sha-384 AA:BB\r\na=setup:actpass");
    const err = graphError(() => validateBusinessOffer(sha384));
    expect([err.code, err.subcode]).toEqual([MessengerCallingCode.invalidSdp, NON_SHA256_FINGERPRINT_SUBCODE]);
    const none = VALID_OFFER.split("\r\n").filter((l) => !l.startsWith("a=fingerprint")).join("\r\n");
    expect(graphError(() => validateBusinessOffer(none)).subcode).toBe(NON_SHA256_FINGERPRINT_SUBCODE);
  });

  it("answers 2018392 for missing BUNDLE, ICE credentials, candidates, Opus or a passive setup", () => {
    const cases = [
      replace("a=group:BUNDLE 0\r\n", ""),
      replace("a=ice-ufrag:abcd\r\n", ""),
      replace("a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host generation 0\r\n", ""),
      replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 PCMU/8000"),
      replace("a=setup:actpass", "a=setup:passive"),
      "not sdp",
    ];
    for (const sdp of cases) {
      const err = graphError(() => validateBusinessOffer(sdp));
      expect(err.code).toBe(MessengerCallingCode.invalidSdp);
      expect(err.subcode).toBeUndefined();
    }
  });

  it("can allow candidate-free offers like Meta's own samples", () => {
    const noCandidates = replace("a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host generation 0\r\n", "");
    expect(() => validateBusinessOffer(noCandidates, { requireCandidates: false })).not.toThrow();
  });
});

describe("call rules", () => {
  const call = (phase: CallFacts["phase"], direction: CallFacts["direction"] = "user_initiated", failed = false): CallFacts => ({
    phase,
    direction,
    end: phase === "ended" ? { reason: failed ? "failed" : "business-terminated", status: failed ? "Failed" : "Completed", at: 0 } : undefined,
  });

  it("allows accept only while ringing", () => {
    expect(businessActionError(call("ringing"), "accept")).toBeUndefined();
    expect(businessActionError(call("accepting"), "accept")?.message).toMatch(/already been accepted/);
    expect(businessActionError(call("accepted"), "accept")?.message).toMatch(/already been accepted/);
    expect(businessActionError(call("ended"), "accept")?.code).toBe(MessengerCallingCode.endedCall);
    expect(businessActionError(call("ended", "user_initiated", true), "accept")?.code).toBe(MessengerCallingCode.failedCall);
    expect(businessActionError(call("ringing", "business_initiated"), "accept")?.code).toBe(100);
  });

  it("allows reject on ringing consumer calls and terminate until the end", () => {
    expect(businessActionError(call("ringing"), "reject")).toBeUndefined();
    expect(businessActionError(call("ringing", "business_initiated"), "reject")?.code).toBe(100);
    expect(businessActionError(call("accepted"), "terminate")).toBeUndefined();
    expect(businessActionError(call("ended"), "terminate")?.code).toBe(MessengerCallingCode.endedCall);
    expect(businessActionError(call("ended"), "reject")?.code).toBe(MessengerCallingCode.endedCall);
  });

  it("requires media_update to move from the current version to the next", () => {
    expect(mediaVersionError(1, 1, 2)).toBeUndefined();
    expect(mediaVersionError(1, 0, 1)?.message).toMatch(/Conflicting media status/);
    expect(mediaVersionError(1, 1, 3)).toBeDefined();
  });
});
