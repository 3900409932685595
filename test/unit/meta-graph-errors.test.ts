import { describe, expect, it } from "vitest";
import { GraphApiError, classifyGraphError } from "../../gateway/meta/graph-errors.js";

describe("classifyGraphError", () => {
  it("maps the Messenger calling codes whether they come as code or subcode", () => {
    const expected: [number, string][] = [
      [2018389, "permission"],
      [2018390, "call-gone"],
      [2018391, "invalid-sdp"],
      [2018392, "invalid-sdp"],
      [2018393, "call-gone"],
      [2018394, "permission"],
      [2018395, "call-gone"],
      [2018396, "call-gone"],
    ];
    for (const [n, cls] of expected) {
      expect(classifyGraphError(n, undefined, 400, undefined), `code ${n}`).toBe(cls);
      expect(classifyGraphError(100, n, 400, undefined), `subcode ${n}`).toBe(cls);
    }
  });

  it("recognises call settings not enabled and non-sha-256 fingerprints", () => {
    expect(classifyGraphError(100, 1893056, 400, false)).toBe("permission");
    expect(classifyGraphError(100, 2494010, 400, false)).toBe("invalid-sdp");
  });

  it("separates auth, permission, rate limit and transient Graph codes", () => {
    expect(classifyGraphError(190, 463, 401, false)).toBe("auth");
    expect(classifyGraphError(102, undefined, 400, false)).toBe("auth");
    expect(classifyGraphError(10, undefined, 403, false)).toBe("permission");
    expect(classifyGraphError(200, undefined, 403, false)).toBe("permission");
    expect(classifyGraphError(299, undefined, 403, false)).toBe("permission");
    for (const code of [4, 17, 32, 613]) expect(classifyGraphError(code, undefined, 400, false)).toBe("rate-limit");
    expect(classifyGraphError(613, 2534040, 400, false)).toBe("rate-limit");
    expect(classifyGraphError(undefined, 2534040, 400, false)).toBe("rate-limit");
    expect(classifyGraphError(undefined, undefined, 429, undefined)).toBe("rate-limit");
    for (const code of [1, 2, 341, 368]) expect(classifyGraphError(code, undefined, 500, false)).toBe("transient");
  });

  it("falls back to the is_transient flag and 5xx, else other", () => {
    expect(classifyGraphError(100, undefined, 400, true)).toBe("transient");
    expect(classifyGraphError(undefined, undefined, 503, undefined)).toBe("transient");
    expect(classifyGraphError(100, undefined, 400, false)).toBe("other");
    expect(classifyGraphError(551, undefined, 400, false)).toBe("other");
    expect(classifyGraphError(undefined, undefined, undefined, undefined)).toBe("other");
  });

  it("lets a specific calling code win over a transient flag or a 5xx", () => {
    expect(classifyGraphError(100, 2018396, 500, true)).toBe("call-gone");
  });
});

describe("GraphApiError", () => {
  it("carries its fields and derives the class", () => {
    const err = new GraphApiError({
      kind: "graph",
      action: "accept",
      callId: "c_1",
      httpStatus: 400,
      code: 100,
      subcode: 2018392,
      fbtraceId: "AbC",
      type: "OAuthException",
      message: "bad sdp",
    });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("GraphApiError");
    expect(err).toMatchObject({ kind: "graph", action: "accept", callId: "c_1", code: 100, subcode: 2018392, fbtraceId: "AbC", type: "OAuthException" });
    expect(err.errorClass).toBe("invalid-sdp");
    expect(err.isTransient).toBe(false);
  });

  it("treats timeouts and network failures as transient", () => {
    expect(new GraphApiError({ kind: "timeout", action: "terminate", message: "t" }).isTransient).toBe(true);
    expect(new GraphApiError({ kind: "network", action: "terminate", message: "n" }).isTransient).toBe(true);
    expect(new GraphApiError({ kind: "bad-response", action: "accept", httpStatus: 200, message: "b" }).isTransient).toBe(false);
    expect(new GraphApiError({ kind: "bad-response", action: "terminate", httpStatus: 502, message: "b" }).isTransient).toBe(true);
  });
});
