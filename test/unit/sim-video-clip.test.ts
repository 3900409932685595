import { PictureLossIndication, RtcpPacketConverter, RtcpPayloadSpecificFeedback, type RtpPacket } from "werift";
import { describe, expect, it } from "vitest";
import { loadVideoClip, type VideoClipSpec } from "../../sim/video-clip.js";
import { SIM_VIDEO_CODECS, type SimVideoCodec } from "../../sim/video-codecs.js";
import { decodeVideoFrames } from "../../sim/video-decode.js";
import { keyframeRequestFor } from "../../sim/video-feedback.js";
import { VideoFrameCollector } from "../../sim/video-receiver.js";
import { packetizerFor, VIDEO_MAX_PAYLOAD } from "../../sim/video-sender.js";

const spec = (codec: SimVideoCodec): VideoClipSpec => ({ codec, width: 320, height: 180, fps: 30, seconds: 2 });

/** The clip as the consumer sends it: werift's packetizer, 3000 ticks per frame. */
async function packetizedClip(codec: SimVideoCodec): Promise<{ frames: number; packets: RtpPacket[] }> {
  const clip = await loadVideoClip(spec(codec));
  const packetize = packetizerFor(codec, 96);
  const packets = clip.frames.flatMap((frame, i) => packetize(frame.data, i * 3000, frame.keyframe));
  return { frames: clip.frames.length, packets };
}

describe("test pattern clips", () => {
  it.each(SIM_VIDEO_CODECS)("%s: one frame per 1/30 s, a keyframe only at the start, cached", async (codec) => {
    const clip = await loadVideoClip(spec(codec));
    expect(clip.frames).toHaveLength(60);
    expect(clip.frames.map((f) => f.keyframe)).toEqual([true, ...Array<boolean>(59).fill(false)]);
    expect(await loadVideoClip(spec(codec))).toBe(clip);
    const decoded = await decodeVideoFrames(codec, clip.frames);
    expect(decoded).toEqual({ frames: 60, errors: [] });
  });

  it.each(SIM_VIDEO_CODECS)("%s: packets stay within the MTU and collect back into frames that decode", async (codec) => {
    const { frames, packets } = await packetizedClip(codec);
    expect(Math.max(...packets.map((p) => p.payload.length))).toBeLessThanOrEqual(VIDEO_MAX_PAYLOAD);
    const collector = new VideoFrameCollector(1000);
    for (const p of packets) collector.push(p, codec);
    expect(collector.stats).toMatchObject({ codec, framesDepacketized: frames, framesIncomplete: 0, depacketizeErrors: 0, keyframes: 1 });
    expect(collector.kept[0]?.keyframe).toBe(true);
    expect(await decodeVideoFrames(codec, collector.kept)).toEqual({ frames, errors: [] });
  });

  it("drops a frame with a missing packet and counts packets of unknown payload types", async () => {
    const { packets } = await packetizedClip("H264");
    const keyframePackets = packets.filter((p) => p.header.timestamp === 0);
    expect(keyframePackets.length).toBeGreaterThan(2);
    const collector = new VideoFrameCollector(10);
    for (const p of packets) if (p !== keyframePackets[1]) collector.push(p, "H264");
    collector.push(packets[0]!, undefined);
    expect(collector.stats.framesIncomplete).toBe(1);
    expect(collector.stats.unknownPayloadPackets).toBe(1);
    expect(collector.kept).toHaveLength(10);
  });
});

describe("keyframe requests read from RTCP", () => {
  it("recognises a PLI for our SSRC and ignores one for another", () => {
    const pli = new RtcpPayloadSpecificFeedback({ feedback: new PictureLossIndication({ senderSsrc: 1, mediaSsrc: 42 }) });
    const [parsed] = RtcpPacketConverter.deSerialize(pli.serialize());
    expect(keyframeRequestFor(parsed!, 42)).toBe("pli");
    expect(keyframeRequestFor(parsed!, 43)).toBeUndefined();
  });

  it("recognises a FIR whose FCI names our SSRC", () => {
    // RFC 5104 §4.3.1: V=2, FMT=4, PT=206, length 4; sender SSRC, media SSRC 0, one FCI (SSRC, seq, reserved).
    const fir = Buffer.alloc(20);
    fir.writeUInt8(0x80 | 4, 0);
    fir.writeUInt8(206, 1);
    fir.writeUInt16BE(4, 2);
    fir.writeUInt32BE(1, 4);
    fir.writeUInt32BE(0, 8);
    fir.writeUInt32BE(42, 12);
    fir.writeUInt8(7, 16);
    const [parsed] = RtcpPacketConverter.deSerialize(fir);
    expect(keyframeRequestFor(parsed!, 42)).toBe("fir");
    expect(keyframeRequestFor(parsed!, 9)).toBeUndefined();
  });
});
