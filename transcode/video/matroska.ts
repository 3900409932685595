/**
 * A minimal live Matroska stream for ffmpeg's stdin, used for Annex-B codecs: raw Annex-B on a pipe carries no
 * timestamps (ffmpeg invents them from a frame rate), while a Matroska block keeps each access unit's pts, so
 * the odd-pts keyframe side channel and exact output matching work as with IVF. Segment of unknown size, one
 * cluster per frame with a single SimpleBlock. No CodecPrivate: ffmpeg's H.264/H.265 decoders read the in-band
 * parameter sets from the Annex-B data.
 */

/** Block timestamps are in microseconds (TimestampScale 1000 ns). */
export const MATROSKA_TICKS_PER_SECOND = 1_000_000;

const UNKNOWN_SIZE = Buffer.from("01ffffffffffffff", "hex");

function idBytes(id: number): Buffer {
  const hex = id.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex");
}

/** EBML element with an 8-byte size field (always valid, simpler than the shortest encoding). */
function element(id: number, ...children: Buffer[]): Buffer {
  const data = Buffer.concat(children);
  const size = Buffer.allocUnsafe(8);
  size.writeBigUInt64BE(BigInt(data.length) | 0x0100000000000000n);
  return Buffer.concat([idBytes(id), size, data]);
}

function uintElement(id: number, value: number): Buffer {
  const data = Buffer.allocUnsafe(8);
  data.writeBigUInt64BE(BigInt(value));
  return element(id, data);
}

function stringElement(id: number, value: string): Buffer {
  return element(id, Buffer.from(value, "ascii"));
}

const ID = {
  ebml: 0x1a45dfa3,
  ebmlVersion: 0x4286,
  ebmlReadVersion: 0x42f7,
  ebmlMaxIdLength: 0x42f2,
  ebmlMaxSizeLength: 0x42f3,
  docType: 0x4282,
  docTypeVersion: 0x4287,
  docTypeReadVersion: 0x4285,
  segment: 0x18538067,
  info: 0x1549a966,
  timestampScale: 0x2ad7b1,
  tracks: 0x1654ae6b,
  trackEntry: 0xae,
  trackNumber: 0xd7,
  trackUid: 0x73c5,
  trackType: 0x83,
  codecId: 0x86,
  cluster: 0x1f43b675,
  timestamp: 0xe7,
  simpleBlock: 0xa3,
} as const;

export function matroskaHeader(codecId: "V_MPEG4/ISO/AVC" | "V_MPEGH/ISO/HEVC"): Buffer {
  const ebml = element(
    ID.ebml,
    uintElement(ID.ebmlVersion, 1),
    uintElement(ID.ebmlReadVersion, 1),
    uintElement(ID.ebmlMaxIdLength, 4),
    uintElement(ID.ebmlMaxSizeLength, 8),
    stringElement(ID.docType, "matroska"),
    uintElement(ID.docTypeVersion, 4),
    uintElement(ID.docTypeReadVersion, 2),
  );
  const info = element(ID.info, uintElement(ID.timestampScale, 1000));
  const tracks = element(
    ID.tracks,
    element(
      ID.trackEntry,
      uintElement(ID.trackNumber, 1),
      uintElement(ID.trackUid, 1),
      uintElement(ID.trackType, 1),
      stringElement(ID.codecId, codecId),
    ),
  );
  return Buffer.concat([ebml, idBytes(ID.segment), UNKNOWN_SIZE, info, tracks]);
}

/** One cluster holding one frame; `ptsMicros` is the cluster timestamp, the block's offset is 0. */
export function matroskaFrame(data: Buffer, ptsMicros: number, keyframe: boolean): Buffer {
  const blockHeader = Buffer.of(0x81, 0, 0, keyframe ? 0x80 : 0); // track 1, offset 0, flags
  return element(ID.cluster, uintElement(ID.timestamp, ptsMicros), element(ID.simpleBlock, blockHeader, data));
}
