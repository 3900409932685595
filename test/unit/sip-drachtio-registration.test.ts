import { describe, expect, it } from "vitest";
import { parseDigestParams } from "../../sip/digest-verifier.js";
import { StandingDigest } from "../../sip/drachtio/message.js";
import { grantedExpiresS } from "../../sip/drachtio/registration.js";

const response = (status: number, headers: string[]): { status: number; raw: string } => ({
  status,
  raw: [`SIP/2.0 ${status} X`, "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", ...headers, "Content-Length: 0", "", ""].join("\r\n"),
});

describe("drachtio registration: what a 2xx granted", () => {
  it("reads our Contact's expires among several bindings, else the Expires header", () => {
    const raw = response(200, ['Contact: <sip:other@10.0.0.9:5060>;expires=900, "GW, one" <sip:gw@127.0.0.1:5080;transport=udp>;expires=60', "Expires: 3600"]).raw;
    expect(grantedExpiresS(raw, "gw")).toBe(60);
    expect(grantedExpiresS(response(200, ["m: <sip:gw@127.0.0.1:5080>;expires=45"]).raw, "gw")).toBe(45);
    expect(grantedExpiresS(response(200, ["Contact: <sip:other@10.0.0.9>;expires=900", "Expires: 300"]).raw, "gw")).toBe(300);
  });

  it("says nothing for no, zero or malformed values", () => {
    expect(grantedExpiresS(response(200, []).raw, "gw")).toBeUndefined();
    expect(grantedExpiresS(response(200, ["Contact: <sip:gw@h>;expires=0", "Expires: soon"]).raw, "gw")).toBeUndefined();
    expect(grantedExpiresS(response(200, [`Contact: <sip:gw@h>;expires=${"9".repeat(40)}`]).raw, "gw")).toBeUndefined();
  });
});

describe("drachtio registration: standing digest", () => {
  const creds = { username: "alice", password: "s3cret" };
  const challenge = response(401, ['WWW-Authenticate: Digest realm="pbx.test", nonce="n1", qop="auth"']);

  it("answers the registrar's nonce again on each REGISTER with the nonce count going up", () => {
    const digest = new StandingDigest(creds);
    expect(digest.headers("REGISTER", "sip:pbx.test")).toEqual({});
    expect(digest.accept(challenge)).toBe(true);
    const first = parseDigestParams(digest.headers("REGISTER", "sip:pbx.test").Authorization!)!;
    const second = parseDigestParams(digest.headers("REGISTER", "sip:pbx.test").Authorization!)!;
    expect([first.nonce, first.nc, second.nc]).toEqual(["n1", "00000001", "00000002"]);
  });

  it("takes a refused nonce only when stale, and a proxy's challenge beside the registrar's", () => {
    const digest = new StandingDigest(creds);
    digest.accept(challenge);
    digest.headers("REGISTER", "sip:pbx.test");
    expect(digest.accept(challenge)).toBe(false);
    expect(digest.accept(response(401, ['WWW-Authenticate: Digest realm="pbx.test", nonce="n1", qop="auth", stale=true']))).toBe(true);
    expect(digest.accept(response(407, ['Proxy-Authenticate: Digest realm="edge", nonce="p1"']))).toBe(true);
    expect(Object.keys(digest.headers("REGISTER", "sip:pbx.test")).sort()).toEqual(["Authorization", "Proxy-Authorization"]);
  });

  it("has nothing to answer without credentials", () => {
    expect(new StandingDigest(undefined).accept(challenge)).toBe(false);
  });
});
