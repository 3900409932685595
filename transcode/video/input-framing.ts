/**
 * How frames reach ffmpeg's stdin. Every framing here makes ffmpeg take each write as one whole frame at once,
 * so nothing is held back waiting for the next frame:
 * - "ivf" (VP8/VP9/AV1): the codecs' native container, pts in 90 kHz;
 * - "matroska" (H.264/H.265): Annex-B access units in blocks, pts in µs; ffmpeg 5.1's IVF reader knows no
 *   HEVC tag, and raw Annex-B has no timestamps;
 * - "annexb" (H.264/H.265): raw Annex-B with an access-unit delimiter after each access unit, so ffmpeg's
 *   parser sees the end of a frame immediately. ffmpeg numbers the frames itself, so the odd-pts keyframe side
 *   channel is unavailable: keyframes follow the input's (`-force_key_frames source`).
 */
import { H264_AUD, H265_AUD } from "./annexb.js";
import { ivfFileHeader, ivfFrameHeader } from "./ivf.js";
import { matroskaFrame, matroskaHeader, MATROSKA_TICKS_PER_SECOND } from "./matroska.js";
import { isAnnexBCodec, VIDEO_CLOCK_RATE, type VideoCodec } from "./video-codec.js";

export type InputFraming = "ivf" | "matroska" | "annexb";

export interface InputFramer {
  readonly framing: InputFraming;
  /** ffmpeg options placed before `-i pipe:0`. */
  readonly inputArgs: readonly string[];
  /**
   * Ticks per second of the pts this framing carries; undefined when ffmpeg assigns timestamps itself
   * (then output packets are matched to input frames by their position, `annexbFrameRate` per second).
   */
  readonly ticksPerSecond: number | undefined;
  /** Bytes to write once, before the first frame. */
  header(): Buffer;
  /** Bytes for one frame; `pts` in `ticksPerSecond` units (ignored by "annexb"). */
  frame(data: Buffer, pts: number, keyframe: boolean): Buffer[];
}

/** The frame rate announced to ffmpeg for raw Annex-B input; output pts then count frames at this rate. */
export const ANNEXB_FRAME_RATE = 30;

const IVF_FOURCC: Readonly<Record<VideoCodec, string | undefined>> = {
  VP8: "VP80",
  VP9: "VP90",
  AV1: "AV01",
  H264: "H264",
  H265: undefined,
};

export function defaultFraming(codec: VideoCodec): InputFraming {
  return isAnnexBCodec(codec) ? "matroska" : "ivf";
}

export function createInputFramer(codec: VideoCodec, framing: InputFraming = defaultFraming(codec)): InputFramer {
  switch (framing) {
    case "ivf": {
      const fourcc = IVF_FOURCC[codec];
      if (!fourcc) throw new RangeError(`ffmpeg's IVF demuxer does not take ${codec}`);
      return {
        framing,
        inputArgs: ["-f", "ivf"],
        ticksPerSecond: VIDEO_CLOCK_RATE,
        header: () => ivfFileHeader(fourcc, VIDEO_CLOCK_RATE),
        frame: (data, pts) => [ivfFrameHeader(data.length, pts), data],
      };
    }
    case "matroska": {
      if (!isAnnexBCodec(codec)) throw new RangeError(`Matroska framing is for H.264/H.265, not ${codec}`);
      const codecId = codec === "H264" ? "V_MPEG4/ISO/AVC" : "V_MPEGH/ISO/HEVC";
      return {
        framing,
        inputArgs: ["-f", "matroska"],
        ticksPerSecond: MATROSKA_TICKS_PER_SECOND,
        header: () => matroskaHeader(codecId),
        frame: (data, pts, keyframe) => [matroskaFrame(data, pts, keyframe)],
      };
    }
    case "annexb": {
      if (!isAnnexBCodec(codec)) throw new RangeError(`Annex-B framing is for H.264/H.265, not ${codec}`);
      const aud = Buffer.from(codec === "H264" ? H264_AUD : H265_AUD);
      return {
        framing,
        inputArgs: ["-f", codec === "H264" ? "h264" : "hevc", "-framerate", String(ANNEXB_FRAME_RATE)],
        ticksPerSecond: undefined,
        header: () => Buffer.alloc(0),
        frame: (data) => [data, aud],
      };
    }
  }
}
