import { describe, expect, it } from "vitest";
import { RtpParseError } from "../../sip/errors.js";
import { looksLikeRtcp, parseRtp, serializeRtp } from "../../sip/rtp/rtp-packet.js";

describe("RTP packets", () => {
  it("serializes the RFC 3550 fixed header exactly", () => {
    const bytes = serializeRtp({ payloadType: 0, sequenceNumber: 0x1234, timestamp: 0xdeadbeef, ssrc: 0x01020304, marker: true, payload: Buffer.from([0xaa, 0xbb]) });
    expect(bytes.toString("hex")).toBe("80801234deadbeef01020304aabb");
  });

  it("round-trips CSRCs, header extension, marker and large values", () => {
    const p = {
      payloadType: 101,
      sequenceNumber: 65535,
      timestamp: 4294967295,
      ssrc: 4000000000,
      marker: false,
      csrcs: [1, 2],
      extension: { profile: 0xbede, data: Buffer.from([1, 2, 3, 4]) },
      payload: Buffer.from("hello"),
    };
    const back = parseRtp(serializeRtp(p));
    expect(back).toMatchObject({ payloadType: 101, sequenceNumber: 65535, timestamp: 4294967295, ssrc: 4000000000, marker: false, csrcs: [1, 2], paddingLength: 0 });
    expect(back.extension?.profile).toBe(0xbede);
    expect(back.extension?.data).toEqual(Buffer.from([1, 2, 3, 4]));
    expect(back.payload.toString()).toBe("hello");
  });

  it("wraps the sequence number and timestamp into their field widths", () => {
    const back = parseRtp(serializeRtp({ payloadType: 8, sequenceNumber: 65536 + 5, timestamp: 2 ** 32 + 7, ssrc: 1, payload: Buffer.alloc(0) }));
    expect(back.sequenceNumber).toBe(5);
    expect(back.timestamp).toBe(7);
  });

  it("strips padding", () => {
    const raw = Buffer.concat([Buffer.from("a0000001000000640000002a", "hex"), Buffer.from("xyz"), Buffer.from([0, 0, 3])]);
    const p = parseRtp(raw);
    expect(p.payload.toString()).toBe("xyz");
    expect(p.paddingLength).toBe(3);
  });

  it.each([
    ["too short", Buffer.alloc(11)],
    ["wrong version", Buffer.from("400000010000006400000001", "hex")],
    ["truncated CSRC list", Buffer.from("830000010000006400000001", "hex")],
    ["truncated extension", Buffer.from("9000000100000064000000010001", "hex")],
    ["padding longer than packet", Buffer.from("a0000001000000640000000100ff", "hex")],
  ])("rejects %s with RtpParseError", (_name, bytes) => {
    expect(() => parseRtp(bytes)).toThrow(RtpParseError);
  });

  it("tells RTCP from RTP by the packet type octet", () => {
    expect(looksLikeRtcp(Buffer.from("80c8", "hex"))).toBe(true);
    expect(looksLikeRtcp(Buffer.from("8000", "hex"))).toBe(false);
    expect(looksLikeRtcp(Buffer.from("80e5", "hex"))).toBe(false);
  });
});
