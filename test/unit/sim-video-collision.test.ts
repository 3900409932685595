import { afterEach, describe, expect, it } from "vitest";
import { tracksOnlyVersionError } from "../../sim/call-rules.js";
import { GraphApiError, MessengerCallingCode } from "../../sim/graph-errors.js";
import { parseCallsBody } from "../../sim/graph-request.js";
import { MetaSimulator, type SimCall } from "../../sim/index.js";
import { collisionAnswer, CollisionSwitch, consumerChangeKind } from "../../sim/media-collision.js";
import { graphPost, VALID_OFFER, WebhookReceiver } from "./sim-helpers.js";

const APP_SECRET = "collision-secret";
const PAGE_ID = "1234567890";
const TOKEN = "EAAB-collision-token";
const AUDIO_TRACK = { msid: "stream", label: "default_audio", status: "enabled" };

function graphError(run: () => unknown): GraphApiError {
  try {
    run();
  } catch (error) {
    if (error instanceof GraphApiError) return error;
    throw error;
  }
  throw new Error("expected a Graph error");
}

describe("collision rules", () => {
  it("answers the losing request with 200 and no SDP, or the conflicting media status error at Meta's new version", () => {
    expect(collisionAnswer("no-sdp", 3, 2)).toEqual({ success: true });
    const error = graphError(() => collisionAnswer("error", 3, 2));
    expect(error.code).toBe(100);
    expect(error.httpStatus).toBe(400);
    expect(error.message).toMatch(/Conflicting media status: current media version is 3, request has from_version 2/);
  });

  it("takes each armed collision once, for its call or for any call, in order", () => {
    const armed = new CollisionSwitch();
    armed.arm({ mode: "error", callId: "c_2" });
    armed.arm({ mode: "no-sdp" });
    expect(armed.take("c_1")).toEqual({ mode: "no-sdp" });
    expect(armed.take("c_1")).toBeUndefined();
    expect(armed.take("c_2")).toEqual({ mode: "error", callId: "c_2" });
    expect(armed.pending).toBe(0);
  });

  it("names the consumer's change", () => {
    expect(consumerChangeKind("reoffer")).toBe("reoffer");
    expect(consumerChangeKind("stopVideo")).toBe("stop-video");
    expect(consumerChangeKind({ startVideo: { codec: "VP8" } })).toBe("start-video");
  });

  it("checks from_version of a tracks-only update against the current version, which it keeps", () => {
    expect(tracksOnlyVersionError(2, undefined)).toBeUndefined();
    expect(tracksOnlyVersionError(2, 2)).toBeUndefined();
    expect(tracksOnlyVersionError(2, 1)?.message).toMatch(/current media version is 2, request has from_version 1/);
  });

  it("parses a media_update with tracks and no session", () => {
    const tracks = [{ msid: "v", label: "DEFAULT_VIDEO", status: "DISABLED" }];
    expect(parseCallsBody({ call_id: "c_1", action: "media_update", tracks })).toEqual({
      action: "media_update",
      callId: "c_1",
      session: undefined,
      fromVersion: undefined,
      toVersion: undefined,
      tracks: [{ msid: "v", label: "default_video", status: "disabled" }],
    });
    expect(parseCallsBody({ call_id: "c_1", action: "media_update", tracks, from_version: "2" })).toMatchObject({ fromVersion: 2 });
    expect(graphError(() => parseCallsBody({ call_id: "c_1", action: "media_update", tracks: [] })).code).toBe(MessengerCallingCode.invalidConnection);
    expect(graphError(() => parseCallsBody({ call_id: "c_1", action: "media_update" })).code).toBe(MessengerCallingCode.invalidConnection);
    expect(graphError(() => parseCallsBody({ call_id: "c_1", action: "media_update", tracks: "v" })).code).toBe(100);
  });
});

describe("collisions in the simulator", () => {
  let receiver: WebhookReceiver | undefined;
  let sim: MetaSimulator | undefined;

  afterEach(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  async function acceptedCall(): Promise<{ sim: MetaSimulator; receiver: WebhookReceiver; call: SimCall; update: (body: Record<string, unknown>) => ReturnType<typeof graphPost> }> {
    receiver = await WebhookReceiver.start(APP_SECRET);
    sim = await MetaSimulator.start({ appSecret: APP_SECRET, pageId: PAGE_ID, pageAccessToken: TOKEN, webhookUrl: receiver.url });
    const call = await sim.placeCall();
    const url = `${sim.graphUrl}/v26.0/${PAGE_ID}/calls`;
    const accept = await graphPost(url, { call_id: call.id, action: "accept", session: { sdp_type: "offer", sdp: VALID_OFFER } }, TOKEN);
    expect(accept.status).toBe(200);
    const update = (body: Record<string, unknown>): ReturnType<typeof graphPost> =>
      graphPost(url, { call_id: call.id, action: "media_update", session: { sdp_type: "offer", sdp: VALID_OFFER }, tracks: [AUDIO_TRACK], ...body }, TOKEN);
    return { sim, receiver, call, update };
  }

  function mediaUpdateVersions(r: WebhookReceiver, callId: string): number[] {
    return r
      .events()
      .filter((e) => e["id"] === callId && e["event"] === "media_update")
      .map((e) => (e["session"] as { version: number }).version);
  }

  it("no-sdp: 200 without a session, Meta's signed webhook with the next version, stale retries refused", async () => {
    const { sim, receiver, call, update } = await acceptedCall();
    sim.collideNextMediaUpdate({ mode: "no-sdp" });
    const lost = await update({ from_version: 0, to_version: 1 });
    expect(lost).toEqual({ status: 200, body: { success: true } });
    expect(call.mediaVersion).toBe(1);
    await receiver.waitForEvent((e) => e["id"] === call.id && e["event"] === "media_update");
    expect(mediaUpdateVersions(receiver, call.id)).toEqual([1]);
    expect(receiver.received.every((w) => w.signatureValid)).toBe(true);

    const stale = await update({ from_version: 0, to_version: 1 });
    expect((stale.body["error"] as { message: string }).message).toMatch(/current media version is 1, request has from_version 0/);
    expect(sim.collisions).toHaveLength(1);
    expect(sim.collisions[0]).toMatchObject({ callId: call.id, mode: "no-sdp", order: "answer-first", consumerChange: "reoffer", businessFromVersion: 0, businessToVersion: 1, metaVersion: 1 });
  });

  it("error: only a request that would have succeeded collides; tracks-only requests and other calls pass by", async () => {
    const { sim, receiver, call, update } = await acceptedCall();
    sim.collideNextMediaUpdate({ mode: "error", callId: "c_other" });
    sim.collideNextMediaUpdate({ mode: "error", callId: call.id, order: "webhook-first" });

    const badVersions = await update({ from_version: 0, to_version: 2 });
    expect((badVersions.body["error"] as { message: string }).message).toMatch(/current media version is 0, request has from_version 0/);
    const badMsid = await update({ from_version: 0, to_version: 1, tracks: [{ ...AUDIO_TRACK, msid: "unknown" }] });
    expect((badMsid.body["error"] as { message: string }).message).toMatch(/Invalid track msid/);
    const tracksOnly = await graphPost(`${sim.graphUrl}/v26.0/${PAGE_ID}/calls`, { call_id: call.id, action: "media_update", tracks: [AUDIO_TRACK] }, TOKEN);
    expect(tracksOnly).toEqual({ status: 200, body: { success: true } });
    expect(sim.collisions).toHaveLength(0);

    const lost = await update({ from_version: 0, to_version: 1 });
    expect(lost.status).toBe(400);
    expect(lost.body["error"]).toMatchObject({ code: 100, message: expect.stringMatching(/Conflicting media status: current media version is 1, request has from_version 0/) });
    // Webhook first: it was answered before the losing request got its error.
    expect(mediaUpdateVersions(receiver, call.id)).toEqual([1]);
    expect(sim.collisions[0]).toMatchObject({ mode: "error", order: "webhook-first", webhookStatus: 200, metaVersion: 1 });
    expect(call.mediaUpdates.map((u) => [u.version, u.origin, u.reason])).toEqual([
      [0, "business", "business-tracks"],
      [1, "meta", "collision"],
    ]);
  });

  it("a collision can be the consumer turning the camera on: Meta's webhook then carries the video m-lines", async () => {
    const { sim, receiver, call, update } = await acceptedCall();
    sim.collideNextMediaUpdate({ mode: "no-sdp", consumerChange: { startVideo: { codec: "VP8" } } });
    await update({ from_version: 0, to_version: 1 });
    const event = await receiver.waitForEvent((e) => e["id"] === call.id && e["event"] === "media_update");
    const sdp = (event["session"] as { sdp_renegotiation: { sdp: string } }).sdp_renegotiation.sdp;
    expect(sdp).toContain("a=group:BUNDLE 0 1 2 3");
    expect(sdp).toContain("VP8/90000");
    expect(sim.collisions[0]?.consumerChange).toBe("start-video");
    expect(call.consumer.videoStats.state).toBe("offered");
  });
});
