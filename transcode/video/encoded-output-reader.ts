/**
 * ffmpeg's output, as two streams from one encoder (tee muxer): raw H.264 on one pipe and ffmpeg's `framecrc`
 * listing on another, one line per packet with its pts and size. The listing says exactly where each access
 * unit ends (raw H.264 alone only shows that when the next one begins, a frame late) and which input frame it
 * came from (its pts), even when the decoder dropped or hid a frame.
 */
import { h264NalType, H264_NAL, splitAnnexB } from "./annexb.js";
import { EncodedOutputFormatError } from "./errors.js";

export interface EncodedPacket {
  /** Annex-B access unit. */
  data: Buffer;
  /** pts in the stream's time base (`timeBase`). */
  pts: number;
  timeBase: { num: number; den: number };
  /** Contains an IDR slice. */
  keyframe: boolean;
}

interface IndexEntry {
  pts: number;
  size: number;
}

export class EncodedOutputReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private lineRest = "";
  private readonly index: IndexEntry[] = [];
  private timeBase = { num: 1, den: 90_000 };

  constructor(private readonly onPacket: (packet: EncodedPacket) => void) {}

  /** Bytes from the raw H.264 output. */
  pushData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.flush();
  }

  /** Text from the framecrc output. */
  pushIndex(chunk: Buffer | string): void {
    const text = this.lineRest + chunk.toString();
    const lines = text.split("\n");
    this.lineRest = lines.pop() ?? "";
    for (const line of lines) this.parseLine(line.trim());
    this.flush();
  }

  /** Bytes received but not yet claimed by an index line. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private parseLine(line: string): void {
    if (line === "") return;
    if (line.startsWith("#")) {
      const tb = /^#tb \d+: (\d+)\/(\d+)/.exec(line);
      if (tb) this.timeBase = { num: Number(tb[1]), den: Number(tb[2]) };
      return;
    }
    // stream, dts, pts, duration, size, checksum[, F=flags][, S=side data...]
    const fields = line.split(",").map((f) => f.trim());
    const pts = Number(fields[2]);
    const size = Number(fields[4]);
    if (!Number.isFinite(pts) || !Number.isInteger(size) || size < 0) {
      throw new EncodedOutputFormatError(`unexpected framecrc line: ${line}`);
    }
    this.index.push({ pts, size });
  }

  private flush(): void {
    while (this.index.length > 0 && this.buffered >= this.index[0]!.size) {
      const { pts, size } = this.index.shift()!;
      const data = this.take(size);
      const keyframe = splitAnnexB(data).some((nal) => h264NalType(nal) === H264_NAL.idr);
      this.onPacket({ data, pts, timeBase: this.timeBase, keyframe });
    }
  }

  private take(size: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, size);
    const rest = all.subarray(size);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
