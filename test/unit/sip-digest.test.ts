import { createRequire } from "node:module";
import sip from "sip";
import { describe, expect, it } from "vitest";
import { DigestAuthenticator } from "../../sip/embedded/authenticator.js";
import { authorizationHeader, digestResponse, readChallenge } from "../../sip/embedded/digest.js";
import type { SipResponse } from "../../sip/embedded/message.js";
import type { OutgoingRequest } from "../../sip/embedded/stack.js";

const require = createRequire(import.meta.url);
/** npm `sip`'s own digest module, used as an independent oracle. */
const oracle = require("sip/digest") as { calculateDigest(ctx: Record<string, string | undefined>): string; calculateHA1(ctx: Record<string, string>): string };

describe("digest response", () => {
  it("matches RFC 2617 §3.5 (MD5, qop=auth)", () => {
    expect(
      digestResponse({
        username: "Mufasa",
        password: "Circle Of Life",
        realm: "testrealm@host.com",
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method: "GET",
        uri: "/dir/index.html",
        algorithm: "MD5",
        qop: "auth",
        nc: "00000001",
        cnonce: "0a4f113b",
      }),
    ).toBe("6629fae49393a05397450978507c4ef1");
  });

  it("matches RFC 7616 §3.9.1 for SHA-256 and MD5", () => {
    const input = {
      username: "Mufasa",
      password: "Circle of Life",
      realm: "http-auth@example.org",
      nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
      method: "GET",
      uri: "/dir/index.html",
      qop: "auth" as const,
      nc: "00000001",
      cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    };
    expect(digestResponse({ ...input, algorithm: "SHA-256" })).toBe("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    expect(digestResponse({ ...input, algorithm: "MD5" })).toBe("8ca523f5e9506fed4657c9700eebdbec");
  });

  it("agrees with npm sip's digest without qop (RFC 2069 mode) and for MD5-sess", () => {
    const base = { username: "alice", password: "s3cret", realm: "pbx.test", nonce: "abc", method: "INVITE", uri: "sip:100@pbx.test" };
    const ha1 = oracle.calculateHA1({ user: "alice", realm: "pbx.test", password: "s3cret" });
    expect(digestResponse({ ...base, algorithm: "MD5", qop: undefined })).toBe(oracle.calculateDigest({ ha1, method: "INVITE", nonce: "abc", uri: "sip:100@pbx.test" }));
    const sessHa1 = oracle.calculateHA1({ user: "alice", realm: "pbx.test", password: "s3cret", algorithm: "md5-sess", nonce: "abc", cnonce: "xyz" });
    expect(digestResponse({ ...base, algorithm: "MD5-sess", qop: "auth", nc: "00000002", cnonce: "xyz" })).toBe(
      oracle.calculateDigest({ ha1: sessHa1, method: "INVITE", nonce: "abc", nc: "00000002", cnonce: "xyz", qop: "auth", uri: "sip:100@pbx.test" }),
    );
  });
});

describe("challenges and Authorization headers", () => {
  it("reads a challenge as npm sip parses it", () => {
    const parsed = sip.parse('SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm="pbx.test", nonce="n1", qop="auth,auth-int", opaque="o", algorithm=MD5\r\n\r\n');
    const header = (parsed?.headers["www-authenticate"] ?? [])[0] ?? {};
    expect(readChallenge(header)).toEqual({ realm: "pbx.test", nonce: "n1", opaque: "o", algorithm: "MD5", qop: ["auth", "auth-int"], stale: false });
  });

  it("refuses what it cannot answer", () => {
    expect(readChallenge({ scheme: "Basic", realm: '"r"' })).toBeUndefined();
    expect(readChallenge({ scheme: "Digest", realm: '"r"', nonce: '"n"', algorithm: "AKAv1-MD5" })).toBeUndefined();
    expect(readChallenge({ scheme: "Digest", realm: '"r"', nonce: '"n"', qop: '"auth-int"' })).toBeUndefined();
    expect(readChallenge({ scheme: "Digest", realm: '"r"' })).toBeUndefined();
  });

  it("writes every field a server checks", () => {
    const h = authorizationHeader({ realm: "pbx.test", nonce: "n1", opaque: "o", algorithm: "MD5", qop: ["auth"], stale: false }, { username: "alice", password: "s3cret" }, "INVITE", "sip:100@pbx.test", 1, "c0ffee");
    const expected = digestResponse({ username: "alice", password: "s3cret", realm: "pbx.test", nonce: "n1", method: "INVITE", uri: "sip:100@pbx.test", algorithm: "MD5", qop: "auth", nc: "00000001", cnonce: "c0ffee" });
    expect(h).toBe(`Digest username="alice", realm="pbx.test", nonce="n1", uri="sip:100@pbx.test", response="${expected}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee", opaque="o"`);
  });
});

describe("DigestAuthenticator", () => {
  const challenge = (status: number, nonce: string, stale = false): SipResponse => {
    const name = status === 407 ? "Proxy-Authenticate" : "WWW-Authenticate";
    return sip.parse(`SIP/2.0 ${status} X\r\n${name}: Digest realm="r", nonce="${nonce}", qop="auth"${stale ? ", stale=true" : ""}\r\n\r\n`) as SipResponse;
  };
  const rq = (): OutgoingRequest => ({ method: "INVITE", uri: "sip:a@b", headers: { from: "x", to: "y", "call-id": "c", cseq: { seq: 1, method: "INVITE" } } });

  it("answers a challenge once, not the same nonce again, but a stale or new nonce yes", () => {
    const auth = new DigestAuthenticator({ username: "u", password: "p" });
    expect(auth.accept(challenge(401, "n1"))).toBe(true);
    const first = rq();
    auth.apply(first);
    expect(first.headers.authorization).toMatch(/^Digest username="u".*nc=00000001/);
    expect(auth.accept(challenge(401, "n1"))).toBe(false); // wrong password: no loop
    expect(auth.accept(challenge(401, "n1", true))).toBe(true);
    expect(auth.accept(challenge(401, "n2"))).toBe(true);
  });

  it("puts 407 credentials in Proxy-Authorization", () => {
    const auth = new DigestAuthenticator({ username: "u", password: "p" });
    expect(auth.accept(challenge(407, "n1"))).toBe(true);
    const r = rq();
    auth.apply(r);
    expect(r.headers["proxy-authorization"]).toMatch(/^Digest /);
    expect(r.headers.authorization).toBeUndefined();
  });

  it("answers the topmost of one realm's challenges it supports (RFC 8760 §2.3)", () => {
    const auth = new DigestAuthenticator({ username: "u", password: "p" });
    const rs = sip.parse(
      "SIP/2.0 401 X\r\n" +
        'WWW-Authenticate: Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"\r\n' +
        'WWW-Authenticate: Digest realm="r", nonce="n1", algorithm=SHA-256, qop="auth"\r\n' +
        'WWW-Authenticate: Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"\r\n\r\n',
    ) as SipResponse;
    expect(auth.accept(rs)).toBe(true);
    const r = rq();
    auth.apply(r);
    const lines = String(r.headers.authorization).split("\r\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("algorithm=SHA-256");
  });

  it("without credentials never retries", () => {
    expect(new DigestAuthenticator(undefined).accept(challenge(401, "n1"))).toBe(false);
  });
});
