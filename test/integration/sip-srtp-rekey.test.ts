import dgram from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { SdesNegotiator } from "../../gateway/call/pbx-srtp.js";
import { PortAllocator } from "../../sip/rtp/port-allocator.js";
import { parseRtcp } from "../../sip/rtp/rtcp-packet.js";
import { RtpEndpoint } from "../../sip/rtp/rtp-endpoint.js";
import { parseRtp, serializeRtp } from "../../sip/rtp/rtp-packet.js";
import { readRemoteMedia } from "../../sip/sdp.js";
import { newMasterKey, parseCryptoAttribute } from "../../sip/srtp/sdes.js";
import { SrtpTransform } from "../../sip/srtp/srtp-transform.js";

/**
 * Our SRTP endpoint against a PBX-side peer on real UDP sockets, its crypto on werift's SRTP
 * sessions with the keys each side wrote in SDP: media and SRTCP both ways, then a re-INVITE
 * re-keying the stream, after which only the new key is accepted.
 */
const base = 15000 + 2 * Math.floor(Math.random() * 2000);
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function offer(port: number, key: { key: Buffer; salt: Buffer }): string {
  return [
    "v=0", "o=pbx 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    `m=audio ${port} RTP/SAVP 0`, `a=crypto:7 AES_CM_128_HMAC_SHA1_80 ${`inline:${Buffer.concat([key.key, key.salt]).toString("base64")}`}`, "",
  ].join("\r\n");
}

describe("SRTP toward the PBX on real sockets", () => {
  it("carries SRTP and SRTCP both ways and follows a re-key", async () => {
    const ours = await RtpEndpoint.open({ allocator: new PortAllocator({ address: "127.0.0.1", minPort: base, maxPort: base + 9 }), rtcpIntervalMs: 100 });
    closers.push(() => ours.close());
    const pbxRtp = dgram.createSocket("udp4");
    const pbxRtcp = dgram.createSocket("udp4");
    await new Promise<void>((r) => pbxRtp.bind(base + 20, "127.0.0.1", () => r()));
    await new Promise<void>((r) => pbxRtcp.bind(base + 21, "127.0.0.1", () => r()));
    closers.push(async () => {
      pbxRtp.close();
      pbxRtcp.close();
    });

    // The PBX offers its key; we answer with ours (what PbxMedia does with a re-INVITE's offer).
    const negotiator = new SdesNegotiator("require");
    const pbxKey1 = newMasterKey("AES_CM_128_HMAC_SHA1_80");
    const remote1 = readRemoteMedia(offer(base + 20, pbxKey1));
    ours.setSrtp(negotiator.accept(remote1.audio.security));
    ours.setRemote({ address: "127.0.0.1", port: base + 20 });
    const answered = negotiator.answer(remote1.audio.security);
    expect(answered.protocol).toBe("RTP/SAVP");
    const ourKey = parseCryptoAttribute(answered.crypto[0]!);
    expect(ourKey.tag).toBe(7);
    const ourMaster = { key: ourKey.keys[0]!.key, salt: ourKey.keys[0]!.salt };
    let pbx = new SrtpTransform({ suite: "AES_CM_128_HMAC_SHA1_80", local: pbxKey1, remote: ourMaster });

    const heardByUs: number[] = [];
    ours.on("rtp", (p) => heardByUs.push(p.payload[0]!));
    const heardByPbx: Buffer[] = [];
    pbxRtp.on("message", (m) => heardByPbx.push(m));
    const rtcpAtPbx: Buffer[] = [];
    pbxRtcp.on("message", (m) => rtcpAtPbx.push(m));

    let seq = 100;
    const pbxSends = (marker: number, via: SrtpTransform): void => {
      const plain = serializeRtp({ payloadType: 0, sequenceNumber: seq++, timestamp: seq * 160, ssrc: 0x1234, marker: false, payload: Buffer.alloc(160, marker) });
      pbxRtp.send(via.protectRtp(plain), ours.localRtpPort, "127.0.0.1");
    };
    for (let i = 0; i < 10; i++) pbxSends(1, pbx);
    for (let i = 0; i < 10; i++) ours.send({ payloadType: 0, payload: Buffer.alloc(160, 0x55), timestamp: i * 160 });
    await sleep(300);
    expect(heardByUs.filter((b) => b === 1)).toHaveLength(10);
    // On the wire our packets are not plain RTP: the PBX's key opens them, and the payload was hidden.
    expect(heardByPbx.length).toBe(10);
    for (const wire of heardByPbx) {
      expect(wire.subarray(12, 172).equals(Buffer.alloc(160, 0x55))).toBe(false);
      expect(parseRtp(pbx.unprotectRtp(wire)).payload.equals(Buffer.alloc(160, 0x55))).toBe(true);
    }
    // Our reports arrive as SRTCP the PBX's session authenticates and decrypts.
    await sleep(200);
    expect(rtcpAtPbx.length).toBeGreaterThan(0);
    const reports = rtcpAtPbx.flatMap((m) => parseRtcp(pbx.unprotectRtcp(m)));
    expect(reports.some((r) => r.type === "sr" && r.ssrc === ours.ssrc)).toBe(true);

    // A re-INVITE with a new PBX key: the old one stops working, the new one works.
    const pbxKey2 = newMasterKey("AES_CM_128_HMAC_SHA1_80");
    const remote2 = readRemoteMedia(offer(base + 20, pbxKey2));
    const rekeyed = negotiator.accept(remote2.audio.security);
    ours.setSrtp(rekeyed);
    expect(parseCryptoAttribute(negotiator.answer(remote2.audio.security).crypto[0]!).keys[0]!.key.equals(ourMaster.key)).toBe(true);
    const malformedBefore = ours.stats().malformed;
    for (let i = 0; i < 5; i++) pbxSends(2, pbx); // still the old key
    pbx = new SrtpTransform({ suite: "AES_CM_128_HMAC_SHA1_80", local: pbxKey2, remote: ourMaster });
    for (let i = 0; i < 5; i++) pbxSends(3, pbx);
    await sleep(300);
    expect(heardByUs.filter((b) => b === 2)).toHaveLength(0);
    expect(heardByUs.filter((b) => b === 3)).toHaveLength(5);
    expect(ours.stats().malformed - malformedBefore).toBe(5);
    // Plain RTP from the PBX is refused as well once the stream is SRTP.
    pbxRtp.send(serializeRtp({ payloadType: 0, sequenceNumber: seq++, timestamp: 0, ssrc: 0x1234, marker: false, payload: Buffer.alloc(160, 4) }), ours.localRtpPort, "127.0.0.1");
    await sleep(100);
    expect(heardByUs.filter((b) => b === 4)).toHaveLength(0);
  });
});
