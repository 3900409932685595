import { RtpParseError } from "../errors.js";

/** One RTP packet (RFC 3550 §5.1). */
export interface RtpPacket {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker: boolean;
  csrcs: number[];
  /** Header extension (RFC 3550 §5.3.1), kept opaque. */
  extension: { profile: number; data: Buffer } | undefined;
  payload: Buffer;
  /** Padding octets that followed the payload (0 when none). */
  paddingLength: number;
}

export type RtpPacketInit = Pick<RtpPacket, "payloadType" | "sequenceNumber" | "timestamp" | "ssrc" | "payload"> &
  Partial<Pick<RtpPacket, "marker" | "csrcs" | "extension">>;

const HEADER = 12;

export function serializeRtp(p: RtpPacketInit): Buffer {
  const csrcs = p.csrcs ?? [];
  if (csrcs.length > 15) throw new RangeError("at most 15 CSRCs");
  if (p.payloadType < 0 || p.payloadType > 127) throw new RangeError(`payload type ${p.payloadType} out of range`);
  const ext = p.extension;
  if (ext && ext.data.length % 4 !== 0) throw new RangeError("extension data must be a multiple of 4 octets");
  const extLen = ext ? 4 + ext.data.length : 0;
  const buf = Buffer.allocUnsafe(HEADER + csrcs.length * 4 + extLen + p.payload.length);
  buf[0] = 0x80 | (ext ? 0x10 : 0) | csrcs.length;
  buf[1] = (p.marker ? 0x80 : 0) | p.payloadType;
  buf.writeUInt16BE(p.sequenceNumber & 0xffff, 2);
  buf.writeUInt32BE(p.timestamp >>> 0, 4);
  buf.writeUInt32BE(p.ssrc >>> 0, 8);
  let off = HEADER;
  for (const c of csrcs) {
    buf.writeUInt32BE(c >>> 0, off);
    off += 4;
  }
  if (ext) {
    buf.writeUInt16BE(ext.profile & 0xffff, off);
    buf.writeUInt16BE(ext.data.length / 4, off + 2);
    ext.data.copy(buf, off + 4);
    off += extLen;
  }
  p.payload.copy(buf, off);
  return buf;
}

/** Parses one RTP packet; throws RtpParseError when the bytes cannot be RTP. */
export function parseRtp(buf: Buffer): RtpPacket {
  if (buf.length < HEADER) throw new RtpParseError(`RTP packet too short (${buf.length} octets)`);
  const b0 = buf[0] as number;
  const b1 = buf[1] as number;
  if (b0 >> 6 !== 2) throw new RtpParseError(`RTP version ${b0 >> 6}`);
  const cc = b0 & 0x0f;
  let off = HEADER + cc * 4;
  if (buf.length < off) throw new RtpParseError("RTP CSRC list truncated");
  const csrcs: number[] = [];
  for (let i = 0; i < cc; i++) csrcs.push(buf.readUInt32BE(HEADER + i * 4));
  let extension: RtpPacket["extension"];
  if (b0 & 0x10) {
    if (buf.length < off + 4) throw new RtpParseError("RTP extension header truncated");
    const profile = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2) * 4;
    if (buf.length < off + 4 + len) throw new RtpParseError("RTP extension truncated");
    extension = { profile, data: buf.subarray(off + 4, off + 4 + len) };
    off += 4 + len;
  }
  let end = buf.length;
  let paddingLength = 0;
  if (b0 & 0x20) {
    paddingLength = buf[buf.length - 1] as number;
    if (paddingLength === 0 || end - paddingLength < off) throw new RtpParseError("bad RTP padding");
    end -= paddingLength;
  }
  return {
    payloadType: b1 & 0x7f,
    marker: (b1 & 0x80) !== 0,
    sequenceNumber: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
    csrcs,
    extension,
    payload: buf.subarray(off, end),
    paddingLength,
  };
}

/**
 * True for what looks like RTCP rather than RTP when both share a port (RFC 5761 §4): the second
 * octet, read as an RTCP packet type, falls in 192–223.
 */
export function looksLikeRtcp(buf: Buffer): boolean {
  if (buf.length < 2) return false;
  const pt = buf[1] as number;
  return pt >= 192 && pt <= 223;
}
