/**
 * H.264 access units → RTP, RFC 6184 packetization-mode 1: a NAL unit that fits goes alone (single NAL unit
 * packet), consecutive small ones share a STAP-A (SPS + PPS, and the IDR slice too when it fits), and one larger
 * than the payload budget is cut into FU-A fragments of near-equal size. The marker is set on the last packet
 * of the access unit.
 *
 * werift's H264Packetizer aggregates parameter sets only and cuts FU-A into a full-size run plus a small
 * remainder; this one also folds small slices and SEI into the STAP-A and evens out fragment sizes, which
 * saves packets for slice-limited encoder output (x264 slice-max-size).
 */
import { RtpHeader, RtpPacket } from "werift";
import { h264NalType, H264_NAL, splitAnnexB } from "./annexb.js";

export const DEFAULT_MAX_PAYLOAD_SIZE = 1200;

/** NAL types with no meaning on an RTP link: access unit delimiters and filler data. */
export const DEFAULT_DROPPED_NAL_TYPES: readonly number[] = [H264_NAL.aud, H264_NAL.filler];

export interface H264PayloadChunk {
  payload: Buffer;
  marker: boolean;
}

export interface H264PacketizeOptions {
  /** Largest RTP payload in bytes; default 1200. */
  maxPayloadSize?: number;
  /** Fold consecutive small NAL units into STAP-A packets; default true (mode 1 only). */
  aggregate?: boolean;
  /**
   * 1 (default): single NAL / STAP-A / FU-A. 0: single NAL unit packets only, for a PBX that takes nothing
   * else; a NAL larger than the payload budget then goes out whole (the encoder's slice-max-size keeps slices
   * within it).
   */
  packetizationMode?: 0 | 1;
}

const STAP_A_HEADER = 1;
const STAP_A_SIZE_FIELD = 2;
const FU_A_HEADER = 2;

/** RTP payloads for one access unit given as NAL units (without start codes). Pure. */
export function packetizeH264Nalus(nalus: readonly Uint8Array[], options: H264PacketizeOptions = {}): H264PayloadChunk[] {
  const maxPayloadSize = options.maxPayloadSize ?? DEFAULT_MAX_PAYLOAD_SIZE;
  if (maxPayloadSize < FU_A_HEADER + 1) throw new RangeError(`maxPayloadSize ${maxPayloadSize} too small for FU-A`);
  const mode = options.packetizationMode ?? 1;
  const aggregate = mode === 1 && (options.aggregate ?? true);
  const payloads: Buffer[] = [];

  let i = 0;
  while (i < nalus.length) {
    const nal = nalus[i]!;
    if (aggregate) {
      // Greedy STAP-A: as many following NAL units as fit, at least two.
      let size = STAP_A_HEADER;
      let j = i;
      while (j < nalus.length && size + STAP_A_SIZE_FIELD + nalus[j]!.length <= maxPayloadSize) {
        size += STAP_A_SIZE_FIELD + nalus[j]!.length;
        j++;
      }
      if (j - i >= 2) {
        payloads.push(buildStapA(nalus.slice(i, j), size));
        i = j;
        continue;
      }
    }
    if (nal.length <= maxPayloadSize || mode === 0) payloads.push(Buffer.from(nal));
    else payloads.push(...fragmentFuA(nal, maxPayloadSize));
    i++;
  }
  return payloads.map((payload, index) => ({ payload, marker: index === payloads.length - 1 }));
}

function buildStapA(nalus: readonly Uint8Array[], size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let forbidden = 0;
  let nri = 0;
  let offset = STAP_A_HEADER;
  for (const nal of nalus) {
    const header = nal[0]!;
    forbidden |= header & 0x80;
    nri = Math.max(nri, header & 0x60);
    out.writeUInt16BE(nal.length, offset);
    out.set(nal, offset + STAP_A_SIZE_FIELD);
    offset += STAP_A_SIZE_FIELD + nal.length;
  }
  out[0] = forbidden | nri | H264_NAL.stapA;
  return out;
}

function fragmentFuA(nal: Uint8Array, maxPayloadSize: number): Buffer[] {
  const header = nal[0]!;
  const body = nal.subarray(1);
  const room = maxPayloadSize - FU_A_HEADER;
  const count = Math.ceil(body.length / room);
  const chunk = Math.ceil(body.length / count);
  const indicator = (header & 0xe0) | H264_NAL.fuA;
  const type = header & 0x1f;
  const out: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += chunk) {
    const part = body.subarray(offset, Math.min(body.length, offset + chunk));
    const start = offset === 0 ? 0x80 : 0;
    const end = offset + part.length >= body.length ? 0x40 : 0;
    const payload = Buffer.allocUnsafe(FU_A_HEADER + part.length);
    payload[0] = indicator;
    payload[1] = start | end | type;
    payload.set(part, FU_A_HEADER);
    out.push(payload);
  }
  return out;
}

export interface H264PacketizerOptions extends H264PacketizeOptions {
  payloadType: number;
  ssrc: number;
  /** First sequence number; random by default (RFC 3550 §5.1). */
  initialSequenceNumber?: number;
  /** NAL types left out of the RTP stream; default AUD and filler data. */
  dropNalTypes?: readonly number[];
}

/** Stateful packetizer for one outgoing H.264 RTP stream: owns the sequence numbers. */
export class H264Packetizer {
  private sequenceNumber: number;
  private readonly payloadType: number;
  private readonly ssrc: number;
  private readonly dropped: ReadonlySet<number>;
  private readonly packetizeOptions: H264PacketizeOptions;

  constructor(options: H264PacketizerOptions) {
    this.payloadType = options.payloadType;
    this.ssrc = options.ssrc >>> 0;
    this.sequenceNumber = (options.initialSequenceNumber ?? Math.floor(Math.random() * 0x10000)) & 0xffff;
    this.dropped = new Set(options.dropNalTypes ?? DEFAULT_DROPPED_NAL_TYPES);
    this.packetizeOptions = {
      maxPayloadSize: options.maxPayloadSize,
      aggregate: options.aggregate,
      packetizationMode: options.packetizationMode,
    };
  }

  /** The sequence number the next packet will carry. */
  get nextSequenceNumber(): number {
    return this.sequenceNumber;
  }

  /** RTP packets for one Annex-B access unit; `timestamp` is the 90 kHz RTP timestamp of the picture. */
  packetize(accessUnit: Uint8Array, timestamp: number): RtpPacket[] {
    const nalus = splitAnnexB(accessUnit).filter((nal) => !this.dropped.has(h264NalType(nal)));
    return packetizeH264Nalus(nalus, this.packetizeOptions).map(
      ({ payload, marker }) =>
        new RtpPacket(
          new RtpHeader({
            payloadType: this.payloadType,
            sequenceNumber: this.nextSequence(),
            timestamp: timestamp >>> 0,
            ssrc: this.ssrc,
            marker,
          }),
          payload,
        ),
    );
  }

  private nextSequence(): number {
    const seq = this.sequenceNumber;
    this.sequenceNumber = (seq + 1) & 0xffff;
    return seq;
  }
}
