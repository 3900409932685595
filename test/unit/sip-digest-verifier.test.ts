import { describe, expect, it } from "vitest";
import { SipIngressPolicy } from "../../gateway/call/sip-ingress.js";
import { DigestVerifier, parseDigestParams } from "../../sip/digest-verifier.js";
import { authorizationHeader, readChallenge } from "../../sip/embedded/digest.js";

const CREDS = { username: "agent7", password: "s3cret, \"quoted\"", realm: "gw.example" };
const URI = "sip:1234567890123456@127.0.0.1:5080";

/** A phone answering the challenge with our own UAC code (itself checked against RFC 2617's example). */
function answer(challenge: string, creds: { username: string; password: string }, uri = URI, method = "INVITE"): string {
  const params = parseDigestParams(challenge)!;
  const parsed = readChallenge({ scheme: "Digest", ...params })!;
  expect(parsed).toBeDefined();
  return authorizationHeader(parsed, creds, method, uri);
}

describe("DigestVerifier", () => {
  it("challenges with SHA-256 then MD5 (RFC 8760), qop=auth and one nonce it alone can mint", () => {
    const v = new DigestVerifier(CREDS);
    const [sha, md5, extra] = v.challenges().map((c) => parseDigestParams(c)!);
    expect(extra).toBeUndefined();
    expect(sha).toMatchObject({ realm: "gw.example", algorithm: "SHA-256", qop: "auth" });
    expect(md5).toMatchObject({ realm: "gw.example", algorithm: "MD5", qop: "auth" });
    expect(sha!.nonce).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{27}$/);
    expect(md5!.nonce).toBe(sha!.nonce);
    expect(sha!.stale).toBeUndefined();
    expect(v.challenges(true).map((c) => parseDigestParams(c)!.stale)).toEqual(["true", "true"]);
  });

  it("verifies an answer to either challenge", () => {
    const v = new DigestVerifier(CREDS);
    for (const challenge of v.challenges()) {
      const auth = answer(challenge, CREDS);
      expect(v.verify(auth, "INVITE", URI)).toEqual({ ok: true, username: "agent7" });
    }
    expect(answer(v.challenges()[0]!, CREDS)).toContain("algorithm=SHA-256");
    expect(answer(v.challenges()[1]!, CREDS)).toContain("algorithm=MD5");
  });

  it("offers and accepts only the configured algorithms, in the configured order", () => {
    const md5First = new DigestVerifier(CREDS, { algorithms: ["MD5", "SHA-256"] });
    expect(md5First.challenges().map((c) => parseDigestParams(c)!.algorithm)).toEqual(["MD5", "SHA-256"]);
    const shaOnly = new DigestVerifier(CREDS, { algorithms: ["SHA-256"] });
    expect(shaOnly.challenges()).toHaveLength(1);
    const md5Answer = answer(shaOnly.challenge(false, "MD5"), CREDS);
    expect(shaOnly.verify(md5Answer, "INVITE", URI)).toMatchObject({ ok: false, reason: "algorithm MD5 not offered" });
    expect(shaOnly.verify(answer(shaOnly.challenges()[0]!, CREDS), "INVITE", URI)).toMatchObject({ ok: true });
    expect(() => new DigestVerifier(CREDS, { algorithms: [] })).toThrow(RangeError);
  });

  it("accepts the right user and password, and refuses anything else with a reason", () => {
    const v = new DigestVerifier(CREDS);
    expect(v.verify(answer(v.challenge(), CREDS), "INVITE", URI)).toEqual({ ok: true, username: "agent7" });
    expect(v.verify(undefined, "INVITE", URI)).toEqual({ ok: false, stale: false, reason: "no credentials" });
    expect(v.verify('Basic YWdlbnQ3OnM=', "INVITE", URI)).toMatchObject({ ok: false, reason: "not Digest credentials" });
    expect(v.verify(answer(v.challenge(), { ...CREDS, password: "guess" }), "INVITE", URI)).toMatchObject({ ok: false, stale: false, reason: 'wrong credentials for user "agent7"' });
    expect(v.verify(answer(v.challenge(), { ...CREDS, username: "agent8" }), "INVITE", URI)).toMatchObject({ ok: false, stale: false });
    // Credentials for another request: another method, another URI.
    expect(v.verify(answer(v.challenge(), CREDS, URI, "REGISTER"), "INVITE", URI)).toMatchObject({ ok: false });
    expect(v.verify(answer(v.challenge(), CREDS, "sip:999999@127.0.0.1"), "INVITE", URI)).toMatchObject({ ok: false, reason: expect.stringContaining("not the Request-URI") });
    // SIPp and some phones declare only host and port as the digest uri.
    expect(v.verify(answer(v.challenge(), CREDS, "sip:127.0.0.1:5080"), "INVITE", URI)).toMatchObject({ ok: true });
  });

  it("refuses nonces it did not issue: tampered, or minted by another process", () => {
    const v = new DigestVerifier(CREDS);
    const other = new DigestVerifier(CREDS);
    expect(v.verify(answer(other.challenge(), CREDS), "INVITE", URI)).toMatchObject({ ok: false, reason: "nonce not issued here" });
    const nonce = parseDigestParams(v.challenge())!.nonce!;
    const forged = `Digest realm="gw.example", nonce="${"zz" + nonce.slice(2)}", algorithm=MD5, qop="auth"`;
    expect(v.verify(answer(forged, CREDS), "INVITE", URI)).toMatchObject({ ok: false, reason: "nonce not issued here" });
    expect(v.verify(answer(v.challenge(), CREDS).replace(/realm="gw.example"/, 'realm="elsewhere"'), "INVITE", URI)).toMatchObject({
      ok: false,
      reason: 'realm "elsewhere" is not ours',
    });
  });

  it("answers an expired nonce with stale=true only when the credentials were right", () => {
    let now = 1_000_000;
    const v = new DigestVerifier(CREDS, { nonceTtlMs: 60_000, now: () => now });
    const good = answer(v.challenge(), CREDS);
    const bad = answer(v.challenge(), { ...CREDS, password: "guess" });
    now += 60_001;
    expect(v.verify(good, "INVITE", URI)).toEqual({ ok: false, stale: true, reason: "nonce expired" });
    expect(v.verify(bad, "INVITE", URI)).toMatchObject({ ok: false, stale: false });
    expect(v.verify(answer(v.challenge(true), CREDS), "INVITE", URI)).toMatchObject({ ok: true });
  });

  it("takes SHA-256 answers too (RFC 8760)", () => {
    const v = new DigestVerifier(CREDS);
    const sha = v.challenge(false, "MD5").replace("algorithm=MD5", "algorithm=SHA-256");
    const auth = answer(sha, CREDS);
    expect(auth).toContain("algorithm=SHA-256");
    expect(v.verify(auth, "INVITE", URI)).toMatchObject({ ok: true });
  });

  it("parses quoted values holding commas and escaped quotes, and rejects garbage", () => {
    expect(parseDigestParams('Digest username="a,b \\"c\\"", nc=00000001 , qop=auth')).toEqual({ username: 'a,b "c"', nc: "00000001", qop: "auth" });
    expect(parseDigestParams("Digest username=\"open")).toBeUndefined();
    expect(parseDigestParams("Bearer x")).toBeUndefined();
  });
});

describe("SipIngressPolicy with agent credentials", () => {
  const invite = (address: string, authorization?: string) => ({
    source: { address },
    requestUri: URI,
    header: (name: string) => (name.toLowerCase() === "authorization" ? authorization : undefined),
  });

  it("refuses sources outside the allowlist with 403 before asking for credentials", () => {
    const policy = new SipIngressPolicy(["127.0.0.1"], undefined, new DigestVerifier(CREDS));
    expect(policy.check(invite("10.0.0.9"))).toMatchObject({ status: 403 });
  });

  it("challenges an allowed source without credentials, refuses wrong ones, and admits right ones", () => {
    const verifier = new DigestVerifier(CREDS);
    const policy = new SipIngressPolicy(["127.0.0.1"], undefined, verifier);
    const first = policy.check(invite("127.0.0.1"));
    expect(first).toMatchObject({ status: 401, challenge: true });
    const challenges = "status" in first ? first.headers!["WWW-Authenticate"]! : [];
    expect(Array.isArray(challenges)).toBe(true);
    expect(challenges).toHaveLength(2);
    const challenge = challenges[0]!;
    expect(challenge).toMatch(/^Digest realm="gw.example", nonce=".*", algorithm=SHA-256/);
    const wrong = policy.check(invite("127.0.0.1", answer(challenge, { ...CREDS, password: "guess" })));
    expect(wrong).toMatchObject({ status: 401, challenge: false, detail: expect.stringContaining("wrong credentials") });
    expect(policy.check(invite("127.0.0.1", answer(challenge, CREDS)))).toEqual({ psid: "1234567890123456" });
  });
});
