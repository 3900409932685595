/**
 * VP8 RTP payload descriptor (RFC 7741 §4.2). Parsed here rather than with werift's Vp8RtpPayload, which skips
 * the TID/KEYIDX octet only when L or K is set (so a descriptor with T=1 alone, or L=1 alone, is misread).
 */
import { PayloadFormatError } from "./errors.js";

export interface Vp8Descriptor {
  /** S: first packet of a partition. */
  start: boolean;
  /** PID: partition index. */
  partitionId: number;
  pictureId: number | undefined;
  /** Offset of the VP8 payload in the RTP payload. */
  headerSize: number;
}

/** A VP8 descriptor that runs past its packet. */
export class Vp8DescriptorError extends PayloadFormatError {
  override readonly name: string = "Vp8DescriptorError";
}

export function parseVp8Descriptor(payload: Uint8Array): Vp8Descriptor {
  const first = payload[0];
  if (first === undefined) throw new Vp8DescriptorError("empty VP8 payload");
  let offset = 1;
  let pictureId: number | undefined;
  if (first & 0x80) {
    const x = payload[offset++];
    if (x === undefined) throw new Vp8DescriptorError("VP8 descriptor truncated (X)");
    if (x & 0x80) {
      const m = payload[offset];
      if (m === undefined) throw new Vp8DescriptorError("VP8 descriptor truncated (I)");
      if (m & 0x80) {
        pictureId = ((m & 0x7f) << 8) | (payload[offset + 1] ?? 0);
        offset += 2;
      } else {
        pictureId = m & 0x7f;
        offset += 1;
      }
    }
    if (x & 0x40) offset += 1; // TL0PICIDX
    if (x & 0x30) offset += 1; // TID/Y/KEYIDX
  }
  if (offset > payload.length) throw new Vp8DescriptorError("VP8 descriptor longer than payload");
  return { start: (first & 0x10) !== 0, partitionId: first & 0x07, pictureId, headerSize: offset };
}
