import { RtpParseError } from "../errors.js";

/** RTCP packets of RFC 3550 §6 (SR, RR, SDES, BYE); anything else is kept as raw bytes. */

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;

export interface ReportBlock {
  ssrc: number;
  /** Fraction of packets lost since the previous report, in 1/256 units (0–255). */
  fractionLost: number;
  /** Cumulative packets lost (24-bit signed: duplicates can make it negative). */
  cumulativeLost: number;
  /** Extended highest sequence number received (cycles << 16 | seq). */
  highestSequence: number;
  /** Interarrival jitter in RTP timestamp units. */
  jitter: number;
  /** Middle 32 bits of the NTP timestamp of the last SR received from this source (0 if none). */
  lastSenderReport: number;
  /** Delay since that SR, in 1/65536 s. */
  delaySinceLastSenderReport: number;
}

export interface SenderReport {
  type: "sr";
  ssrc: number;
  ntpSeconds: number;
  ntpFraction: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: ReportBlock[];
}

export interface ReceiverReport {
  type: "rr";
  ssrc: number;
  reports: ReportBlock[];
}

export interface SourceDescription {
  type: "sdes";
  chunks: { ssrc: number; cname: string | undefined }[];
}

export interface Goodbye {
  type: "bye";
  ssrcs: number[];
  reason: string | undefined;
}

export interface OtherRtcp {
  type: "other";
  packetType: number;
  /** The 5-bit count/format field (FMT for RTPFB/PSFB). */
  count: number;
  body: Buffer;
}

export type RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | OtherRtcp;

/** Serializes packets into one compound RTCP datagram. */
export function serializeRtcp(packets: RtcpPacket[]): Buffer {
  return Buffer.concat(packets.map(serializeOne));
}

function header(packetType: number, count: number, bodyLength: number): Buffer {
  if (bodyLength % 4 !== 0) throw new RangeError("RTCP body must be 32-bit aligned");
  const h = Buffer.alloc(4);
  h[0] = 0x80 | (count & 0x1f);
  h[1] = packetType;
  h.writeUInt16BE(bodyLength / 4, 2); // length in words minus one, and the header is one word
  return h;
}

function reportBlocks(blocks: ReportBlock[]): Buffer {
  if (blocks.length > 31) throw new RangeError("at most 31 report blocks");
  const b = Buffer.alloc(24 * blocks.length);
  blocks.forEach((r, i) => {
    const o = i * 24;
    b.writeUInt32BE(r.ssrc >>> 0, o);
    b[o + 4] = Math.max(0, Math.min(255, r.fractionLost));
    const lost = Math.max(-0x800000, Math.min(0x7fffff, r.cumulativeLost));
    b.writeIntBE(lost, o + 5, 3);
    b.writeUInt32BE(r.highestSequence >>> 0, o + 8);
    b.writeUInt32BE(Math.max(0, Math.round(r.jitter)) >>> 0, o + 12);
    b.writeUInt32BE(r.lastSenderReport >>> 0, o + 16);
    b.writeUInt32BE(r.delaySinceLastSenderReport >>> 0, o + 20);
  });
  return b;
}

function serializeOne(p: RtcpPacket): Buffer {
  switch (p.type) {
    case "sr": {
      const body = Buffer.alloc(24);
      body.writeUInt32BE(p.ssrc >>> 0, 0);
      body.writeUInt32BE(p.ntpSeconds >>> 0, 4);
      body.writeUInt32BE(p.ntpFraction >>> 0, 8);
      body.writeUInt32BE(p.rtpTimestamp >>> 0, 12);
      body.writeUInt32BE(p.packetCount >>> 0, 16);
      body.writeUInt32BE(p.octetCount >>> 0, 20);
      const blocks = reportBlocks(p.reports);
      return Buffer.concat([header(RTCP_SR, p.reports.length, 24 + blocks.length), body, blocks]);
    }
    case "rr": {
      const ssrc = Buffer.alloc(4);
      ssrc.writeUInt32BE(p.ssrc >>> 0, 0);
      const blocks = reportBlocks(p.reports);
      return Buffer.concat([header(RTCP_RR, p.reports.length, 4 + blocks.length), ssrc, blocks]);
    }
    case "sdes": {
      const chunks = p.chunks.map((c) => {
        const items: Buffer[] = [];
        const ssrc = Buffer.alloc(4);
        ssrc.writeUInt32BE(c.ssrc >>> 0, 0);
        items.push(ssrc);
        if (c.cname !== undefined) {
          const text = Buffer.from(c.cname, "utf8").subarray(0, 255);
          items.push(Buffer.from([1, text.length]), text);
        }
        const len = items.reduce((n, b) => n + b.length, 0);
        // At least one null octet ends the item list, then pad to a word boundary.
        const pad = 4 - (len % 4);
        items.push(Buffer.alloc(pad));
        return Buffer.concat(items);
      });
      const body = Buffer.concat(chunks);
      return Buffer.concat([header(RTCP_SDES, p.chunks.length, body.length), body]);
    }
    case "bye": {
      const parts: Buffer[] = p.ssrcs.map((s) => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(s >>> 0, 0);
        return b;
      });
      if (p.reason !== undefined) {
        const text = Buffer.from(p.reason, "utf8").subarray(0, 255);
        const len = 1 + text.length;
        parts.push(Buffer.from([text.length]), text, Buffer.alloc((4 - (len % 4)) % 4));
      }
      const body = Buffer.concat(parts);
      return Buffer.concat([header(RTCP_BYE, p.ssrcs.length, body.length), body]);
    }
    case "other":
      return Buffer.concat([header(p.packetType, p.count, p.body.length), p.body]);
  }
}

/** Parses a compound RTCP datagram; throws RtpParseError if any packet is malformed. */
export function parseRtcp(buf: Buffer): RtcpPacket[] {
  const out: RtcpPacket[] = [];
  let off = 0;
  if (buf.length < 4) throw new RtpParseError("RTCP packet too short");
  while (off < buf.length) {
    if (buf.length - off < 4) throw new RtpParseError("RTCP trailing bytes");
    const b0 = buf[off] as number;
    if (b0 >> 6 !== 2) throw new RtpParseError(`RTCP version ${b0 >> 6}`);
    const count = b0 & 0x1f;
    const packetType = buf[off + 1] as number;
    const total = (buf.readUInt16BE(off + 2) + 1) * 4;
    if (off + total > buf.length) throw new RtpParseError("RTCP length exceeds datagram");
    let end = off + total;
    if (b0 & 0x20) {
      const pad = buf[end - 1] as number;
      if (pad === 0 || pad > total - 4) throw new RtpParseError("bad RTCP padding");
      end -= pad;
    }
    const body = buf.subarray(off + 4, end);
    out.push(parseOne(packetType, count, body));
    off += total;
  }
  return out;
}

function parseBlocks(body: Buffer, at: number, count: number): ReportBlock[] {
  if (body.length < at + count * 24) throw new RtpParseError("RTCP report blocks truncated");
  const blocks: ReportBlock[] = [];
  for (let i = 0; i < count; i++) {
    const o = at + i * 24;
    blocks.push({
      ssrc: body.readUInt32BE(o),
      fractionLost: body[o + 4] as number,
      cumulativeLost: body.readIntBE(o + 5, 3),
      highestSequence: body.readUInt32BE(o + 8),
      jitter: body.readUInt32BE(o + 12),
      lastSenderReport: body.readUInt32BE(o + 16),
      delaySinceLastSenderReport: body.readUInt32BE(o + 20),
    });
  }
  return blocks;
}

function parseOne(packetType: number, count: number, body: Buffer): RtcpPacket {
  switch (packetType) {
    case RTCP_SR:
      if (body.length < 24) throw new RtpParseError("RTCP SR too short");
      return {
        type: "sr",
        ssrc: body.readUInt32BE(0),
        ntpSeconds: body.readUInt32BE(4),
        ntpFraction: body.readUInt32BE(8),
        rtpTimestamp: body.readUInt32BE(12),
        packetCount: body.readUInt32BE(16),
        octetCount: body.readUInt32BE(20),
        reports: parseBlocks(body, 24, count),
      };
    case RTCP_RR:
      if (body.length < 4) throw new RtpParseError("RTCP RR too short");
      return { type: "rr", ssrc: body.readUInt32BE(0), reports: parseBlocks(body, 4, count) };
    case RTCP_SDES: {
      const chunks: SourceDescription["chunks"] = [];
      let o = 0;
      for (let i = 0; i < count; i++) {
        if (body.length < o + 4) throw new RtpParseError("RTCP SDES truncated");
        const ssrc = body.readUInt32BE(o);
        o += 4;
        let cname: string | undefined;
        for (;;) {
          if (o >= body.length) throw new RtpParseError("RTCP SDES item list not terminated");
          const itemType = body[o] as number;
          if (itemType === 0) break;
          if (o + 2 > body.length) throw new RtpParseError("RTCP SDES item truncated");
          const len = body[o + 1] as number;
          if (o + 2 + len > body.length) throw new RtpParseError("RTCP SDES item truncated");
          if (itemType === 1) cname = body.toString("utf8", o + 2, o + 2 + len);
          o += 2 + len;
        }
        o = (o + 4) & ~3; // skip the terminating null and pad to the next word
        chunks.push({ ssrc, cname });
      }
      return { type: "sdes", chunks };
    }
    case RTCP_BYE: {
      if (body.length < count * 4) throw new RtpParseError("RTCP BYE truncated");
      const ssrcs: number[] = [];
      for (let i = 0; i < count; i++) ssrcs.push(body.readUInt32BE(i * 4));
      let reason: string | undefined;
      const at = count * 4;
      if (body.length > at) {
        const len = body[at] as number;
        if (at + 1 + len > body.length) throw new RtpParseError("RTCP BYE reason truncated");
        reason = body.toString("utf8", at + 1, at + 1 + len);
      }
      return { type: "bye", ssrcs, reason };
    }
    default:
      return { type: "other", packetType, count, body: Buffer.from(body) };
  }
}

/** Seconds between the NTP epoch (1900) and the Unix epoch (1970). */
const NTP_UNIX_OFFSET = 2_208_988_800;

/** A wall-clock time in ms as an NTP timestamp (seconds, 2^-32 fraction). */
export function toNtp(unixMs: number): { seconds: number; fraction: number } {
  const secs = Math.floor(unixMs / 1000);
  const fraction = Math.floor(((unixMs - secs * 1000) / 1000) * 2 ** 32);
  return { seconds: (secs + NTP_UNIX_OFFSET) >>> 0, fraction: fraction >>> 0 };
}

/** The middle 32 bits of an NTP timestamp, as used by LSR (RFC 3550 §6.4.1). */
export function ntpMiddle32(seconds: number, fraction: number): number {
  return (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0;
}
