import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeVideoFrames, loadVideoClip, MessengerCallingCode, MetaSimulator, type SimCall } from "../../sim/index.js";
import { bundleMids, mediaDirection, mediaMid, parseSdp, rtpMaps } from "../../sim/sdp-text.js";
import { graphPost, WebhookReceiver } from "../unit/sim-helpers.js";
import { sleep, TestBusiness } from "./sim-video-helpers.js";

const APP_SECRET = "video-business-secret";
const PAGE_ID = "1234567890";
const TOKEN = "EAAB-video-business-token";
const VIDEO_TRACK = { msid: "gw-video", label: "default_video", status: "enabled" } as const;

describe("business media_update with video, tracks and collisions", () => {
  let receiver: WebhookReceiver;
  let sim: MetaSimulator;
  const callsUrl = (): string => `${sim.graphUrl}/v26.0/${PAGE_ID}/calls`;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start(APP_SECRET);
    sim = await MetaSimulator.start({ appSecret: APP_SECRET, pageId: PAGE_ID, pageAccessToken: TOKEN, webhookUrl: receiver.url });
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  async function audioCall(business: TestBusiness): Promise<SimCall> {
    const call = await sim.placeCall({ toneHz: 440 });
    const accept = await graphPost(callsUrl(), { call_id: call.id, action: "accept", session: { sdp_type: "offer", sdp: await business.offer() } }, TOKEN);
    const session = accept.body["session"] as Record<"sdp_response" | "sdp_renegotiation", { sdp: string }>;
    await business.applyAnswer(session.sdp_response.sdp);
    await business.answerLocally(session.sdp_renegotiation.sdp);
    business.speak(1000);
    await call.waitForState("media", 10_000);
    return call;
  }

  function mediaUpdate(call: SimCall, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
    return graphPost(callsUrl(), { call_id: call.id, action: "media_update", ...body }, TOKEN);
  }

  async function webhookOffer(call: SimCall, version: number): Promise<{ sdp: string; receivedAt: number }> {
    const event = await receiver.waitForEvent(
      (e) => e["id"] === call.id && e["event"] === "media_update" && (e["session"] as { version: number }).version === version,
    );
    const delivery = receiver.received.find((w) => w.rawBody.includes(call.id) && w.rawBody.includes('"media_update"') && w.rawBody.includes(`"version":${version}`));
    return { sdp: (event["session"] as { sdp_renegotiation: { sdp: string } }).sdp_renegotiation.sdp, receivedAt: delivery?.receivedAt ?? 0 };
  }

  it("the business adds H.264 video: the consumer answers it, decodes it and asks for keyframes", async () => {
    const business = new TestBusiness(sim.stunUrl);
    try {
      const call = await audioCall(business);
      const offer = await business.offerVideo();
      const update = await mediaUpdate(call, { from_version: 0, to_version: 1, tracks: [VIDEO_TRACK], session: { sdp_type: "offer", sdp: offer } });
      expect(update.status).toBe(200);
      const answer = parseSdp((update.body["session"] as { sdp_response: { sdp: string } }).sdp_response.sdp);
      const video = answer.media.find((m) => m.kind === "video")!;
      expect(mediaDirection(video)).toBe("recvonly");
      // Only codecs Meta supports; H.264 with the business's own payload type.
      expect(rtpMaps(video).map((r) => r.encoding).sort()).toEqual(["AV1", "H264", "H265", "VP8", "VP9"]);
      await business.applyAnswer(parseSdpText(update));
      expect(call.mediaVersion).toBe(1);
      expect(call.businessTracks).toEqual([VIDEO_TRACK]);

      business.sendH264(await loadVideoClip({ codec: "H264", width: 640, height: 360, fps: 30, seconds: 4 }));
      await call.consumer.waitForVideoFrames(45, 10_000);
      const received = call.consumer.videoStats.received;
      expect(received.codec).toBe("H264");
      expect(received.keyframes).toBeGreaterThanOrEqual(1);
      expect(received.framesIncomplete).toBe(0);
      const decoded = await decodeVideoFrames("H264", call.consumer.receivedVideoAnnexB());
      expect(decoded.errors).toEqual([]);
      expect(decoded.frames).toBeGreaterThanOrEqual(45);

      expect(call.consumer.requestKeyframe()).toBe(true);
      for (let i = 0; i < 20 && business.keyframeRequests.length === 0; i++) await sleep(25);
      expect(business.keyframeRequests).toContain("pli");
      // The consumer's voice still arrives on its own m-line.
      expect(Math.abs(business.heardOn("1").hz - 440)).toBeLessThan(5);
    } finally {
      await business.close();
    }
  });

  it("tracks-only media_update toggles a track without renegotiation and keeps the version", async () => {
    const business = new TestBusiness(sim.stunUrl);
    try {
      const call = await audioCall(business);
      const offer = await business.offerVideo();
      await mediaUpdate(call, { from_version: 0, to_version: 1, tracks: [VIDEO_TRACK], session: { sdp_type: "offer", sdp: offer } });
      const disabled = { ...VIDEO_TRACK, status: "DISABLED" };
      const toggle = await mediaUpdate(call, { tracks: [disabled] });
      expect(toggle).toEqual({ status: 200, body: { success: true } });
      expect(call.mediaVersion).toBe(1);
      expect(call.businessTracks).toEqual([{ ...VIDEO_TRACK, status: "disabled" }]);
      expect(call.mediaUpdates.map((u) => [u.version, u.origin, u.reason])).toEqual([
        [1, "business", "business-offer"],
        [1, "business", "business-tracks"],
      ]);

      const unknown = await mediaUpdate(call, { tracks: [{ ...VIDEO_TRACK, msid: "nope" }] });
      expect((unknown.body["error"] as { message: string }).message).toMatch(/Invalid track msid: nope/);
      const stale = await mediaUpdate(call, { from_version: 0, tracks: [VIDEO_TRACK] });
      expect((stale.body["error"] as { message: string }).message).toMatch(/Conflicting media status/);
      const empty = await mediaUpdate(call, { tracks: [] });
      expect((empty.body["error"] as { code: number }).code).toBe(MessengerCallingCode.invalidConnection);
    } finally {
      await business.close();
    }
  });

  it("collision, no SDP: the business rolls back, applies Meta's webhook and retries with the next versions", async () => {
    const business = new TestBusiness(sim.stunUrl);
    try {
      const call = await audioCall(business);
      sim.collideNextMediaUpdate({ mode: "no-sdp", callId: call.id });
      const lost = await mediaUpdate(call, { from_version: 0, to_version: 1, tracks: [VIDEO_TRACK], session: { sdp_type: "offer", sdp: await business.offerVideo() } });
      expect(lost).toEqual({ status: 200, body: { success: true } });
      expect(call.mediaVersion).toBe(1);
      await business.rollback();

      const meta = await webhookOffer(call, 1);
      await business.answerLocally(meta.sdp);
      const replay = await mediaUpdate(call, { from_version: 0, to_version: 1, tracks: [VIDEO_TRACK], session: { sdp_type: "offer", sdp: await business.offerVideo() } });
      expect((replay.body["error"] as { message: string }).message).toMatch(/current media version is 1/);
      const retry = await mediaUpdate(call, { from_version: 1, to_version: 2, tracks: [VIDEO_TRACK], session: { sdp_type: "offer", sdp: business.pc.localDescription!.sdp } });
      expect(retry.status).toBe(200);
      await business.applyAnswer(parseSdpText(retry));
      expect(call.mediaVersion).toBe(2);

      expect(sim.collisions.at(-1)).toMatchObject({
        callId: call.id,
        mode: "no-sdp",
        order: "answer-first",
        consumerChange: "reoffer",
        businessFromVersion: 0,
        businessToVersion: 1,
        metaVersion: 1,
        webhookStatus: 200,
      });
      expect(call.mediaUpdates.map((u) => [u.version, u.origin, u.reason])).toEqual([
        [1, "meta", "collision"],
        [2, "business", "business-offer"],
      ]);
      business.sendH264(await loadVideoClip({ codec: "H264", width: 320, height: 180, fps: 30, seconds: 4 }));
      await call.consumer.waitForVideoFrames(20, 10_000);
    } finally {
      await business.close();
    }
  });

  it("collision, error, webhook first, while the consumer turns its camera on: both sides end with video both ways", async () => {
    const business = new TestBusiness(sim.stunUrl);
    try {
      const call = await audioCall(business);
      sim.collideNextMediaUpdate({ mode: "error", order: "webhook-first", consumerChange: { startVideo: { codec: "VP9" } } });
      const lost = await mediaUpdate(call, { from_version: 0, to_version: 1, tracks: [VIDEO_TRACK], session: { sdp_type: "offer", sdp: await business.offerVideo() } });
      const answeredAt = Date.now();
      expect(lost.status).toBe(400);
      expect(lost.body["error"]).toMatchObject({ code: 100, message: expect.stringMatching(/Conflicting media status: current media version is 1, request has from_version 0/) });
      await business.rollback();

      const meta = await webhookOffer(call, 1);
      expect(meta.receivedAt).toBeLessThanOrEqual(answeredAt);
      const metaDoc = parseSdp(meta.sdp);
      expect(bundleMids(metaDoc)).toEqual(["0", "1", "2", "3"]);
      expect(rtpMaps(metaDoc.media[3]!).map((r) => r.encoding)).toEqual(["VP9"]);
      await business.answerLocally(meta.sdp);
      const frames = await business.waitForFrames("3", 20, 10_000, "VP9");
      expect(frames.frames.length).toBeGreaterThanOrEqual(20);

      const retry = await mediaUpdate(call, { from_version: 1, to_version: 2, tracks: [VIDEO_TRACK], session: { sdp_type: "offer", sdp: await business.offerVideo() } });
      expect(retry.status).toBe(200);
      await business.applyAnswer(parseSdpText(retry));
      const businessVideoMid = business.videoTransceiver?.mid;
      const consumerAnswer = parseSdp(parseSdpText(retry));
      const answered = consumerAnswer.media.find((m) => mediaMid(m) === businessVideoMid)!;
      expect(mediaDirection(answered)).toBe("recvonly");

      business.sendH264(await loadVideoClip({ codec: "H264", width: 320, height: 180, fps: 30, seconds: 4 }));
      await call.consumer.waitForVideoFrames(20, 10_000);
      expect(call.consumer.videoStats).toMatchObject({ state: "sending", sent: { codec: "VP9" }, received: { codec: "H264" } });
      expect(sim.collisions.at(-1)).toMatchObject({ mode: "error", order: "webhook-first", consumerChange: "start-video", metaVersion: 1, webhookStatus: 200 });
      expect(call.mediaVersion).toBe(2);
    } finally {
      await business.close();
    }
  });
});

function parseSdpText(response: { body: Record<string, unknown> }): string {
  return (response.body["session"] as { sdp_response: { sdp: string } }).sdp_response.sdp;
}
