import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeVideoFrames, META_PLACEHOLDER_MSID, MetaSimulator, SIM_VIDEO_CODECS, type SimCall, type SimVideoCodec } from "../../sim/index.js";
import { attribute, bundleMids, mediaDirection, mediaMid, parseSdp, rtpMaps } from "../../sim/sdp-text.js";
import { graphPost, socketHandleCounts, WebhookReceiver } from "../unit/sim-helpers.js";
import { sleep, TestBusiness } from "./sim-video-helpers.js";

const APP_SECRET = "video-app-secret";
const PAGE_ID = "1234567890";
const TOKEN = "EAAB-video-token";

const ENCODING: Record<SimVideoCodec, string> = { VP8: "VP8", VP9: "VP9", H264: "H264", H265: "H265", AV1: "AV1" };

describe("consumer video with a werift business", () => {
  let receiver: WebhookReceiver;
  let sim: MetaSimulator;
  let resourcesBefore: Record<string, number>;
  const callsUrl = (): string => `${sim.graphUrl}/v26.0/${PAGE_ID}/calls`;

  beforeAll(async () => {
    resourcesBefore = socketHandleCounts();
    receiver = await WebhookReceiver.start(APP_SECRET);
    sim = await MetaSimulator.start({ appSecret: APP_SECRET, pageId: PAGE_ID, pageAccessToken: TOKEN, webhookUrl: receiver.url });
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  /** Consumer calls, the business accepts, applies Meta's answer and split re-offer, and a tone flows both ways. */
  async function audioCall(business: TestBusiness, call: SimCall): Promise<void> {
    const accept = await graphPost(callsUrl(), { call_id: call.id, action: "accept", session: { sdp_type: "offer", sdp: await business.offer() } }, TOKEN);
    expect(accept.status).toBe(200);
    const session = accept.body["session"] as Record<"sdp_response" | "sdp_renegotiation", { sdp: string }>;
    await business.applyAnswer(session.sdp_response.sdp);
    await business.answerLocally(session.sdp_renegotiation.sdp);
    business.speak(1000);
    await call.waitForState("media", 10_000);
  }

  /** The offer of the media_update webhook with `version` for `call`. */
  async function webhookOffer(call: SimCall, version: number): Promise<string> {
    const event = await receiver.waitForEvent(
      (e) => e["id"] === call.id && e["event"] === "media_update" && (e["session"] as { version: number }).version === version,
    );
    return (event["session"] as { sdp_renegotiation: { sdp_type: string; sdp: string } }).sdp_renegotiation.sdp;
  }

  it.each(SIM_VIDEO_CODECS)("%s: camera on, frames decode, a PLI brings a keyframe within 500 ms, camera off keeps audio", async (codec) => {
    const call = await sim.placeCall({ toneHz: 440 });
    const business = new TestBusiness(sim.stunUrl);
    try {
      await audioCall(business, call);

      expect(await call.startVideo({ codec })).toBe(200);
      expect(call.mediaVersion).toBe(1);
      const offer = await webhookOffer(call, 1);
      const doc = parseSdp(offer);
      expect(bundleMids(doc)).toEqual(["0", "1", "2", "3"]);
      const [, , placeholder, camera] = doc.media;
      expect(rtpMaps(camera!).map((r) => r.encoding)).toEqual([ENCODING[codec]]);
      expect(placeholder!.lines).toContain(`a=msid:${META_PLACEHOLDER_MSID}`);
      await business.answerLocally(offer);

      const video = await business.waitForFrames("3", 30, 10_000);
      expect(video.codec).toBe(codec);
      expect(business.videoOn("2")).toBeUndefined();

      // An explicit PLI: the consumer jumps back to its keyframe at once.
      await sleep(300);
      const keyframesBefore = video.keyframesAt.length;
      const pliAt = business.sendPli("3");
      for (let i = 0; i < 20 && video.keyframesAt.length === keyframesBefore; i++) await sleep(25);
      expect(video.keyframesAt.length).toBe(keyframesBefore + 1);
      expect(video.keyframesAt.at(-1)! - pliAt).toBeLessThan(500);
      const sent = call.consumer.videoStats.sent!;
      expect(sent.plisReceived).toBeGreaterThanOrEqual(1);
      expect(sent.lastRequestedKeyframeSentAt! - sent.lastKeyframeRequestAt!).toBeLessThan(50);

      await sleep(300);
      const frames = [...video.frames];
      const decoded = await decodeVideoFrames(codec, frames);
      expect(decoded.errors).toEqual([]);
      expect(decoded.frames).toBe(frames.length);
      expect(decoded.frames).toBeGreaterThanOrEqual(30);

      expect(await call.stopVideo()).toBe(200);
      const off = parseSdp(await webhookOffer(call, 2));
      expect(bundleMids(off)).toEqual(["0", "1", "2", "3"]);
      expect(off.media.map((m) => mediaDirection(m))).toEqual(["recvonly", "sendonly", "inactive", "inactive"]);
      expect(call.consumer.videoStats.state).toBe("stopped");
      await business.answerLocally(await webhookOffer(call, 2));
      await sleep(200);
      const packetsAtStop = video.packets;
      const audioAtStop = business.audioPacketsOn("1");
      await sleep(600);
      expect(video.packets).toBe(packetsAtStop);
      expect(business.audioPacketsOn("1")).toBeGreaterThan(audioAtStop + 20);
      expect(Math.abs(business.heardOn("1").hz - 440)).toBeLessThan(5);
      expect(Math.abs(call.consumer.detectTone(1).hz - 1000)).toBeLessThan(5);
      expect(call.mediaUpdates.map((u) => [u.version, u.origin, u.reason])).toEqual([
        [1, "meta", "video-on"],
        [2, "meta", "video-off"],
      ]);
    } finally {
      await call.hangup().catch(() => 0);
      await business.close();
    }
  });

  it("camera on, off and on again with another codec reuses the m-lines", async () => {
    const call = await sim.placeCall({ toneHz: 440 });
    const business = new TestBusiness(sim.stunUrl);
    try {
      await audioCall(business, call);
      await call.startVideo({ codec: "VP8" });
      await business.answerLocally(await webhookOffer(call, 1));
      await business.waitForFrames("3", 15, 10_000);
      await call.stopVideo();
      await business.answerLocally(await webhookOffer(call, 2));
      await call.startVideo({ codec: "H264", width: 320, height: 180, fps: 15 });
      const again = parseSdp(await webhookOffer(call, 3));
      expect(bundleMids(again)).toEqual(["0", "1", "2", "3"]);
      expect(again.media.map((m) => mediaDirection(m))).toEqual(["recvonly", "sendonly", "sendonly", "sendonly"]);
      expect(rtpMaps(again.media[3]!).map((r) => [r.payloadType, r.encoding])).toEqual([[109, "H264"]]);
      await business.answerLocally(await webhookOffer(call, 3));
      const h264 = await business.waitForFrames("3", 15, 10_000, "H264");
      const frames = [...h264.frames];
      const decoded = await decodeVideoFrames("H264", frames);
      expect(decoded.frames).toBe(frames.length);
      expect(call.consumer.videoStats.sent).toMatchObject({ codec: "H264", width: 320, height: 180, fps: 15 });
    } finally {
      await call.hangup().catch(() => 0);
      await business.close();
    }
  });

  it("a consumer calling with the camera on gets the appendix layout in the accept's re-offer", async () => {
    const call = await sim.placeCall({ toneHz: 440, video: { codec: "H264" } });
    const business = new TestBusiness(sim.stunUrl);
    try {
      const accept = await graphPost(callsUrl(), { call_id: call.id, action: "accept", session: { sdp_type: "offer", sdp: await business.offer() } }, TOKEN);
      const session = accept.body["session"] as Record<"sdp_response" | "sdp_renegotiation", { sdp: string }>;
      const reoffer = parseSdp(session.sdp_renegotiation.sdp);
      expect(bundleMids(reoffer)).toEqual(["0", "1", "2", "3"]);
      expect(reoffer.media.map((m) => [mediaMid(m), m.kind, mediaDirection(m)])).toEqual([
        ["0", "audio", "recvonly"],
        ["1", "video", "sendonly"],
        ["2", "video", "sendonly"],
        ["3", "audio", "sendonly"],
      ]);
      const [, placeholder, camera, voice] = reoffer.media;
      expect(placeholder!.lines).toContain(`a=msid:${META_PLACEHOLDER_MSID}`);
      expect(placeholder!.lines.some((l) => l.startsWith("a=ssrc:"))).toBe(false);
      expect(camera!.lines.some((l) => l.startsWith("a=ssrc:"))).toBe(true);
      expect(attribute(camera!.lines, "fmtp")).toBe("109 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
      expect(voice!.lines.some((l) => l.startsWith("a=ssrc:"))).toBe(true);
      expect(call.mediaVersion).toBe(0);

      await business.applyAnswer(session.sdp_response.sdp);
      await business.answerLocally(session.sdp_renegotiation.sdp);
      business.speak(1000);
      const video = await business.waitForFrames("2", 20, 10_000);
      expect(video.codec).toBe("H264");
      await sleep(1200);
      expect(Math.abs(business.heardOn("3").hz - 440)).toBeLessThan(5);
    } finally {
      await call.hangup().catch(() => 0);
      await business.close();
    }
  });

  it("an outbound call picked up with the camera on: the pickup media_update carries the video", async () => {
    const outbound = await MetaSimulator.start({
      appSecret: APP_SECRET,
      pageId: PAGE_ID,
      pageAccessToken: TOKEN,
      webhookUrl: receiver.url,
      outboundPickup: "manual",
    });
    const business = new TestBusiness(outbound.stunUrl);
    try {
      const url = `${outbound.graphUrl}/v26.0/${PAGE_ID}/calls`;
      const connect = await graphPost(url, { to: "5550002", action: "connect", session: { sdp_type: "offer", sdp: await business.offer() } }, TOKEN);
      await business.applyAnswer((connect.body["session"] as { sdp_response: { sdp: string } }).sdp_response.sdp);
      const call = outbound.getCall(connect.body["id"] as string)!;
      await receiver.waitForEvent((e) => e["id"] === call.id && e["event"] === "call_status" && e["call_status"] === "ringing");
      expect(await call.startVideo({ codec: "AV1" })).toBe(0);
      await call.answer();
      const pickup = parseSdp(await webhookOffer(call, 1));
      expect(pickup.media.map((m) => [mediaMid(m), m.kind, mediaDirection(m)])).toEqual([
        ["0", "audio", "recvonly"],
        ["1", "video", "sendonly"],
        ["2", "video", "sendonly"],
        ["3", "audio", "sendonly"],
      ]);
      expect(call.mediaUpdates.map((u) => u.reason)).toEqual(["pickup"]);
      await business.answerLocally(await webhookOffer(call, 1));
      const video = await business.waitForFrames("2", 20, 10_000, "AV1");
      const frames = [...video.frames];
      expect((await decodeVideoFrames("AV1", frames)).frames).toBe(frames.length);
    } finally {
      await business.close();
      await outbound.stop();
    }
  });

  it("leaves no sockets or timers behind once the simulator stops, video senders included", async () => {
    await sim.stop();
    await receiver.close();
    for (let i = 0; i < 50 && JSON.stringify(socketHandleCounts()) !== JSON.stringify(resourcesBefore); i++) await sleep(20);
    expect(socketHandleCounts()).toEqual(resourcesBefore);
  });
});
