import { describe, expect, it } from "vitest";
import { joinAnnexB } from "../../transcode/video/annexb.js";
import { EncodedOutputReader, type EncodedPacket } from "../../transcode/video/encoded-output-reader.js";
import { EncodedOutputFormatError } from "../../transcode/video/errors.js";
import { buildFfmpegArgs, DEFAULT_ENCODER_SETTINGS } from "../../transcode/video/ffmpeg-args.js";
import { createInputFramer, defaultFraming } from "../../transcode/video/input-framing.js";
import { LatencyWindow } from "../../transcode/video/latency-window.js";
import { sequenceUnwrapper, timestampUnwrapper } from "../../transcode/video/rtp-unwrap.js";

const idrAu = joinAnnexB([Buffer.from([0x67, 1, 2]), Buffer.from([0x68, 3]), Buffer.from([0x65, 0x88, 9, 9, 9])]);
const pAu = joinAnnexB([Buffer.from([0x41, 0x9a, 7, 7])]);

describe("EncodedOutputReader", () => {
  it("cuts the byte stream at the sizes framecrc reports, whichever pipe is ahead", () => {
    const packets: EncodedPacket[] = [];
    const reader = new EncodedOutputReader((p) => packets.push(p));
    reader.pushIndex("#software: Lavf59.27.100\n#tb 0: 1/90000\n#media_type 0: video\n");
    reader.pushIndex(`0,     183000,     183000,     3000, ${idrAu.length}, 0x6d00d143, S=1,        8\n0,     18`);
    expect(packets).toEqual([]); // no bytes yet
    reader.pushData(Buffer.concat([idrAu, pAu.subarray(0, 3)]));
    expect(packets.map((p) => [p.pts, p.keyframe])).toEqual([[183000, true]]);
    reader.pushData(pAu.subarray(3));
    expect(packets.length).toBe(1); // the second index line is not complete yet
    reader.pushIndex(`6001,     186001,     3000, ${pAu.length}, 0x3af27110, F=0x0, S=1,        8\n`);
    expect(packets.map((p) => [p.pts, p.keyframe, p.data.length])).toEqual([
      [183000, true, idrAu.length],
      [186001, false, pAu.length],
    ]);
    expect(packets[1]!.timeBase).toEqual({ num: 1, den: 90000 });
    expect(reader.pendingBytes).toBe(0);
  });

  it("rejects a listing it cannot read", () => {
    const reader = new EncodedOutputReader(() => {});
    expect(() => reader.pushIndex("garbage line\n")).toThrow(EncodedOutputFormatError);
  });
});

describe("ffmpeg command line", () => {
  it("has the low-delay settings and no -fflags nobuffer", () => {
    const args = buildFfmpegArgs(createInputFramer("VP8"), { ...DEFAULT_ENCODER_SETTINGS, bitrateKbps: 600 });
    const joined = args.join(" ");
    for (const expected of [
      "-flags low_delay -probesize 32 -analyzeduration 0 -f ivf -i pipe:0",
      "-c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline",
      "-bf 0 -g 100000 -keyint_min 1 -sc_threshold 0 -x264-params slice-max-size=1188",
      "-b:v 600k -maxrate 600k -bufsize 300k",
      "-fps_mode passthrough -copyts -enc_time_base -1 -r 30",
      "-force_key_frames expr:eq(mod(round(t*90000),2),1)",
      "-f tee [f=h264]pipe\\:1|[f=framecrc]pipe\\:3",
    ]) {
      expect(joined).toContain(expected);
    }
    expect(joined).not.toContain("nobuffer");
  });

  it("uses the µs side channel for Matroska and follows input keyframes for raw Annex-B", () => {
    expect(buildFfmpegArgs(createInputFramer("H265"), DEFAULT_ENCODER_SETTINGS).join(" ")).toContain(
      "-f matroska -i pipe:0",
    );
    expect(buildFfmpegArgs(createInputFramer("H265"), DEFAULT_ENCODER_SETTINGS).join(" ")).toContain("round(t*1000000)");
    const raw = buildFfmpegArgs(createInputFramer("H264", "annexb"), DEFAULT_ENCODER_SETTINGS).join(" ");
    expect(raw).toContain("-f h264 -framerate 30 -i pipe:0");
    expect(raw).toContain("-force_key_frames source");
  });
});

describe("input framing", () => {
  it("chooses IVF for VP8/VP9/AV1 and Matroska for H.264/H.265", () => {
    expect(["VP8", "VP9", "AV1", "H264", "H265"].map((c) => defaultFraming(c as "VP8"))).toEqual([
      "ivf", "ivf", "ivf", "matroska", "matroska",
    ]);
    expect(() => createInputFramer("H265", "ivf")).toThrow(RangeError);
    expect(() => createInputFramer("VP8", "annexb")).toThrow(RangeError);
  });

  it("writes IVF headers with a 90 kHz time base and 12-byte frame headers", () => {
    const framer = createInputFramer("AV1");
    const header = framer.header();
    expect(header.length).toBe(32);
    expect(header.subarray(0, 4).toString()).toBe("DKIF");
    expect(header.subarray(8, 12).toString()).toBe("AV01");
    expect(header.readUInt32LE(16)).toBe(90000);
    expect(header.readUInt32LE(20)).toBe(1);
    const [frameHeader, payload] = framer.frame(Buffer.from([1, 2, 3]), 123457, false);
    expect(frameHeader!.length).toBe(12);
    expect(frameHeader!.readUInt32LE(0)).toBe(3);
    expect(frameHeader!.readBigUInt64LE(4)).toBe(123457n);
    expect(payload).toEqual(Buffer.from([1, 2, 3]));
  });

  it("puts each Annex-B access unit in its own Matroska cluster, keyframe flag set", () => {
    const framer = createInputFramer("H264");
    expect(framer.header().subarray(0, 4)).toEqual(Buffer.from("1a45dfa3", "hex"));
    expect(framer.header().includes(Buffer.from("V_MPEG4/ISO/AVC"))).toBe(true);
    const [cluster] = framer.frame(idrAu, 1_000_001, true);
    expect(cluster!.subarray(0, 4)).toEqual(Buffer.from("1f43b675", "hex"));
    expect(cluster!.subarray(cluster!.length - idrAu.length)).toEqual(idrAu);
    expect(cluster![cluster!.length - idrAu.length - 1]).toBe(0x80);
    const rawFramer = createInputFramer("H265", "annexb");
    expect(Buffer.concat(rawFramer.frame(pAu, 0, false)).subarray(pAu.length)).toEqual(Buffer.from([0, 0, 0, 1, 0x46, 0x01, 0x50]));
  });
});

describe("small helpers", () => {
  it("unwraps sequence numbers and timestamps across their wrap, late values included", () => {
    const seq = sequenceUnwrapper();
    expect([65534, 65535, 0, 65535, 1].map((s) => seq.unwrap(s))).toEqual([65534, 65535, 65536, 65535, 65537]);
    const ts = timestampUnwrapper();
    expect([0xffff_f000, 0x0000_0400].map((t) => ts.unwrap(t))).toEqual([0xffff_f000, 0x1_0000_0400]);
  });

  it("keeps percentiles over the last N samples", () => {
    const w = new LatencyWindow(4);
    expect(w.percentile(50)).toBeUndefined();
    for (const v of [100, 1, 2, 3, 4]) w.add(v);
    expect(w.count).toBe(4);
    expect(w.percentile(50)).toBe(2);
    expect(w.percentile(99)).toBe(4);
  });
});
