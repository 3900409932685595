import { afterEach, describe, expect, it } from "vitest";
import { SimConsumer } from "../../sim/consumer.js";
import { SimStateError } from "../../sim/errors.js";
import { inferBusinessAnswer, META_PLACEHOLDER_MSID, shapeMetaReoffer } from "../../sim/sdp-meta-style.js";
import { attributes, bundleMids, mediaDirection, mediaMid, parseSdp, rtpMaps, type SdpMediaSection } from "../../sim/sdp-text.js";
import { META_VIDEO_FORMATS, SIM_VIDEO_CODECS, type SimVideoCodec } from "../../sim/video-codecs.js";
import { VALID_OFFER } from "./sim-helpers.js";

const META_FEEDBACK = ["ccm fir", "nack", "nack pli", "goog-remb", "transport-cc"];

/** kind, mid and direction of every m-line. */
function layout(sdp: string): Array<[string, string | undefined, string]> {
  return parseSdp(sdp).media.map((m) => [m.kind, mediaMid(m), mediaDirection(m)]);
}

function hasSsrc(section: SdpMediaSection): boolean {
  return section.lines.some((l) => l.startsWith("a=ssrc:"));
}

describe("the consumer's video offers", () => {
  let consumer: SimConsumer | undefined;

  afterEach(async () => {
    await consumer?.close();
    consumer = undefined;
  });

  /** A consumer after accept: the business's answer and Meta's split re-offer (no network peer needed). */
  async function acceptedConsumer(): Promise<SimConsumer> {
    consumer = new SimConsumer();
    await consumer.answerOffer(VALID_OFFER);
    await consumer.createSplitReoffer();
    return consumer;
  }

  it.each(SIM_VIDEO_CODECS)("camera on with %s appends a placeholder and a camera m-line, BUNDLE 0 1 2 3", async (codec: SimVideoCodec) => {
    const c = await acceptedConsumer();
    const offer = await c.startVideo({ codec });
    expect(offer).toBeDefined();
    const doc = parseSdp(offer!);
    expect(bundleMids(doc)).toEqual(["0", "1", "2", "3"]);
    expect(layout(offer!)).toEqual([
      ["audio", "0", "recvonly"],
      ["audio", "1", "sendonly"],
      ["video", "2", "sendonly"],
      ["video", "3", "sendonly"],
    ]);
    const [, voice, placeholder, camera] = doc.media as [SdpMediaSection, SdpMediaSection, SdpMediaSection, SdpMediaSection];
    expect(attributes(placeholder.lines, "msid")).toEqual([META_PLACEHOLDER_MSID]);
    expect(hasSsrc(placeholder)).toBe(false);
    expect(hasSsrc(camera)).toBe(true);
    expect(attributes(camera.lines, "msid")[0]).toMatch(/^\d+:[0-9a-z]+:DEFAULT \S+$/);
    expect(hasSsrc(voice)).toBe(true);

    const format = META_VIDEO_FORMATS[codec];
    for (const video of [placeholder, camera]) {
      expect(video.formats).toEqual([String(format.payloadType)]);
      expect(rtpMaps(video)).toEqual([{ payloadType: format.payloadType, encoding: format.encoding, clockRate: 90000, channels: undefined }]);
      expect(attributes(video.lines, "fmtp")).toEqual(format.fmtp ? [`${format.payloadType} ${format.fmtp}`] : []);
      expect(attributes(video.lines, "rtcp-fb")).toEqual(META_FEEDBACK.map((fb) => `${format.payloadType} ${fb}`));
      expect(video.lines).toEqual(expect.arrayContaining(["a=setup:passive", "a=rtcp-mux", "a=rtcp-rsize", "a=x-google-flag:conference"]));
    }
    expect(doc.session).toEqual(expect.arrayContaining(["a=ice-lite", "a=x-fb-feature:pqc-0"]));
    expect(c.videoStats).toMatchObject({ state: "offered", placeholderMid: "2", sendMid: "3" });
  });

  it("H.264 is PT 109 with Meta's profile and packetization mode", () => {
    expect(META_VIDEO_FORMATS.H264.payloadType).toBe(109);
    expect(META_VIDEO_FORMATS.H264.fmtp).toContain("profile-level-id=42e01f");
    expect(META_VIDEO_FORMATS.H264.fmtp).toContain("packetization-mode=1");
  });

  it("camera off sets both video m-lines inactive and keeps every m-line; on again reuses them", async () => {
    const c = await acceptedConsumer();
    await c.startVideo({ codec: "VP8" });
    const off = await c.stopVideo();
    expect(bundleMids(parseSdp(off!))).toEqual(["0", "1", "2", "3"]);
    expect(layout(off!).map(([kind, , direction]) => [kind, direction])).toEqual([
      ["audio", "recvonly"],
      ["audio", "sendonly"],
      ["video", "inactive"],
      ["video", "inactive"],
    ]);
    expect(parseSdp(off!).media.every((m) => m.port !== 0)).toBe(true);
    expect(c.videoStats.state).toBe("stopped");
    await expect(c.stopVideo()).rejects.toBeInstanceOf(SimStateError);

    const on = await c.startVideo({ codec: "AV1" });
    expect(layout(on!).map(([, mid, direction]) => [mid, direction])).toEqual([
      ["0", "recvonly"],
      ["1", "sendonly"],
      ["2", "sendonly"],
      ["3", "sendonly"],
    ]);
    expect(rtpMaps(parseSdp(on!).media[3]!).map((r) => r.encoding)).toEqual(["AV1"]);
    await expect(c.startVideo({ codec: "AV1" })).rejects.toBeInstanceOf(SimStateError);
  });

  it("a camera on before Meta's first re-offer gives the appendix order: audio recv, placeholder, camera, audio send", async () => {
    consumer = new SimConsumer();
    await consumer.answerOffer(VALID_OFFER);
    expect(await consumer.startVideo({ codec: "H264" })).toBeUndefined();
    expect(consumer.videoStats.state).toBe("pending");
    const reoffer = await consumer.createSplitReoffer();
    expect(bundleMids(parseSdp(reoffer))).toEqual(["0", "1", "2", "3"]);
    expect(layout(reoffer)).toEqual([
      ["audio", "0", "recvonly"],
      ["video", "1", "sendonly"],
      ["video", "2", "sendonly"],
      ["audio", "3", "sendonly"],
    ]);
    const media = parseSdp(reoffer).media;
    expect(attributes(media[1]!.lines, "msid")).toEqual([META_PLACEHOLDER_MSID]);
    expect(hasSsrc(media[1]!)).toBe(false);
    expect(hasSsrc(media[2]!)).toBe(true);
    expect(hasSsrc(media[3]!)).toBe(true);
  });

  it("a camera turned off again before Meta's first re-offer leaves the accept layout as it was", async () => {
    consumer = new SimConsumer();
    await consumer.answerOffer(VALID_OFFER);
    await consumer.startVideo({ codec: "VP9" });
    expect(await consumer.stopVideo()).toBeUndefined();
    expect(layout(await consumer.createSplitReoffer())).toEqual([
      ["audio", "0", "recvonly"],
      ["audio", "1", "sendonly"],
    ]);
  });
});

describe("Meta-style video shaping and the inferred business answer", () => {
  const weriftOffer = [
    "v=0",
    "o=- 1 0 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    ...["0", "1"].flatMap((mid) => [
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "c=IN IP4 0.0.0.0",
      "a=candidate:1 1 udp 2116026367 127.0.0.1 39678 typ host generation 0",
      "a=ice-ufrag:8eee",
      "a=ice-pwd:6af60ef264ef6edfba4df5",
      "a=fingerprint:sha-256 AA:BB",
      "a=setup:passive",
      "a=sendonly",
      `a=mid:${mid}`,
      `a=msid:stream-${mid} track-${mid}`,
      "a=rtcp-mux",
      `a=ssrc:${mid === "0" ? 111 : 222} cname:meta`,
      "a=rtpmap:96 VP8/90000",
      "a=rtcp-fb:96 nack pli",
    ]),
    "",
  ].join("\r\n");

  it("dresses only the placeholder mids: Meta's msid, no ssrc", () => {
    const doc = parseSdp(shapeMetaReoffer(weriftOffer, { placeholderMids: ["0"] }));
    expect(attributes(doc.media[0]!.lines, "msid")).toEqual([META_PLACEHOLDER_MSID]);
    expect(hasSsrc(doc.media[0]!)).toBe(false);
    expect(attributes(doc.media[1]!.lines, "msid")).toEqual(["stream-1 track-1"]);
    expect(hasSsrc(doc.media[1]!)).toBe(true);
  });

  it("answers Meta's video recvonly with Meta's codec even when the business never offered it", () => {
    // VALID_OFFER is audio only: the business never listed VP8.
    const answer = parseSdp(inferBusinessAnswer(VALID_OFFER, shapeMetaReoffer(weriftOffer)));
    expect(bundleMids(answer)).toEqual(["0", "1"]);
    for (const m of answer.media) {
      expect(m.port).not.toBe(0);
      expect(mediaDirection(m)).toBe("recvonly");
      expect(rtpMaps(m).map((r) => r.encoding)).toEqual(["VP8"]);
      expect(attributes(m.lines, "rtcp-fb")).toEqual(["96 nack pli"]);
    }
    const inactive = parseSdp(inferBusinessAnswer(VALID_OFFER, weriftOffer.replaceAll("a=sendonly", "a=inactive")));
    expect(inactive.media.map((m) => mediaDirection(m))).toEqual(["inactive", "inactive"]);
  });
});
