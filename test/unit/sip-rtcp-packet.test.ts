import { describe, expect, it } from "vitest";
import { RtpParseError } from "../../sip/errors.js";
import { ntpMiddle32, parseRtcp, serializeRtcp, toNtp, type RtcpPacket } from "../../sip/rtp/rtcp-packet.js";

const block = { ssrc: 0xabcdef01, fractionLost: 25, cumulativeLost: 10, highestSequence: 0x1_0005, jitter: 33, lastSenderReport: 0x12345678, delaySinceLastSenderReport: 65536 };

describe("RTCP packets", () => {
  it("writes an SR with the RFC 3550 layout (length in words minus one)", () => {
    const bytes = serializeRtcp([
      { type: "sr", ssrc: 1, ntpSeconds: 2, ntpFraction: 3, rtpTimestamp: 4, packetCount: 5, octetCount: 6, reports: [block] },
    ]);
    expect(bytes.length).toBe(52);
    expect(bytes[0]).toBe(0x81); // V=2, RC=1
    expect(bytes[1]).toBe(200);
    expect(bytes.readUInt16BE(2)).toBe(12);
    expect(bytes.subarray(4, 28).toString("hex")).toBe("000000010000000200000003000000040000000500000006");
    expect(bytes.subarray(28, 36).toString("hex")).toBe("abcdef011900000a"); // ssrc, fraction 25, lost 10
  });

  it("round-trips a compound SR + RR + SDES + BYE", () => {
    const packets: RtcpPacket[] = [
      { type: "sr", ssrc: 1, ntpSeconds: 3_900_000_000, ntpFraction: 2 ** 31, rtpTimestamp: 160, packetCount: 50, octetCount: 8000, reports: [] },
      { type: "rr", ssrc: 2, reports: [block, { ...block, ssrc: 7, cumulativeLost: -3 }] },
      { type: "sdes", chunks: [{ ssrc: 2, cname: "gw-1234@example" }, { ssrc: 3, cname: "abcd" }] },
      { type: "bye", ssrcs: [2], reason: "stopped" },
    ];
    const bytes = serializeRtcp(packets);
    expect(bytes.length % 4).toBe(0);
    expect(parseRtcp(bytes)).toEqual(packets);
  });

  it("keeps feedback and other packet types as raw bodies", () => {
    const pli = Buffer.from("81ce000200000001aabbccdd", "hex"); // PSFB FMT=1 (PLI)
    expect(parseRtcp(pli)).toEqual([{ type: "other", packetType: 206, count: 1, body: Buffer.from("00000001aabbccdd", "hex") }]);
    expect(serializeRtcp(parseRtcp(pli))).toEqual(pli);
  });

  it.each([
    ["too short", "8000"],
    ["wrong version", "41c90001000000010000"],
    ["length beyond datagram", "80c9000500000001"],
    ["report block truncated", "81c9000100000001"],
    ["SDES not terminated", "81ca00010000000101"],
  ])("rejects %s with RtpParseError", (_name, hex) => {
    expect(() => parseRtcp(Buffer.from(hex, "hex"))).toThrow(RtpParseError);
  });

  it("converts wall-clock time to NTP and its middle 32 bits", () => {
    const ntp = toNtp(Date.UTC(2024, 0, 1) + 500);
    expect(ntp.seconds).toBe(Date.UTC(2024, 0, 1) / 1000 + 2_208_988_800);
    expect(ntp.fraction).toBe(2 ** 31);
    expect(ntpMiddle32(0x1234abcd, 0x56789abc)).toBe(0xabcd5678);
  });
});
