import { describe, expect, it } from "vitest";
import { RtpPacket, SrtpSession } from "werift";
import { SdesNegotiator, type SrtpMode } from "../../gateway/call/pbx-srtp.js";
import { ConfigError, loadConfig } from "../../gateway/config/config.js";
import { SdpNegotiationError } from "../../sip/errors.js";
import { buildAnswer, buildOffer, readRemoteMedia } from "../../sip/sdp.js";
import { formatCryptoAttribute, isUsableCrypto, newMasterKey, parseCryptoAttribute, redactSdp, SdesParseError } from "../../sip/srtp/sdes.js";
import { SrtpError, SrtpTransform } from "../../sip/srtp/srtp-transform.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");

describe("SDES a=crypto (RFC 4568)", () => {
  it("reads the §9.1 offer's lines, lifetime and MKI", () => {
    const c = parseCryptoAttribute("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4");
    expect(c.tag).toBe(1);
    expect(c.suite).toBe("AES_CM_128_HMAC_SHA1_80");
    expect(c.keys).toHaveLength(1);
    const k = c.keys[0]!;
    expect(Buffer.concat([k.key, k.salt]).toString("base64")).toBe("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR");
    expect(k.key).toHaveLength(16);
    expect(k.salt).toHaveLength(14);
    expect(k.lifetime).toBe("2^20");
    expect(k.mki).toEqual({ value: 1, length: 4 });
    // We never send an MKI, so a line that needs one cannot be matched.
    expect(isUsableCrypto(c)).toBe(false);
  });

  it("reads two keys and a session parameter (§9.1's second line)", () => {
    const c = parseCryptoAttribute(
      "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32;inline:QUJjZGVmZ2hpSktMbW9QcXJzVHV2d3h5ekFCQ0RF|2^20|2:32 FEC_ORDER=FEC_SRTP",
    );
    expect(c.tag).toBe(2);
    expect(c.keys.map((k) => k.mki?.value)).toEqual([1, 2]);
    expect(c.sessionParams).toEqual(["FEC_ORDER=FEC_SRTP"]);
    expect(isUsableCrypto(c)).toBe(false);
  });

  it("takes a plain single-key line and round-trips what we write", () => {
    const { key, salt } = newMasterKey("AES_CM_128_HMAC_SHA1_32");
    const text = formatCryptoAttribute({ tag: 7, suite: "AES_CM_128_HMAC_SHA1_32", key, salt });
    const c = parseCryptoAttribute(text);
    expect(isUsableCrypto(c)).toBe(true);
    expect(c.tag).toBe(7);
    expect(c.keys[0]!.key.equals(key)).toBe(true);
    expect(c.keys[0]!.salt.equals(salt)).toBe(true);
    const gcm = newMasterKey("AEAD_AES_128_GCM");
    expect(gcm.salt).toHaveLength(12);
    expect(parseCryptoAttribute(formatCryptoAttribute({ tag: 1, suite: "AEAD_AES_128_GCM", ...gcm })).keys[0]!.salt.equals(gcm.salt)).toBe(true);
  });

  it("keys come from a CSPRNG: two are never equal", () => {
    expect(newMasterKey("AES_CM_128_HMAC_SHA1_80").key.equals(newMasterKey("AES_CM_128_HMAC_SHA1_80").key)).toBe(false);
  });

  it("keeps unknown suites readable but unusable, and refuses malformed lines", () => {
    const c = parseCryptoAttribute("3 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm");
    expect(isUsableCrypto(c)).toBe(false);
    expect(() => parseCryptoAttribute("x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")).toThrow(SdesParseError);
    expect(() => parseCryptoAttribute("1 AES_CM_128_HMAC_SHA1_80")).toThrow(SdesParseError);
    expect(() => parseCryptoAttribute("1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=")).toThrow(/30/);
    expect(() => parseCryptoAttribute("1 AES_CM_128_HMAC_SHA1_80 key:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")).toThrow(SdesParseError);
  });

  it("redacts key material from SDP", () => {
    const sdp = "v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32;inline:QUJjZGVmZ2hpSktMbW9QcXJzVHV2d3h5ekFCQ0RF|2^20|2:32\r\n";
    const out = redactSdp(sdp);
    expect(out).not.toContain("PS1uQCVe");
    expect(out).not.toContain("NzB4d1BI");
    expect(out).not.toContain("QUJjZGVm");
    expect(out).toContain("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>|2^20|1:4");
    expect(out).toContain("m=audio 4000 RTP/SAVP 0");
  });
});

describe("SRTP crypto (RFC 3711)", () => {
  it("derives the B.3 session keys", () => {
    const ctx = sessionContext(hex("E1F97A0D3E018BE0D64FA32C06DE4139"), hex("0EC675AD498AFEEBB6960B3AABE6"));
    expect(ctx.srtpSessionKey.toString("hex")).toBe("c61e7a93744f39ee10734afe3ff7a087");
    expect(ctx.srtpSessionSalt.toString("hex")).toBe("30cbbc08863d8c85d49db34a9ae1");
    expect(ctx.srtpSessionAuthTag.toString("hex")).toBe("cebe321f6ff7716b6fd4ab49af256a156d38baa4");
  });

  it("produces the B.2 AES-CM keystream", () => {
    // B.2's IV is the session salt with a zero index and SSRC: a zero payload at SSRC 0, sequence
    // 0, rollover 0 comes out as the keystream itself.
    const ctx = sessionContext(Buffer.alloc(16), Buffer.alloc(14));
    const Cipher = ctx.cipher.constructor as new (...args: Buffer[]) => typeof ctx.cipher;
    const key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
    const salt = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD");
    const auth = Buffer.alloc(20);
    const cipher = new Cipher(key, salt, key, salt, auth, auth);
    const plain = Buffer.alloc(12 + 48);
    plain[0] = 0x80;
    const rtp = RtpPacket.deSerialize(plain);
    const out = cipher.encryptRtp(rtp.header, rtp.payload, 0);
    expect(out.subarray(12, 12 + 48).toString("hex")).toBe(
      "e03ead0935c95e80e166b16dd92b4eb4" + "d23513162b02d0f72a43a2fe4a5f97ab" + "41e95b3bb0a2e8dd477901e4fca894c0",
    );
  });

  it("matches libsrtp's AES_CM_128_HMAC_SHA1_80 reference packet", () => {
    const keys = { key: hex("E1F97A0D3E018BE0D64FA32C06DE4139"), salt: hex("0EC675AD498AFEEBB6960B3AABE6") };
    const tx = new SrtpTransform({ suite: "AES_CM_128_HMAC_SHA1_80", local: keys, remote: keys });
    const plain = Buffer.concat([hex("800f1234decafbadcafebabe"), Buffer.alloc(16, 0xab)]);
    const protectedPacket = tx.protectRtp(plain);
    expect(protectedPacket.toString("hex")).toBe("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb");
    const rx = new SrtpTransform({ suite: "AES_CM_128_HMAC_SHA1_80", local: keys, remote: keys });
    expect(rx.unprotectRtp(protectedPacket).equals(plain)).toBe(true);
  });

  it("AES_CM_128_HMAC_SHA1_32 is the same packet with the tag cut to its first 4 bytes (RFC 4568 §6.2.1)", () => {
    const keys = { key: hex("E1F97A0D3E018BE0D64FA32C06DE4139"), salt: hex("0EC675AD498AFEEBB6960B3AABE6") };
    const tx = new SrtpTransform({ suite: "AES_CM_128_HMAC_SHA1_32", local: keys, remote: keys });
    const plain = Buffer.concat([hex("800f1234decafbadcafebabe"), Buffer.alloc(16, 0xab)]);
    const wire = tx.protectRtp(plain);
    expect(wire.toString("hex")).toBe("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc");
    const rx = new SrtpTransform({ suite: "AES_CM_128_HMAC_SHA1_32", local: keys, remote: keys });
    expect(rx.unprotectRtp(wire).equals(plain)).toBe(true);
    const forged = Buffer.from(wire);
    forged[forged.length - 1]! ^= 0x01;
    expect(() => new SrtpTransform({ suite: "AES_CM_128_HMAC_SHA1_32", local: keys, remote: keys }).unprotectRtp(forged)).toThrow(SrtpError);
  });

  for (const suite of ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"] as const) {
    it(`${suite}: both directions round-trip, tampering is refused, SRTCP too`, () => {
      const a = newMasterKey(suite);
      const b = newMasterKey(suite);
      const alice = new SrtpTransform({ suite, local: a, remote: b });
      const bob = new SrtpTransform({ suite, local: b, remote: a });
      const tagLength = suite === "AES_CM_128_HMAC_SHA1_32" ? 4 : suite === "AEAD_AES_128_GCM" ? 16 : 10;
      for (let seq = 65530; seq < 65540; seq++) {
        const plain = Buffer.concat([Buffer.from([0x80, 0x00, (seq >> 8) & 0xff, seq & 0xff, 0, 0, 0, seq & 0xff, 1, 2, 3, 4]), Buffer.alloc(160, seq & 0xff)]);
        const wire = alice.protectRtp(plain);
        expect(wire.length).toBe(plain.length + tagLength);
        expect(wire.subarray(12, 172).equals(plain.subarray(12))).toBe(false);
        expect(bob.unprotectRtp(wire).equals(plain)).toBe(true);
      }
      const wire = alice.protectRtp(Buffer.concat([hex("80000001000000000a0b0c0d"), Buffer.alloc(20, 7)]));
      const tampered = Buffer.from(wire);
      tampered[20]! ^= 1;
      expect(() => bob.unprotectRtp(tampered)).toThrow(SrtpError);
      // Bob's key does not open Bob's own packets to Alice.
      expect(() => alice.unprotectRtp(alice.protectRtp(Buffer.concat([hex("80000002000000000a0b0c0d"), Buffer.alloc(20, 7)])))).toThrow(SrtpError);

      const rr = hex("81c90007" + "0a0b0c0d" + "01020304" + "00000000" + "00000000" + "00000000" + "00000000" + "00000000");
      const srtcp = bob.protectRtcp(rr);
      expect(srtcp.subarray(8, rr.length).equals(rr.subarray(8))).toBe(false);
      expect(alice.unprotectRtcp(srtcp).equals(rr)).toBe(true);
      const bad = Buffer.from(srtcp);
      bad[10]! ^= 1;
      expect(() => alice.unprotectRtcp(bad)).toThrow(SrtpError);
    });
  }
});

/** werift's SRTP context (key derivation and cipher) for a master key, as its sessions build it. */
function sessionContext(key: Buffer, salt: Buffer): SrtpSession["localContext"] {
  return new SrtpSession({ keys: { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt }, profile: 1 }).localContext;
}

describe("SDES in the PBX-side SDP", () => {
  const pbx = (protocol: string, crypto: string[]): string =>
    ["v=0", "o=- 1 1 IN IP4 10.0.0.5", "s=-", "c=IN IP4 10.0.0.5", "t=0 0", `m=audio 18000 ${protocol} 0 101`, "a=rtpmap:101 telephone-event/8000", ...crypto.map((c) => `a=crypto:${c}`), ""].join("\r\n");
  const KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

  it("reads RTP/SAVP with its crypto lines, skipping an unreadable one", () => {
    const m = readRemoteMedia(pbx("RTP/SAVP", ["1 AES_CM_128_HMAC_SHA1_80 inline:short", `2 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`]));
    expect(m.audio.security.secureProfile).toBe(true);
    expect(m.audio.security.crypto.map((c) => c.tag)).toEqual([2]);
  });

  it("offer mode: RTP/AVP with both suites; require: RTP/SAVP; off: none", () => {
    const sdp = (mode: SrtpMode) => buildOffer({ mediaAddress: "127.0.0.1", audioPort: 4000, audioSecurity: new SdesNegotiator(mode).offer() });
    expect(sdp("offer")).toMatch(/m=audio 4000 RTP\/AVP /);
    expect(sdp("offer")).toMatch(/a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/]{40}\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:/);
    expect(sdp("require")).toMatch(/m=audio 4000 RTP\/SAVP /);
    expect(sdp("off")).not.toContain("a=crypto");
    expect(sdp("off")).toMatch(/RTP\/AVP/);
  });

  it("answers the PBX's first usable line with its tag and suite and our own key, in its transport", () => {
    const n = new SdesNegotiator("offer");
    const offer = pbx("RTP/SAVP", [`1 F8_128_HMAC_SHA1_80 inline:${KEY}`, `5 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`, `6 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`]);
    const remote = readRemoteMedia(offer);
    const t = n.accept(remote.audio.security);
    expect(t?.suite).toBe("AES_CM_128_HMAC_SHA1_32");
    const answer = buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 4000, audioSecurity: n.answer(remote.audio.security) });
    expect(answer).toMatch(/m=audio 4000 RTP\/SAVP 0 101/);
    const lines = answer.split("\r\n").filter((l) => l.startsWith("a=crypto:"));
    expect(lines).toHaveLength(1);
    const ours = parseCryptoAttribute(lines[0]!.slice("a=crypto:".length));
    expect(ours.tag).toBe(5);
    expect(ours.suite).toBe("AES_CM_128_HMAC_SHA1_32");
    expect(Buffer.concat([ours.keys[0]!.key, ours.keys[0]!.salt]).toString("base64")).not.toBe(KEY);
    // The same keys again keep the running transform; new keys (a re-INVITE re-keying) replace it.
    expect(n.accept(readRemoteMedia(offer).audio.security)).toBe(t);
    const rekeyed = n.accept(readRemoteMedia(pbx("RTP/SAVP", [`5 AES_CM_128_HMAC_SHA1_32 inline:${newKey()}`])).audio.security);
    expect(rekeyed).toBeDefined();
    expect(rekeyed).not.toBe(t);
  });

  it("follows a plain answer in offer mode, refuses it in require mode, refuses SAVP when off", () => {
    const plain = readRemoteMedia(pbx("RTP/AVP", [])).audio.security;
    expect(new SdesNegotiator("offer").accept(plain)).toBeUndefined();
    expect(() => new SdesNegotiator("require").accept(plain)).toThrow(SdpNegotiationError);
    expect(() => new SdesNegotiator("off").accept(readRemoteMedia(pbx("RTP/SAVP", [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`])).audio.security)).toThrow(/SIP_SRTP is off/);
    // RTP/SAVP with only lines we cannot run is refused whatever the mode.
    expect(() => new SdesNegotiator("offer").accept(readRemoteMedia(pbx("RTP/SAVP", [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20|1:4`])).audio.security)).toThrow(SdpNegotiationError);
    // GCM is taken when the PBX offers it.
    const gcm = newMasterKey("AEAD_AES_128_GCM");
    expect(new SdesNegotiator("require").accept(readRemoteMedia(pbx("RTP/SAVP", [formatCryptoAttribute({ tag: 1, suite: "AEAD_AES_128_GCM", ...gcm })])).audio.security)?.suite).toBe("AEAD_AES_128_GCM");
  });
});

function newKey(): string {
  const k = newMasterKey("AES_CM_128_HMAC_SHA1_32");
  return Buffer.concat([k.key, k.salt]).toString("base64");
}

describe("SIP_SRTP", () => {
  const base = { META_APP_SECRET: "s3cret", META_VERIFY_TOKEN: "verify-me", META_PAGE_ID: "1234567890", META_PAGE_ACCESS_TOKEN: "EAAtoken" };
  it("defaults to offer, takes off/offer/require, and names itself when wrong", () => {
    expect(loadConfig(base).sip.srtp).toBe("offer");
    for (const mode of ["off", "offer", "require"] as const) expect(loadConfig({ ...base, SIP_SRTP: mode }).sip.srtp).toBe(mode);
    expect(() => loadConfig({ ...base, SIP_SRTP: "mandatory" })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, SIP_SRTP: "mandatory" })).toThrow(/SIP_SRTP/);
  });
});
