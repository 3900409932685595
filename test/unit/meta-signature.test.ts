import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { verifyChallenge, verifySignature } from "../../gateway/meta/signature.js";

const SECRET = "app-secret-123";

function sign(body: Buffer, secret = SECRET): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

describe("verifySignature", () => {
  const body = Buffer.from('{"object":"page","entry":[]}');

  it("accepts a valid signature", () => {
    expect(verifySignature(body, sign(body), SECRET)).toEqual({ ok: true });
  });

  it("accepts upper-case hex and surrounding whitespace", () => {
    const header = `sha256=${createHmac("sha256", SECRET).update(body).digest("hex").toUpperCase()}`;
    expect(verifySignature(body, ` ${header} `, SECRET)).toEqual({ ok: true });
  });

  it("rejects a signature made with another secret", () => {
    expect(verifySignature(body, sign(body, "other-secret"), SECRET)).toEqual({ ok: false, reason: "mismatch" });
  });

  it("rejects a signature over different bytes", () => {
    const tampered = Buffer.from('{"object":"page","entry":[{}]}');
    expect(verifySignature(tampered, sign(body), SECRET)).toEqual({ ok: false, reason: "mismatch" });
  });

  it("reports a missing header", () => {
    expect(verifySignature(body, undefined, SECRET)).toEqual({ ok: false, reason: "missing" });
    expect(verifySignature(body, "", SECRET)).toEqual({ ok: false, reason: "missing" });
    expect(verifySignature(body, "   ", SECRET)).toEqual({ ok: false, reason: "missing" });
  });

  it("reports malformed headers", () => {
    const hex = createHmac("sha256", SECRET).update(body).digest("hex");
    for (const header of [hex, `sha1=${hex}`, "sha256=", `sha256=${hex.slice(0, -1)}`, `sha256=${hex.slice(0, -2)}zz`, `SHA256=${hex}`]) {
      expect(verifySignature(body, header, SECRET), header).toEqual({ ok: false, reason: "malformed" });
    }
  });

  it("rejects well-formed hex of a different length without throwing", () => {
    const hex = createHmac("sha256", SECRET).update(body).digest("hex");
    expect(verifySignature(body, `sha256=${hex.slice(0, 62)}`, SECRET)).toEqual({ ok: false, reason: "mismatch" });
    expect(verifySignature(body, `sha256=${hex}00`, SECRET)).toEqual({ ok: false, reason: "mismatch" });
  });

  it("hashes the raw bytes of a body with escaped unicode, not a re-serialisation", () => {
    // Meta sends äöå as the six-character escapes \u00e4 etc. and signs those bytes.
    const raw = Buffer.from('{"object":"page","entry":[{"id":"1","name":"\\u00e4\\u00f6\\u00e5"}]}', "utf8");
    expect(raw.includes("\\u00e4")).toBe(true);
    const header = sign(raw);
    expect(verifySignature(raw, header, SECRET)).toEqual({ ok: true });

    const reserialised = Buffer.from(JSON.stringify(JSON.parse(raw.toString("utf8"))), "utf8");
    expect(reserialised.equals(raw)).toBe(false);
    expect(verifySignature(reserialised, header, SECRET)).toEqual({ ok: false, reason: "mismatch" });
  });

  it("refuses an empty app secret", () => {
    expect(() => verifySignature(body, sign(body), "")).toThrow(RangeError);
  });
});

describe("verifyChallenge", () => {
  const TOKEN = "verify-me";

  it("returns the challenge for subscribe with the right token", () => {
    const q = new URLSearchParams({ "hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444" });
    expect(verifyChallenge(q, TOKEN)).toEqual({ ok: true, challenge: "1158201444" });
  });

  it("refuses a wrong token, including one of a different length", () => {
    for (const token of ["verify-mE", "verify", "verify-me-please", ""]) {
      const q = new URLSearchParams({ "hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "abc" });
      expect(verifyChallenge(q, TOKEN), token).toEqual({ ok: false });
    }
  });

  it("refuses another mode, a missing token or a missing challenge", () => {
    expect(verifyChallenge(new URLSearchParams({ "hub.mode": "unsubscribe", "hub.verify_token": TOKEN, "hub.challenge": "x" }), TOKEN)).toEqual({ ok: false });
    expect(verifyChallenge(new URLSearchParams({ "hub.mode": "subscribe", "hub.challenge": "x" }), TOKEN)).toEqual({ ok: false });
    expect(verifyChallenge(new URLSearchParams({ "hub.mode": "subscribe", "hub.verify_token": TOKEN }), TOKEN)).toEqual({ ok: false });
    expect(verifyChallenge(new URLSearchParams({ "hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "" }), TOKEN)).toEqual({ ok: false });
  });

  it("parses a raw query string", () => {
    const q = new URLSearchParams("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=CHALLENGE_ACCEPTED");
    expect(verifyChallenge(q, TOKEN)).toEqual({ ok: true, challenge: "CHALLENGE_ACCEPTED" });
  });
});
