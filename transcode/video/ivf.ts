/**
 * IVF framing for ffmpeg's stdin: a 32-byte file header, then a 12-byte header (size, 64-bit pts) per frame.
 * The time base is written as 1/90000 so pts can carry RTP timestamps directly; the frame size fields stay 0
 * because ffmpeg takes the real size from the first decoded frame.
 */

export const IVF_FILE_HEADER_SIZE = 32;
export const IVF_FRAME_HEADER_SIZE = 12;

export function ivfFileHeader(fourcc: string, timeBaseDen = 90_000): Buffer {
  if (fourcc.length !== 4) throw new RangeError(`IVF fourcc must be 4 characters, got "${fourcc}"`);
  const header = Buffer.alloc(IVF_FILE_HEADER_SIZE);
  header.write("DKIF", 0, "ascii");
  header.writeUInt16LE(0, 4); // version
  header.writeUInt16LE(IVF_FILE_HEADER_SIZE, 6);
  header.write(fourcc, 8, "ascii");
  header.writeUInt16LE(0, 12); // width: taken from the bitstream
  header.writeUInt16LE(0, 14); // height
  header.writeUInt32LE(timeBaseDen, 16);
  header.writeUInt32LE(1, 20);
  header.writeUInt32LE(0, 24); // frame count: unknown, live
  return header;
}

export function ivfFrameHeader(frameSize: number, pts: number): Buffer {
  const header = Buffer.allocUnsafe(IVF_FRAME_HEADER_SIZE);
  header.writeUInt32LE(frameSize, 0);
  header.writeBigUInt64LE(BigInt(pts), 4);
  return header;
}
