import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { SipArgumentError } from "../../sip/errors.js";
import { checkExtraHeaders, checkSipUri, DigestAnswers, headerValues, joinHeaderLines, readParty, tlsContactFor } from "../../sip/drachtio/message.js";
import { parseDigestParams } from "../../sip/digest-verifier.js";

const challengeResponse = (headers: string[], status = 401): { status: number; raw: string } => ({
  status,
  raw: [`SIP/2.0 ${status} Unauthorized`, "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", ...headers, "Content-Length: 0", "", ""].join("\r\n"),
});

describe("drachtio backend: message helpers", () => {
  it("reads every line of a repeated header, continuation lines joined, the body ignored", () => {
    const raw = "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"a\",\r\n nonce=\"1\"\r\nwww-authenticate: Digest realm=\"b\", nonce=\"2\"\r\nContent-Length: 22\r\n\r\nWWW-Authenticate: body";
    expect(headerValues(raw, "WWW-Authenticate")).toEqual(['Digest realm="a", nonce="1"', 'Digest realm="b", nonce="2"']);
  });

  it("writes several values of one header as separate lines", () => {
    expect(joinHeaderLines("WWW-Authenticate", ["a", "b"])).toBe("a\r\nWWW-Authenticate: b");
    expect(joinHeaderLines("X", "one")).toBe("one");
  });

  it("reads parties with quoted, token and no display names", () => {
    expect(readParty('"Agent \\"Åsa\\"" <sip:agent42@10.0.0.1:5060>;tag=x')).toEqual({ uri: "sip:agent42@10.0.0.1:5060", user: "agent42", displayName: 'Agent "Åsa"' });
    expect(readParty("Bob <sip:bob@pbx>;tag=1")).toEqual({ uri: "sip:bob@pbx", user: "bob", displayName: "Bob" });
    expect(readParty("sip:pbx.example.com;tag=1")).toEqual({ uri: "sip:pbx.example.com", user: undefined, displayName: undefined });
  });

  it("refuses what drachtio-server would put on the wire wrongly", () => {
    expect(checkSipUri("sips:agent@pbx;transport=tls")).toEqual({ user: "agent", hostport: "pbx" });
    expect(() => checkSipUri("tel:+15550100")).toThrow(SipArgumentError);
    expect(() => checkSipUri("sip:agent@pbx\r\nX: y")).toThrow(SipArgumentError);
    expect(checkSipUri("sip:100@10.0.0.5;transport=tcp")).toEqual({ user: "100", hostport: "10.0.0.5" });
    expect(() => checkExtraHeaders({ "Call-ID": "x" })).toThrow(/set by the stack/);
    expect(() => checkExtraHeaders({ "X-A": "a\r\nVia: b" })).toThrow(SipArgumentError);
    expect(checkExtraHeaders({ "X-Meta-PSID": "123" })).toEqual({ "X-Meta-PSID": "123" });
  });
});

describe("drachtio backend: our Contact over TLS", () => {
  it("is a sip: URI with transport=tls on the listener a sip: request arrived on over TLS, else drachtio-server's own", () => {
    expect(tlsContactFor({ protocol: "tls", uri: "sip:100@10.0.0.5:5061;transport=tls", receivedOn: "10.0.0.5:5061" })).toBe("<sip:10.0.0.5:5061;transport=tls>");
    expect(tlsContactFor({ protocol: "TLS", uri: "sip:100@gw", receivedOn: "[2001:db8::1]:5061" })).toBe("<sip:[2001:db8::1]:5061;transport=tls>");
    expect(tlsContactFor({ protocol: "tls", uri: "sips:100@gw", receivedOn: "10.0.0.5:5061" })).toBeUndefined();
    expect(tlsContactFor({ protocol: "udp", uri: "sip:100@gw", receivedOn: "10.0.0.5:5060" })).toBeUndefined();
    expect(tlsContactFor({ protocol: "tls", uri: "sip:100@gw", receivedOn: "x>;y:1" })).toBeUndefined();
    expect(tlsContactFor({ protocol: "tls", uri: "sip:100@gw" })).toBeUndefined();
  });
});

describe("drachtio backend: digest answers", () => {
  const creds = { username: "alice", password: "s3cret" };

  it("answers the topmost challenge of a realm it supports (SHA-256 before MD5, RFC 8760)", () => {
    const answers = new DigestAnswers(creds);
    const rs = challengeResponse([
      'WWW-Authenticate: Digest realm="pbx.test", nonce="n1", algorithm=SHA-256, qop="auth"',
      'WWW-Authenticate: Digest realm="pbx.test", nonce="n1", algorithm=MD5, qop="auth"',
    ]);
    const auth = answers.answer(rs, "INVITE", "sip:agent@pbx.test")!;
    expect(auth.header).toBe("Authorization");
    const p = parseDigestParams(auth.value)!;
    expect(p.algorithm).toBe("SHA-256");
    const sha = (s: string): string => createHash("sha256").update(s).digest("hex");
    const expected = sha(`${sha("alice:pbx.test:s3cret")}:n1:${p.nc}:${p.cnonce}:auth:${sha("INVITE:sip:agent@pbx.test")}`);
    expect(p.response).toBe(expected);
  });

  it("answers a proxy's 407 with Proxy-Authorization, and each realm once", () => {
    const answers = new DigestAnswers(creds);
    const rs = challengeResponse(['Proxy-Authenticate: Digest realm="edge", nonce="p1", qop="auth"', 'Proxy-Authenticate: Digest realm="core", nonce="p2"'], 407);
    const auth = answers.answer(rs, "INVITE", "sip:agent@pbx.test")!;
    expect(auth.header).toBe("Proxy-Authorization");
    expect(auth.value.split("\r\nProxy-Authorization: ")).toHaveLength(2);
  });

  it("does not answer the same nonce twice (a wrong password), but does a stale one", () => {
    const answers = new DigestAnswers(creds);
    const rs = challengeResponse(['WWW-Authenticate: Digest realm="pbx.test", nonce="n1", qop="auth"']);
    expect(answers.answer(rs, "INVITE", "sip:a@pbx.test")).toBeDefined();
    expect(answers.answer(rs, "INVITE", "sip:a@pbx.test")).toBeUndefined();
    const stale = challengeResponse(['WWW-Authenticate: Digest realm="pbx.test", nonce="n1", qop="auth", stale=true']);
    expect(answers.answer(stale, "INVITE", "sip:a@pbx.test")).toBeDefined();
  });

  it("has nothing to answer without credentials or with only unknown schemes", () => {
    expect(new DigestAnswers(undefined).answer(challengeResponse(['WWW-Authenticate: Digest realm="r", nonce="n"']), "INVITE", "sip:a@b")).toBeUndefined();
    expect(new DigestAnswers(creds).answer(challengeResponse(['WWW-Authenticate: Basic realm="r"']), "INVITE", "sip:a@b")).toBeUndefined();
  });
});
