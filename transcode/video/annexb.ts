/** Annex-B byte streams (H.264 / H.265): start-code framing and NAL unit headers. */

export const START_CODE: Uint8Array = Uint8Array.of(0, 0, 0, 1);

/** H.264 access unit delimiter, primary_pic_type 7 (any slice type). */
export const H264_AUD: Uint8Array = Uint8Array.of(0, 0, 0, 1, 0x09, 0xf0);
/** H.265 access unit delimiter (NAL type 35, layer 0, tid 1), pic_type 2 (any slice type). */
export const H265_AUD: Uint8Array = Uint8Array.of(0, 0, 0, 1, 0x46, 0x01, 0x50);

export const H264_NAL = {
  slice: 1,
  idr: 5,
  sei: 6,
  sps: 7,
  pps: 8,
  aud: 9,
  endOfSequence: 10,
  endOfStream: 11,
  filler: 12,
  stapA: 24,
  fuA: 28,
} as const;

export const H265_NAL = {
  irapFirst: 16,
  irapLast: 21,
  vps: 32,
  sps: 33,
  pps: 34,
  aud: 35,
  prefixSei: 39,
  ap: 48,
  fu: 49,
} as const;

export function h264NalType(nal: Uint8Array): number {
  return (nal[0] ?? 0) & 0x1f;
}

export function h265NalType(nal: Uint8Array): number {
  return ((nal[0] ?? 0) >> 1) & 0x3f;
}

/**
 * NAL units of an Annex-B buffer, without their start codes (3- or 4-byte). Trailing zero bytes before a
 * start code belong to the next start code, not to the NAL. Bytes before the first start code are ignored.
 */
export function splitAnnexB(data: Uint8Array): Uint8Array[] {
  const nalus: Uint8Array[] = [];
  let nalStart = -1;
  let i = 0;
  const n = data.length;
  while (i + 2 < n) {
    // Step over bytes that cannot be part of 00 00 01 quickly.
    if (data[i + 2]! > 1) {
      i += 3;
      continue;
    }
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (nalStart >= 0) nalus.push(trimTrailingZeros(data, nalStart, i));
      i += 3;
      nalStart = i;
      continue;
    }
    i++;
  }
  if (nalStart >= 0 && nalStart < n) nalus.push(trimTrailingZeros(data, nalStart, n));
  return nalus.filter((nal) => nal.length > 0);
}

function trimTrailingZeros(data: Uint8Array, start: number, end: number): Uint8Array {
  let e = end;
  while (e > start && data[e - 1] === 0) e--;
  return data.subarray(start, e);
}

/** One Annex-B buffer with a 4-byte start code before every NAL unit. */
export function joinAnnexB(nalus: readonly Uint8Array[]): Buffer {
  let size = 0;
  for (const nal of nalus) size += START_CODE.length + nal.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const nal of nalus) {
    out.set(START_CODE, offset);
    offset += START_CODE.length;
    out.set(nal, offset);
    offset += nal.length;
  }
  return out;
}
