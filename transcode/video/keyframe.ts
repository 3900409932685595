/**
 * Keyframe detection from the bitstream of one complete frame. RTP-level flags are not enough: werift's VP9
 * and AV1 payload classes only report what the sender's packetizer chose to signal, and a frame that starts
 * the decoder after a loss or an ffmpeg restart must really be decodable on its own.
 */
import { h264NalType, h265NalType, H264_NAL, H265_NAL, splitAnnexB } from "./annexb.js";
import { BitReader } from "./bit-reader.js";
import type { VideoCodec } from "./video-codec.js";

export function isKeyframe(codec: VideoCodec, frame: Uint8Array): boolean {
  switch (codec) {
    case "VP8":
      return isVp8Keyframe(frame);
    case "VP9":
      return isVp9Keyframe(frame);
    case "AV1":
      return isAv1Keyframe(frame);
    case "H264":
      return isH264Keyframe(frame);
    case "H265":
      return isH265Keyframe(frame);
  }
}

/** RFC 6386 §9.1: bit 0 of the frame tag is the inverse key frame flag (the "P bit"). */
export function isVp8Keyframe(frame: Uint8Array): boolean {
  if (frame.length < 10) return false;
  return (frame[0]! & 0x01) === 0 && frame[3] === 0x9d && frame[4] === 0x01 && frame[5] === 0x2a;
}

/** RFC 6386 §9.1: bit 4 of the frame tag; a hidden frame (alt-ref) produces no picture. */
export function isVp8ShownFrame(frame: Uint8Array): boolean {
  return frame.length > 0 && (frame[0]! & 0x10) !== 0;
}

/**
 * VP9 uncompressed header (VP9 bitstream spec §6.2): frame_marker, profile bits, show_existing_frame,
 * frame_type (0 = KEY_FRAME). In a superframe the first frame is the one that matters (the base layer or
 * the frame a hidden alt-ref precedes are both in it first), and it starts at byte 0.
 */
export function isVp9Keyframe(frame: Uint8Array): boolean {
  if (frame.length < 4) return false;
  const r = new BitReader(frame);
  if (r.bits(2) !== 2) return false;
  const profileLow = r.bit();
  const profileHigh = r.bit();
  if (profileHigh * 2 + profileLow === 3 && r.bit() !== 0) return false;
  if (r.bit() === 1) return false; // show_existing_frame
  if (r.bit() !== 0) return false; // frame_type
  r.bits(2); // show_frame, error_resilient_mode
  return r.bits(8) === 0x49 && r.bits(8) === 0x83 && r.bits(8) === 0x42;
}

export const AV1_OBU = {
  sequenceHeader: 1,
  temporalDelimiter: 2,
  frameHeader: 3,
  tileGroup: 4,
  metadata: 5,
  frame: 6,
  redundantFrameHeader: 7,
  tileList: 8,
  padding: 15,
} as const;

export interface Av1Obu {
  type: number;
  /** Offset of the OBU payload (after header and size field). */
  payloadOffset: number;
  payloadSize: number;
}

/** OBUs of a temporal unit in the low-overhead format (every OBU but possibly the last carries its size). */
export function parseAv1Obus(data: Uint8Array): Av1Obu[] {
  const obus: Av1Obu[] = [];
  let offset = 0;
  while (offset < data.length) {
    const header = data[offset]!;
    const type = (header >> 3) & 0x0f;
    const hasExtension = (header & 0x04) !== 0;
    const hasSize = (header & 0x02) !== 0;
    let p = offset + 1 + (hasExtension ? 1 : 0);
    let size: number;
    if (hasSize) {
      const leb = readLeb128(data, p);
      if (!leb) break;
      size = leb.value;
      p += leb.length;
    } else {
      size = data.length - p;
    }
    if (p + size > data.length || size < 0) break;
    obus.push({ type, payloadOffset: p, payloadSize: size });
    offset = p + size;
  }
  return obus;
}

export function readLeb128(data: Uint8Array, offset: number): { value: number; length: number } | undefined {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const byte = data[offset + i];
    if (byte === undefined) return undefined;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return { value, length: i + 1 };
  }
  return undefined;
}

/**
 * AV1 (spec §5.5, §5.9): the first frame header of the temporal unit has frame_type KEY_FRAME, or the sequence
 * uses reduced_still_picture_header (every frame is a key frame). A shown existing frame is not a keyframe.
 */
export function isAv1Keyframe(frame: Uint8Array): boolean {
  let reducedStillPicture = false;
  for (const obu of parseAv1Obus(frame)) {
    if (obu.type === AV1_OBU.sequenceHeader) {
      const r = new BitReader(frame, obu.payloadOffset);
      r.bits(3); // seq_profile
      r.bit(); // still_picture
      reducedStillPicture = r.bit() === 1;
    } else if (obu.type === AV1_OBU.frameHeader || obu.type === AV1_OBU.frame) {
      if (obu.payloadSize === 0) return false;
      if (reducedStillPicture) return true;
      const r = new BitReader(frame, obu.payloadOffset);
      if (r.bit() === 1) return false; // show_existing_frame
      return r.bits(2) === 0; // frame_type KEY_FRAME
    }
  }
  return false;
}

/** Whether the access unit carries an AV1 sequence header, without which a fresh decoder cannot start. */
export function hasAv1SequenceHeader(frame: Uint8Array): boolean {
  return parseAv1Obus(frame).some((obu) => obu.type === AV1_OBU.sequenceHeader);
}

export function isH264Keyframe(accessUnit: Uint8Array): boolean {
  return splitAnnexB(accessUnit).some((nal) => h264NalType(nal) === H264_NAL.idr);
}

/** H.265 IRAP pictures: BLA, IDR and CRA (NAL types 16–21). */
export function isH265Keyframe(accessUnit: Uint8Array): boolean {
  return splitAnnexB(accessUnit).some((nal) => {
    const type = h265NalType(nal);
    return type >= H265_NAL.irapFirst && type <= H265_NAL.irapLast;
  });
}
