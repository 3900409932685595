import type { OtherRtcp, RtcpPacket } from "../../sip/rtp/rtcp-packet.js";

/** What a SIP video phone asks of the video we send it, read from its RTCP. */
export type PbxVideoFeedback = { kind: "keyframe" } | { kind: "bitrate"; bps: number };

const RTPFB = 205;
const PSFB = 206;
const FMT_PLI = 1;
const FMT_FIR = 4;
const FMT_TMMBR = 3;
const FMT_AFB = 15;

/**
 * PLI and FIR ask for a keyframe; TMMBR (RFC 5104) and REMB cap the bitrate. Bodies start after
 * the 4-byte RTCP header: sender SSRC, media SSRC, then the feedback control information.
 */
export function readPbxVideoFeedback(packets: readonly RtcpPacket[]): PbxVideoFeedback[] {
  const out: PbxVideoFeedback[] = [];
  for (const p of packets) {
    if (p.type !== "other") continue;
    if (p.packetType === PSFB && (p.count === FMT_PLI || p.count === FMT_FIR)) out.push({ kind: "keyframe" });
    else if (p.packetType === RTPFB && p.count === FMT_TMMBR && p.body.length >= 16) {
      // FCI: SSRC (32) | MxTBR exp (6) | mantissa (17) | overhead (9)
      const word = p.body.readUInt32BE(12);
      const exp = word >>> 26;
      const mantissa = (word >>> 9) & 0x1ffff;
      out.push({ kind: "bitrate", bps: mantissa * 2 ** exp });
    } else if (p.packetType === PSFB && p.count === FMT_AFB && p.body.length >= 16 && p.body.toString("ascii", 8, 12) === "REMB") {
      // "REMB" | num SSRC (8) | exp (6) | mantissa (18)
      const word = p.body.readUInt32BE(12);
      const exp = (word >>> 18) & 0x3f;
      const mantissa = word & 0x3ffff;
      out.push({ kind: "bitrate", bps: mantissa * 2 ** exp });
    }
  }
  return out;
}

/** RFC 4585 §6.3.1 PLI: sender SSRC, media SSRC, no FCI. */
export function pliPacket(senderSsrc: number, mediaSsrc: number): OtherRtcp {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(senderSsrc >>> 0, 0);
  body.writeUInt32BE(mediaSsrc >>> 0, 4);
  return { type: "other", packetType: PSFB, count: FMT_PLI, body };
}

/** RFC 5104 §4.3.1 FIR: media SSRC field 0, FCI = the target SSRC and a command sequence number. */
export function firPacket(senderSsrc: number, mediaSsrc: number, sequence: number): OtherRtcp {
  const body = Buffer.alloc(16);
  body.writeUInt32BE(senderSsrc >>> 0, 0);
  body.writeUInt32BE(mediaSsrc >>> 0, 8);
  body[12] = sequence & 0xff;
  return { type: "other", packetType: PSFB, count: FMT_FIR, body };
}

/** Mantissa and exponent of a bitrate as TMMBR (17-bit mantissa) and REMB (18-bit) carry it. */
function mantissaExp(bps: number, mantissaBits: number): { mantissa: number; exp: number } {
  let mantissa = Math.max(0, Math.floor(bps));
  let exp = 0;
  while (mantissa >= 2 ** mantissaBits) {
    mantissa = Math.floor(mantissa / 2);
    exp++;
  }
  return { mantissa, exp };
}

/**
 * RFC 5104 §4.2.1 TMMBR: media SSRC field 0, FCI = the SSRC whose sending is limited and
 * MxTBR (exp 6 bits, mantissa 17 bits) with the measured per-packet overhead (9 bits).
 */
export function tmmbrPacket(senderSsrc: number, mediaSsrc: number, bps: number, overheadBytes = 40): OtherRtcp {
  const body = Buffer.alloc(16);
  body.writeUInt32BE(senderSsrc >>> 0, 0);
  body.writeUInt32BE(mediaSsrc >>> 0, 8);
  const { mantissa, exp } = mantissaExp(bps, 17);
  body.writeUInt32BE(((exp << 26) | (mantissa << 9) | (overheadBytes & 0x1ff)) >>> 0, 12);
  return { type: "other", packetType: RTPFB, count: FMT_TMMBR, body };
}

/** draft-alvestrand-rmcat-remb: "REMB", SSRC count, exp (6), mantissa (18), then the SSRCs. */
export function rembPacket(senderSsrc: number, mediaSsrcs: readonly number[], bps: number): OtherRtcp {
  const body = Buffer.alloc(16 + 4 * mediaSsrcs.length);
  body.writeUInt32BE(senderSsrc >>> 0, 0);
  body.write("REMB", 8, "ascii");
  const { mantissa, exp } = mantissaExp(bps, 18);
  body.writeUInt32BE(((mediaSsrcs.length << 24) | (exp << 18) | mantissa) >>> 0, 12);
  mediaSsrcs.forEach((ssrc, i) => body.writeUInt32BE(ssrc >>> 0, 16 + 4 * i));
  return { type: "other", packetType: PSFB, count: FMT_AFB, body };
}
