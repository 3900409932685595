import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MetaSimulator } from "../../sim/index.js";
import { graphPost, sleep, startWhatsAppSim, type WaItem, waitUntil, WaTestBusiness, WaWebhookReceiver } from "../support/whatsapp-business.js";

const APP_SECRET = "wa-inbound-secret";
const TOKEN = "EAAG-wa-inbound-token";
const NUMBER = { wabaId: "102290129340398", phoneNumberId: "106540352242922", displayPhoneNumber: "15550783881" };


describe("WhatsApp user-initiated calls against a raw werift business", () => {
  let receiver: WaWebhookReceiver;
  let sim: MetaSimulator;
  const callsUrl = (): string => `${sim.graphUrl}/v23.0/${NUMBER.phoneNumberId}/calls`;
  const post = (body: Record<string, unknown>): ReturnType<typeof graphPost> => graphPost(callsUrl(), { messaging_product: "whatsapp", ...body }, TOKEN);
  const connectOf = (callId: string): Promise<WaItem> => receiver.waitFor((i) => i.kind === "calls" && i.item["id"] === callId && i.item["event"] === "connect");
  const terminateOf = (callId: string, timeoutMs = 5000): Promise<WaItem> =>
    receiver.waitFor((i) => i.kind === "calls" && i.item["id"] === callId && i.item["event"] === "terminate", timeoutMs);

  beforeAll(async () => {
    ({ receiver, sim } = await startWhatsAppSim(APP_SECRET, TOKEN, { numbers: [NUMBER], acceptWindowMs: 20_000 }));
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  it("offers in the connect webhook, takes pre_accept then the identical accept, and carries tones and DTMF both ways", async () => {
    const call = await sim.placeWhatsAppCall({ toneHz: 440, name: "Ana Souza", fromPhone: "5511987654321" });
    expect(call.connectWebhookStatus).toBe(200);
    const connect = await connectOf(call.id);
    // The WABA envelope.
    const post0 = receiver.posts[connect.post]!.body as Record<string, unknown>;
    expect(post0["object"]).toBe("whatsapp_business_account");
    expect(connect.entryId).toBe(NUMBER.wabaId);
    expect(connect.field).toBe("calls");
    expect(connect.value["messaging_product"]).toBe("whatsapp");
    expect(connect.value["metadata"]).toEqual({ display_phone_number: NUMBER.displayPhoneNumber, phone_number_id: NUMBER.phoneNumberId });
    expect(connect.value["contacts"]).toEqual([{ profile: { name: "Ana Souza" }, wa_id: "5511987654321", user_id: call.user.userId }]);
    expect(call.id).toMatch(/^wacid\./);
    expect(connect.item).toMatchObject({ from: "5511987654321", from_user_id: call.user.userId, to: NUMBER.displayPhoneNumber, direction: "USER_INITIATED" });
    expect(typeof connect.item["timestamp"]).toBe("string");
    const session = connect.item["session"] as { sdp_type: string; sdp: string };
    expect(session.sdp_type).toBe("offer");
    for (const line of ["a=ice-lite", "a=group:BUNDLE audio", "a=mid:audio", "a=setup:actpass", "a=fmtp:111 minptime=10;useinbandfec=1", "a=rtpmap:126 telephone-event/8000"]) {
      expect(session.sdp).toContain(line);
    }
    expect(session.sdp).toMatch(/a=fingerprint:sha-256 /);
    expect(session.sdp).toMatch(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/);

    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const answer = await business.answer(session.sdp);
      expect(answer).toContain("a=setup:active");
      const pre = await post({ call_id: call.id, action: "pre_accept", session: { sdp_type: "answer", sdp: answer } });
      expect(pre).toEqual({ status: 200, body: { messaging_product: "whatsapp", success: true } });
      expect(call.phase).toBe("pre_accepted");
      // ICE and DTLS complete during pre_accept; the user's voice waits for accept.
      await waitUntil(() => call.consumer.state === "connected", 5000, "DTLS after pre_accept");
      await sleep(200);
      expect(call.consumer.stats.packetsSent).toBe(0);

      const accept = await post({ call_id: call.id, action: "accept", session: { sdp_type: "answer", sdp: answer }, biz_opaque_callback_data: "corr-42" });
      expect(accept.status).toBe(200);
      expect(call.businessPacketsBeforeAccept).toBe(0);
      business.speak(1000);
      await call.waitForState("media", 5000);
      await waitUntil(() => business.packetsReceived > 60 && call.consumer.stats.packetsReceived > 60, 5000, "a second of audio each way");
      expect(Math.abs(call.consumer.detectTone(1).hz - 1000)).toBeLessThan(30);
      expect(Math.abs(business.heard().hz - 440)).toBeLessThan(30);

      await call.consumer.sendDtmf("7", 200);
      await waitUntil(() => business.dtmf.length > 0, 3000, "the user's key at the business");
      expect(business.dtmf[0]).toEqual({ event: 7, payloadType: 126 });
      business.pressKey(11);
      await waitUntil(() => call.consumer.stats.telephoneEvents.length > 0, 3000, "the business's key at the user");
      expect(call.consumer.stats.telephoneEvents[0]?.event).toBe(11);
      // RTCP from the business counts as activity for the 30 s rule.
      await waitUntil(() => call.consumer.stats.rtcpReceived > 0, 5000, "RTCP from the business");

      const end = await post({ call_id: call.id, action: "terminate" });
      expect(end.status).toBe(200);
      const terminate = await terminateOf(call.id);
      expect(terminate.item).toMatchObject({ event: "terminate", status: "COMPLETED", direction: "USER_INITIATED", biz_opaque_callback_data: "corr-42" });
      expect(typeof terminate.item["start_time"]).toBe("string");
      expect(typeof terminate.item["duration"]).toBe("number");
      expect(terminate.value["errors"]).toBeUndefined();
      expect(call.end).toMatchObject({ by: "business", reason: "business-terminated", status: "COMPLETED" });
      expect(call.actionLog.map((a) => `${a.action}:${a.outcome}`)).toEqual(["pre_accept:ok", "accept:ok", "terminate:ok"]);
      expect(call.sdps.acceptAnswer).toBe(answer);
    } finally {
      await business.close();
    }
  });

  it("refuses an accept whose SDP differs from pre_accept's, and answers that are not WhatsApp-valid, with code 100 and details", async () => {
    const call = await sim.placeWhatsAppCall({ fromPhone: null, username: "ana.s" });
    const connect = await connectOf(call.id);
    expect(connect.item["from"]).toBeUndefined();
    expect(connect.value["contacts"]).toEqual([{ profile: { name: "WhatsApp User", username: "ana.s" }, user_id: call.user.userId }]);
    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const answer = await business.answer((connect.item["session"] as { sdp: string }).sdp);
      const bad = async (sdp: string, pattern: RegExp, action = "pre_accept"): Promise<void> => {
        const res = await post({ call_id: call.id, action, session: { sdp_type: "answer", sdp } });
        expect(res.status).toBe(400);
        const error = res.body["error"] as { code: number; error_data: { messaging_product: string; details: string }; fbtrace_id: string };
        expect(error.code).toBe(100);
        expect(error.error_data.messaging_product).toBe("whatsapp");
        expect(error.error_data.details).toMatch(pattern);
      };
      await bad(answer.replace("a=setup:active", "a=setup:passive"), /setup:active/);
      await bad(answer.replace(/a=fingerprint:sha-256/g, "a=fingerprint:sha-1"), /sha-256/);
      await bad(answer.replace(/a=mid:audio/g, "a=mid:0").replace("BUNDLE audio", "BUNDLE 0"), /mid:audio/);
      await bad(answer.replace(/a=candidate:.*\r\n/g, ""), /candidate/);
      const missing = await graphPost(callsUrl(), { call_id: call.id, action: "pre_accept", session: { sdp_type: "answer", sdp: answer } }, TOKEN);
      expect(missing.status).toBe(400);
      expect((missing.body["error"] as { error_data: { details: string } }).error_data.details).toMatch(/messaging_product/);
      const tooLong = await post({ call_id: call.id, action: "accept", session: { sdp_type: "answer", sdp: answer }, biz_opaque_callback_data: "x".repeat(513) });
      expect(tooLong.status).toBe(400);

      expect((await post({ call_id: call.id, action: "pre_accept", session: { sdp_type: "answer", sdp: answer } })).status).toBe(200);
      // Same answer with another session version: not byte-identical.
      await bad(answer.replace(/^o=(\S+) (\S+) (\d+)/m, (_m, user: string, id: string, version: string) => `o=${user} ${id} ${Number(version) + 1}`), /identical/, "accept");
      expect(call.phase).toBe("pre_accepted");
      expect(call.actionLog.filter((a) => a.outcome === "error").every((a) => a.errorCode === 100)).toBe(true);

      const reject = await post({ call_id: call.id, action: "reject" });
      expect(reject.status).toBe(200);
      const terminate = await terminateOf(call.id);
      expect(terminate.item).toMatchObject({ status: "COMPLETED" });
      expect(terminate.item["duration"]).toBeUndefined();
      expect(call.end).toMatchObject({ by: "business", reason: "business-rejected" });
      const again = await post({ call_id: call.id, action: "terminate" });
      expect(again.status).toBe(400);
    } finally {
      await business.close();
    }
  });

  it("takes pre_accept and accept sent back to back (as some clients do) and connects", async () => {
    const call = await sim.placeWhatsAppCall();
    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const answer = await business.answer(((await connectOf(call.id)).item["session"] as { sdp: string }).sdp);
      const session = { sdp_type: "answer", sdp: answer };
      const [pre, accept] = await Promise.all([
        post({ call_id: call.id, action: "pre_accept", session }),
        post({ call_id: call.id, action: "accept", session }),
      ]);
      expect([pre.status, accept.status]).toEqual([200, 200]);
      expect(call.state).toBe("accepted");
      business.speak(500);
      await call.waitForState("media", 5000);
      await call.hangup();
    } finally {
      await business.close();
    }
  });
});
