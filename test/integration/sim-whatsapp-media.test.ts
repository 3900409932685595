import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MetaSimulator } from "../../sim/index.js";
import { graphPost, SdesTestBusiness, sleep, startWhatsAppSim, type WaItem, waitUntil, WaTestBusiness, WaWebhookReceiver } from "../support/whatsapp-business.js";

const APP_SECRET = "wa-media-secret";
const TOKEN = "EAAG-wa-media-token";
const DTLS_NUMBER = { wabaId: "304400000000001", phoneNumberId: "304400000000101", displayPhoneNumber: "15550202020" };
const SDES_NUMBER = { wabaId: "304400000000001", phoneNumberId: "304400000000102", displayPhoneNumber: "15550303030", srtpKeyExchange: "SDES" as const };


describe("WhatsApp media: SDES keying, the accept window and the no-media hang-ups (shortened)", () => {
  let receiver: WaWebhookReceiver;
  let sim: MetaSimulator;
  const post = (phoneNumberId: string, body: Record<string, unknown>): ReturnType<typeof graphPost> =>
    graphPost(`${sim.graphUrl}/v23.0/${phoneNumberId}/calls`, { messaging_product: "whatsapp", ...body }, TOKEN);
  const offerOf = async (callId: string): Promise<string> =>
    ((await receiver.waitFor((i) => i.item["id"] === callId && i.item["event"] === "connect")).item["session"] as { sdp: string }).sdp;
  const terminateOf = (callId: string, timeoutMs: number): Promise<WaItem> =>
    receiver.waitFor((i) => i.item["id"] === callId && i.item["event"] === "terminate", timeoutMs);

  beforeAll(async () => {
    ({ receiver, sim } = await startWhatsAppSim(APP_SECRET, TOKEN, { numbers: [DTLS_NUMBER, SDES_NUMBER], acceptWindowMs: 2500, mediaStartTimeoutMs: 3000, mediaIdleTimeoutMs: 1500, outboundPickup: { afterMs: 50 } }));
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  it("SDES user call: RTP/SAVP with a=crypto and no ICE/DTLS; the consumer waits for the business's first SRTP packet, then tones flow both ways", async () => {
    const call = await sim.placeWhatsAppCall({ phoneNumberId: SDES_NUMBER.phoneNumberId, toneHz: 600 });
    const offer = await offerOf(call.id);
    expect(offer).toMatch(/m=audio \d+ RTP\/SAVP 111 126/);
    expect(offer).toMatch(/a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/]{40}/);
    expect(offer).not.toMatch(/a=ice-|a=fingerprint|a=setup/);
    const business = new SdesTestBusiness();
    try {
      const port = await business.bind();
      business.usePeer(offer);
      const answer = business.sdp(port, "audio");
      expect((await post(SDES_NUMBER.phoneNumberId, { call_id: call.id, action: "pre_accept", session: { sdp_type: "answer", sdp: answer } })).status).toBe(200);
      expect((await post(SDES_NUMBER.phoneNumberId, { call_id: call.id, action: "accept", session: { sdp_type: "answer", sdp: answer } })).status).toBe(200);
      await sleep(300);
      // Accepted, but nothing from the business yet: the consumer stays silent.
      expect(call.consumer.stats.packetsSent).toBe(0);
      business.speak(1000);
      await call.waitForState("media", 5000);
      await waitUntil(() => business.packetsReceived > 60 && call.consumer.stats.packetsReceived > 60, 5000, "SRTP each way");
      expect(Math.abs(call.consumer.detectTone(1).hz - 1000)).toBeLessThan(30);
      expect(Math.abs(business.heard().hz - 600)).toBeLessThan(30);
      expect(business.authFailures).toBe(0);
      expect(call.consumer.stats.unprotectErrors).toBe(0);
      // A DTLS answer is not what an SDES number takes.
      expect(call.consumer.keyExchange).toBe("SDES");
      await call.hangup();
    } finally {
      await business.close();
    }
  });

  it("SDES business call: the consumer answers the business's SDES offer and only sends after the business does", async () => {
    const business = new SdesTestBusiness();
    try {
      const port = await business.bind();
      const res = await post(SDES_NUMBER.phoneNumberId, { action: "connect", to: "33612345678", session: { sdp_type: "offer", sdp: business.sdp(port, "0") } });
      expect(res.status).toBe(200);
      const callId = (res.body["calls"] as Array<{ id: string }>)[0]!.id;
      const answer = ((await receiver.waitFor((i) => i.item["id"] === callId && i.item["event"] === "connect")).item["session"] as { sdp: string }).sdp;
      expect(answer).toMatch(/RTP\/SAVP/);
      expect(answer).toContain("a=mid:0");
      business.usePeer(answer);
      const call = sim.whatsapp.getCall(callId)!;
      await call.waitForState("accepted", 3000);
      await sleep(200);
      expect(call.consumer.stats.packetsSent).toBe(0);
      business.speak(700);
      await waitUntil(() => business.packetsReceived > 40 && call.consumer.stats.packetsReceived > 40, 5000, "SRTP each way");
      expect(Math.abs(business.heard().hz - 440)).toBeLessThan(30);
      expect(Math.abs(call.consumer.detectTone(0.5).hz - 700)).toBeLessThan(30);
      await post(SDES_NUMBER.phoneNumberId, { call_id: callId, action: "terminate" });
      await terminateOf(callId, 3000);
    } finally {
      await business.close();
    }
  });

  it("no accept within the window: terminate FAILED with errors[] 138007; an sdp_type offer is taken but never applied", async () => {
    const call = await sim.placeWhatsAppCall({ phoneNumberId: DTLS_NUMBER.phoneNumberId });
    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const answer = await business.answer(await offerOf(call.id));
      const wrongType = await post(DTLS_NUMBER.phoneNumberId, { call_id: call.id, action: "pre_accept", session: { sdp_type: "offer", sdp: answer } });
      expect(wrongType.status).toBe(200);
      expect(call.phase).toBe("ringing");
      const terminate = await terminateOf(call.id, 8000);
      expect(terminate.item["status"]).toBe("FAILED");
      expect(terminate.item["duration"]).toBeUndefined();
      const errors = terminate.value["errors"] as Array<{ code: number; href: string; error_data: { details: string } }>;
      expect(errors[0]?.code).toBe(138007);
      expect(errors[0]?.error_data.details).toMatch(/accept/);
      expect(call.end).toMatchObject({ by: "meta", reason: "accept-timeout", errorCode: 138007 });
      expect(call.actionLog[0]).toMatchObject({ action: "pre_accept", sdpType: "offer", outcome: "ok" });
    } finally {
      await business.close();
    }
  });

  it("accepted but no media from the business: the user hangs up (FAILED, 138021)", async () => {
    const call = await sim.placeWhatsAppCall({ phoneNumberId: DTLS_NUMBER.phoneNumberId });
    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const answer = await business.answer(await offerOf(call.id));
      expect((await post(DTLS_NUMBER.phoneNumberId, { call_id: call.id, action: "accept", session: { sdp_type: "answer", sdp: answer } })).status).toBe(200);
      const terminate = await terminateOf(call.id, 8000);
      expect(terminate.item["status"]).toBe("FAILED");
      expect((terminate.value["errors"] as Array<{ code: number }>)[0]?.code).toBe(138021);
      expect(call.end).toMatchObject({ by: "consumer", reason: "media-start-timeout" });
    } finally {
      await business.close();
    }
  });

  it("the business falls silent mid-call (no RTP, no RTCP): the user hangs up (FAILED, 138021)", async () => {
    const call = await sim.placeWhatsAppCall({ phoneNumberId: DTLS_NUMBER.phoneNumberId });
    const business = new WaTestBusiness(sim.stunUrl);
    const answer = await business.answer(await offerOf(call.id));
    expect((await post(DTLS_NUMBER.phoneNumberId, { call_id: call.id, action: "accept", session: { sdp_type: "answer", sdp: answer } })).status).toBe(200);
    business.speak(1000);
    await call.waitForState("media", 5000);
    // Gone without a terminate: its peer connection (RTP and RTCP) stops.
    await business.close();
    const terminate = await terminateOf(call.id, 8000);
    expect(terminate.item["status"]).toBe("FAILED");
    expect((terminate.value["errors"] as Array<{ code: number; error_data: { details: string } }>)[0]).toMatchObject({ code: 138021 });
    expect(call.end).toMatchObject({ by: "consumer", reason: "media-idle-timeout" });
    expect(typeof terminate.item["duration"]).toBe("number");
  });
});
