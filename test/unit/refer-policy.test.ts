import { describe, expect, it } from "vitest";
import { checkReferTarget, sipUriHost } from "../../gateway/call/refer-policy.js";

describe("REFER target policy", () => {
  it("reads the host of sip: and sips: URIs only", () => {
    expect(sipUriHost("sip:200@PBX.example.com:5061;transport=tls")).toBe("pbx.example.com");
    expect(sipUriHost("sips:queue@10.0.0.5")).toBe("10.0.0.5");
    expect(sipUriHost("sip:[2001:db8::1]:5060")).toBe("[2001:db8::1]");
    expect(sipUriHost("tel:+4930123")).toBeUndefined();
    expect(sipUriHost("http://evil.example/")).toBeUndefined();
  });

  it("by default follows a REFER only to the call's own PBX", () => {
    const policy = { mode: "accept", allow: [] } as const;
    expect(checkReferTarget("sip:201@pbx.internal", policy, ["pbx.internal"])).toEqual({ ok: true, uri: "sip:201@pbx.internal" });
    const elsewhere = checkReferTarget("sip:1900premium@toll.example", policy, ["pbx.internal"]);
    expect(elsewhere).toMatchObject({ ok: false, status: 403 });
  });

  it("follows the allowlist: hosts, *.domain suffixes and exact URIs", () => {
    const policy = { mode: "accept", allow: ["10.0.0.5", "*.cc.example", "sip:night@other.example"] } as const;
    expect(checkReferTarget("sip:a@10.0.0.5", policy, ["pbx"]).ok).toBe(true);
    expect(checkReferTarget("sip:a@eu.cc.example", policy, ["pbx"]).ok).toBe(true);
    expect(checkReferTarget("sip:a@cc.example.evil.net", policy, ["pbx"]).ok).toBe(false);
    expect(checkReferTarget("sip:a@xcc.example", policy, ["pbx"]).ok).toBe(false);
    expect(checkReferTarget("sip:night@other.example", policy, ["pbx"]).ok).toBe(true);
    expect(checkReferTarget("sip:day@other.example", policy, ["pbx"]).ok).toBe(false);
    // The list replaces the default: the call's own PBX is then allowed only when listed.
    expect(checkReferTarget("sip:a@pbx", policy, ["pbx"]).ok).toBe(false);
  });

  it("refuses everything with SIP_REFER=reject, and nonsense with 400", () => {
    expect(checkReferTarget("sip:a@pbx", { mode: "reject", allow: [] }, ["pbx"])).toMatchObject({ ok: false, status: 603 });
    expect(checkReferTarget("tel:+1", { mode: "accept", allow: [] }, ["pbx"])).toMatchObject({ ok: false, status: 400 });
    expect(checkReferTarget(`sip:${"a".repeat(600)}@pbx`, { mode: "accept", allow: [] }, ["pbx"])).toMatchObject({ ok: false, status: 400 });
  });
});
