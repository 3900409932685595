import { describe, expect, it } from "vitest";
import { SipIngressPolicy, type IngressRefusal } from "../../gateway/call/sip-ingress.js";
import { DigestVerifier } from "../../sip/digest-verifier.js";

const SDP = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

const invite = (requestUri: string, options: { address?: string; headers?: Record<string, string>; sdp?: string } = {}) => ({
  source: { address: options.address ?? "127.0.0.1" },
  requestUri,
  header: (name: string) => options.headers?.[name.toLowerCase()],
  remoteSdp: options.sdp ?? SDP,
});

function refusal(decision: ReturnType<SipIngressPolicy["check"]>): IngressRefusal {
  if (!("status" in decision)) throw new Error(`expected a refusal, got ${JSON.stringify(decision)}`);
  return decision;
}

describe("SipIngressPolicy: what an agent dials", () => {
  it("answers 404 for a user part whose percent-encoding does not decode, instead of throwing", () => {
    const policy = new SipIngressPolicy(["127.0.0.1"], undefined);
    for (const user of ["%E0%A4%A", "%", "%ZZ", "12345%FF"]) {
      const r = refusal(policy.check(invite(`sip:${user}@127.0.0.1:5060`)));
      expect(r).toMatchObject({ status: 404, reason: "Not A Messenger Consumer" });
      expect(r.detail).toContain("percent-encoded");
    }
    expect(policy.check(invite("sip:%31%32%33%34%35%36@127.0.0.1"))).toEqual({ psid: "123456" });
  });

  it("refuses a PSID over MAX_ID_LENGTH, naming the bound, from the Request-URI or the header", () => {
    const long = "7".repeat(129);
    const byUri = refusal(new SipIngressPolicy(["127.0.0.1"], undefined).check(invite(`sip:${long}@127.0.0.1`)));
    expect(byUri).toMatchObject({ status: 404, limit: "MAX_ID_LENGTH" });
    expect(byUri.detail).toContain("MAX_ID_LENGTH is 128");
    const byHeader = new SipIngressPolicy(["127.0.0.1"], "X-PSID").check(invite("sip:agent@127.0.0.1", { headers: { "x-psid": long } }));
    expect(refusal(byHeader)).toMatchObject({ status: 404, limit: "MAX_ID_LENGTH" });
    expect(new SipIngressPolicy(["127.0.0.1"], undefined).check(invite(`sip:${"7".repeat(128)}@127.0.0.1`))).toEqual({ psid: "7".repeat(128) });
  });

  it("answers 488 for an SDP offer over SDP_MAX_LINES or SDP_MAX_BYTES", () => {
    const policy = new SipIngressPolicy(["127.0.0.1"], undefined, undefined, { sdp: { maxBytes: 2000, maxLines: 20 } });
    expect(refusal(policy.check(invite("sip:123456@h", { sdp: SDP + "a=x\r\n".repeat(20) })))).toMatchObject({ status: 488, limit: "SDP_MAX_LINES" });
    expect(refusal(policy.check(invite("sip:123456@h", { sdp: `${SDP}a=${"x".repeat(2000)}\r\n` })))).toMatchObject({ status: 488, limit: "SDP_MAX_BYTES" });
    expect(policy.check(invite("sip:123456@h"))).toEqual({ psid: "123456" });
  });
});

describe("SipIngressPolicy: calls per source per second", () => {
  it("answers 480 with Retry-After past the rate, per source, and admits again as the bucket refills", () => {
    let now = 1_000_000;
    const policy = new SipIngressPolicy(["127.0.0.0/8"], undefined, undefined, { callsPerSecond: 3, now: () => now });
    const results = Array.from({ length: 5 }, () => policy.check(invite("sip:123456@h")));
    expect(results.slice(0, 3)).toEqual([{ psid: "123456" }, { psid: "123456" }, { psid: "123456" }]);
    for (const r of results.slice(3)) {
      expect(refusal(r)).toMatchObject({ status: 480, limit: "SIP_MAX_CALLS_PER_SECOND", headers: { "Retry-After": "1" } });
    }
    // Another source has its own budget.
    expect(policy.check(invite("sip:123456@h", { address: "127.0.0.2" }))).toEqual({ psid: "123456" });
    now += 340; // one token back
    expect(policy.check(invite("sip:123456@h"))).toEqual({ psid: "123456" });
    expect(refusal(policy.check(invite("sip:123456@h"))).status).toBe(480);
    now += 5_000;
    expect(Array.from({ length: 3 }, () => "psid" in policy.check(invite("sip:123456@h")))).toEqual([true, true, true]);
  });

  it("counts INVITEs before the digest check, so guessing passwords is slowed too", () => {
    let now = 0;
    const policy = new SipIngressPolicy(["127.0.0.1"], undefined, new DigestVerifier({ username: "a", password: "b", realm: "r" }), {
      callsPerSecond: 2,
      now: () => now,
    });
    expect(refusal(policy.check(invite("sip:123456@h"))).status).toBe(401);
    expect(refusal(policy.check(invite("sip:123456@h"))).status).toBe(401);
    expect(refusal(policy.check(invite("sip:123456@h"))).status).toBe(480);
    now += 1000;
    expect(refusal(policy.check(invite("sip:123456@h"))).status).toBe(401);
  });

  it("checks the allowlist first, and takes 0 as no bound", () => {
    const policy = new SipIngressPolicy(["127.0.0.1"], undefined, undefined, { callsPerSecond: 1, now: () => 0 });
    for (let i = 0; i < 3; i++) expect(refusal(policy.check(invite("sip:123456@h", { address: "10.0.0.1" }))).status).toBe(403);
    expect(policy.check(invite("sip:123456@h"))).toEqual({ psid: "123456" });
    const unbounded = new SipIngressPolicy(["127.0.0.1"], undefined, undefined, { callsPerSecond: 0, now: () => 0 });
    for (let i = 0; i < 100; i++) expect(unbounded.check(invite("sip:123456@h"))).toEqual({ psid: "123456" });
  });
});
