import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { serializeLikeMeta, signBody } from "../../sim/signing.js";

describe("signBody", () => {
  it("matches the RFC 4231 HMAC-SHA256 test vector (case 2)", () => {
    expect(signBody("what do ya want for nothing?", "Jefe")).toBe(
      "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });

  it("signs the exact bytes, lowercase hex, and offers the legacy sha1 form", () => {
    const body = Buffer.from('{"a":"\\u00e4"}', "utf8");
    const sig = signBody(body, "secret");
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(sig).toBe(`sha256=${createHmac("sha256", "secret").update(body).digest("hex")}`);
    expect(signBody(body, "secret", "sha1")).toMatch(/^sha1=[0-9a-f]{40}$/);
    expect(signBody('{"a":"ä"}', "secret")).not.toBe(sig);
  });
});

describe("serializeLikeMeta", () => {
  it("escapes non-ASCII as lowercase \\uXXXX, as Meta's docs show for äöå", () => {
    expect(serializeLikeMeta({ name: "äöå" })).toBe('{"name":"\\u00e4\\u00f6\\u00e5"}');
  });

  it("writes astral characters as surrogate pairs and keeps ASCII untouched", () => {
    expect(serializeLikeMeta({ s: "hi 😀 €", n: 1 })).toBe('{"s":"hi \\ud83d\\ude00 \\u20ac","n":1}');
  });

  it("round-trips through JSON.parse while differing from plain JSON.stringify", () => {
    const value = { object: "page", entry: [{ id: "1", time: 1700000000000, calls: [{ from: "Zoë" }] }] };
    const body = serializeLikeMeta(value);
    expect(JSON.parse(body)).toEqual(value);
    expect(body).not.toBe(JSON.stringify(value));
    expect(/[^\x00-\x7f]/.test(body)).toBe(false);
  });

  it("escapes slashes only when asked", () => {
    expect(serializeLikeMeta({ p: "UDP/TLS" })).toBe('{"p":"UDP/TLS"}');
    expect(serializeLikeMeta({ p: "UDP/TLS" }, { escapeSlashes: true })).toBe('{"p":"UDP\\/TLS"}');
    expect(JSON.parse(serializeLikeMeta({ p: "a\\/b" }, { escapeSlashes: true }))).toEqual({ p: "a\\/b" });
  });
});
