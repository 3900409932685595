import type { RtcpPacket } from "../../sip/rtp/rtcp-packet.js";

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
