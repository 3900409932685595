import { describe, expect, it } from "vitest";
import { readPbxVideoFeedback } from "../../gateway/call/pbx-video-feedback.js";
import { ReceiveBandwidthEstimator, rembFields } from "../../gateway/webrtc/receive-bandwidth.js";

const body = (words: number[], tail: Buffer = Buffer.alloc(0)): Buffer => {
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4));
  return Buffer.concat([b, tail]);
};

describe("RTCP feedback from a SIP video phone", () => {
  it("reads PLI and FIR as keyframe requests", () => {
    expect(
      readPbxVideoFeedback([
        { type: "other", packetType: 206, count: 1, body: body([1, 2]) },
        { type: "other", packetType: 206, count: 4, body: body([1, 0, 2, 0]) },
      ]),
    ).toEqual([{ kind: "keyframe" }, { kind: "keyframe" }]);
  });

  it("reads a TMMBR bitrate", () => {
    // 512 kbps = 128000 * 2^2 → exp 2, mantissa 128000 (17 bits), overhead 40
    const word = (2 << 26) | (128000 << 9) | 40;
    expect(readPbxVideoFeedback([{ type: "other", packetType: 205, count: 3, body: body([1, 0, 7, word]) }])).toEqual([
      { kind: "bitrate", bps: 512000 },
    ]);
  });

  it("reads a REMB bitrate and ignores other application feedback", () => {
    const { brExp, brMantissa } = rembFields(1_500_000);
    const word = (1 << 24) | (brExp << 18) | brMantissa;
    const remb = Buffer.concat([body([1, 0]), Buffer.from("REMB"), body([word, 9])]);
    const [fb] = readPbxVideoFeedback([{ type: "other", packetType: 206, count: 15, body: remb }]);
    expect(fb?.kind).toBe("bitrate");
    expect(Math.abs((fb as { bps: number }).bps - 1_500_000)).toBeLessThan(1_500_000 / 100_000 + 8);
    const other = Buffer.concat([body([1, 0]), Buffer.from("XXXX"), body([word])]);
    expect(readPbxVideoFeedback([{ type: "other", packetType: 206, count: 15, body: other }])).toEqual([]);
  });
});

describe("receive bandwidth estimate toward Meta", () => {
  const feed = (e: ReceiveBandwidthEstimator, packets: number, bytes: number, lossEvery = 0, start = 0): void => {
    for (let i = 0; i < packets; i++) {
      if (lossEvery > 0 && i % lossEvery === 0) continue;
      e.onPacket((start + i) & 0xffff, bytes);
    }
  };

  it("grows while nothing is lost, above what arrives", () => {
    const e = new ReceiveBandwidthEstimator(150_000, 2_500_000, 500_000);
    feed(e, 100, 1000); // 800 kbit in 1 s
    expect(e.update(1000)).toBe(1_200_000);
    feed(e, 100, 1000, 0, 100);
    expect(e.update(1000)).toBe(1_296_000);
  });

  it("backs off under heavy loss and stays within bounds", () => {
    const e = new ReceiveBandwidthEstimator(150_000, 2_500_000, 2_000_000);
    feed(e, 100, 1000, 4); // every 4th lost: about 24% of what was expected
    const after = e.update(1000);
    expect(after).toBeGreaterThan(1_700_000);
    expect(after).toBeLessThan(1_800_000);
    for (let i = 0; i < 30; i++) {
      feed(e, 100, 1000, 2, i * 100);
      e.update(1000);
    }
    expect(e.bps).toBe(150_000);
  });

  it("counts across a sequence wrap without inventing loss", () => {
    const e = new ReceiveBandwidthEstimator(150_000, 2_500_000, 500_000);
    feed(e, 100, 500, 0, 65500); // 400 kbit/s, nothing lost: 1.5 × what arrived
    expect(e.update(1000)).toBe(600_000);
  });
});
