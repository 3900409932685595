import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MetaSimulator, WhatsAppCall } from "../../sim/index.js";
import { graphGet, graphPost, startWhatsAppSim, type WaItem, waitUntil, WaTestBusiness, WaWebhookReceiver } from "../support/whatsapp-business.js";

const APP_SECRET = "wa-outbound-secret";
const TOKEN = "EAAG-wa-outbound-token";
const NUMBER = { wabaId: "203300000000001", phoneNumberId: "203300000000101", displayPhoneNumber: "15550101010" };


interface GraphError {
  code: number;
  error_data: { messaging_product: string; details: string };
}

describe("WhatsApp business-initiated calls and permissions against a raw werift business", () => {
  let receiver: WaWebhookReceiver;
  let sim: MetaSimulator;
  const base = (): string => `${sim.graphUrl}/v23.0/${NUMBER.phoneNumberId}`;
  const post = (edge: string, body: Record<string, unknown>): ReturnType<typeof graphPost> => graphPost(`${base()}/${edge}`, { messaging_product: "whatsapp", ...body }, TOKEN);
  const itemOf = (callId: string, test: (i: WaItem) => boolean): Promise<WaItem> => receiver.waitFor((i) => i.item["id"] === callId && test(i));

  beforeAll(async () => {
    ({ receiver, sim } = await startWhatsAppSim(APP_SECRET, TOKEN, { numbers: [NUMBER], outboundPickup: "manual" }));
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  async function connect(business: WaTestBusiness, to: Record<string, string>, extra: Record<string, unknown> = {}): Promise<{ call: WhatsAppCall; answer: string }> {
    const res = await post("calls", { action: "connect", ...to, session: { sdp_type: "offer", sdp: await business.offer() }, ...extra });
    expect(res.status).toBe(200);
    const calls = res.body["calls"] as Array<{ id: string }>;
    expect(Object.keys(res.body).sort()).toEqual(["calls", "messaging_product"]);
    const call = sim.whatsapp.getCall(calls[0]!.id)!;
    const webhook = await itemOf(call.id, (i) => i.item["event"] === "connect");
    const session = webhook.item["session"] as { sdp_type: string; sdp: string };
    expect(session.sdp_type).toBe("answer");
    expect((webhook.item["connection"] as { webrtc: { sdp: string } }).webrtc.sdp).toBe(session.sdp);
    return { call, answer: session.sdp };
  }

  it("connect: the answer comes by connect webhook (setup:active), then RINGING, ACCEPTED on pickup, tones both ways, the user hangs up", async () => {
    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const { call, answer } = await connect(business, { to: "447700900123" }, { biz_opaque_callback_data: "out-7" });
      const connectItem = await itemOf(call.id, (i) => i.item["event"] === "connect");
      expect(connectItem.item).toMatchObject({ direction: "BUSINESS_INITIATED", to: "447700900123", from: NUMBER.displayPhoneNumber, biz_opaque_callback_data: "out-7" });
      expect(connectItem.item["to_user_id"]).toBe(call.user.userId);
      expect(answer).toContain("a=setup:active");
      expect(answer).toContain("a=ice-lite");
      await business.applyAnswer(answer);

      const ringing = await itemOf(call.id, (i) => i.kind === "statuses" && i.item["status"] === "RINGING");
      expect(ringing.item).toMatchObject({ type: "call", recipient_id: "447700900123", recipient_user_id: call.user.userId, biz_opaque_callback_data: "out-7" });
      expect(typeof ringing.item["timestamp"]).toBe("string");
      // Media can connect while ringing; the user's voice starts on pickup.
      await waitUntil(() => call.consumer.state === "connected", 5000, "DTLS while ringing");
      expect(call.consumer.stats.packetsSent).toBe(0);

      await call.answer();
      await itemOf(call.id, (i) => i.kind === "statuses" && i.item["status"] === "ACCEPTED");
      business.speak(1000);
      await call.waitForState("media", 5000);
      await waitUntil(() => business.packetsReceived > 60 && call.consumer.stats.packetsReceived > 60, 5000, "audio each way");
      expect(Math.abs(call.consumer.detectTone(1).hz - 1000)).toBeLessThan(30);
      expect(Math.abs(business.heard().hz - 440)).toBeLessThan(30);
      await call.consumer.sendDtmf("#", 200);
      business.pressKey(4);
      await waitUntil(() => business.dtmf.length > 0 && call.consumer.stats.telephoneEvents.length > 0, 3000, "a key each way");
      expect(business.dtmf[0]).toEqual({ event: 11, payloadType: 126 });
      expect(call.consumer.stats.telephoneEvents[0]?.event).toBe(4);

      expect(await call.hangup()).toBe(200);
      const terminate = await itemOf(call.id, (i) => i.item["event"] === "terminate");
      expect(terminate.item).toMatchObject({ status: "COMPLETED", direction: "BUSINESS_INITIATED", biz_opaque_callback_data: "out-7" });
      expect(typeof terminate.item["duration"]).toBe("number");
      expect(call.statuses).toEqual(["RINGING", "ACCEPTED"]);
      expect(call.end).toMatchObject({ by: "consumer", reason: "consumer-hung-up" });
    } finally {
      await business.close();
    }
  });

  it("decline: REJECTED then terminate; a second connect to a ringing user is 138003", async () => {
    const business = new WaTestBusiness(sim.stunUrl);
    const second = new WaTestBusiness(sim.stunUrl);
    try {
      const { call } = await connect(business, { recipient: "US.1000000000000000001" });
      expect(call.user.waId).toBeUndefined();
      await itemOf(call.id, (i) => i.item["status"] === "RINGING");
      const duplicate = await post("calls", { action: "connect", recipient: "US.1000000000000000001", session: { sdp_type: "offer", sdp: await second.offer() } });
      expect(duplicate.status).toBe(400);
      expect((duplicate.body["error"] as GraphError).code).toBe(138003);

      await call.decline();
      await itemOf(call.id, (i) => i.item["status"] === "REJECTED");
      const terminate = await itemOf(call.id, (i) => i.item["event"] === "terminate");
      expect(terminate.item["duration"]).toBeUndefined();
      expect(terminate.item["to"]).toBeUndefined();
      expect(call.statuses).toEqual(["RINGING", "REJECTED"]);
      expect(call.end).toMatchObject({ by: "consumer", reason: "consumer-declined" });
    } finally {
      await business.close();
      await second.close();
    }
  });

  it("permissions: lookup by phone and BSUID, 138006 without one, a request per day with the reply by messages webhook, counters reset by a connected call", async () => {
    const phone = "5215512345678";
    sim.whatsapp.setPermission(phone, "no_permission");
    sim.whatsapp.setPermissionReply({ response: "reject" });
    const lookup = async (query: string): Promise<Record<string, unknown>> => {
      const res = await graphGet(`${base()}/call_permissions?${query}`, TOKEN);
      expect(res.status).toBe(200);
      return res.body;
    };
    const before = await lookup(`user_wa_id=${phone}`);
    expect(before["permission"]).toEqual({ status: "no_permission" });
    expect(before["actions"]).toEqual([
      {
        action_name: "send_call_permission_request",
        can_perform_action: true,
        limits: [
          { time_period: "PT24H", max_allowed: 1, current_usage: 0 },
          { time_period: "P7D", max_allowed: 2, current_usage: 0 },
        ],
      },
      { action_name: "start_call", can_perform_action: false, limits: [{ time_period: "PT24H", max_allowed: 100, current_usage: 0 }] },
    ]);

    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const refused = await post("calls", { action: "connect", to: phone, session: { sdp_type: "offer", sdp: await business.offer() } });
      expect(refused.status).toBe(401);
      expect((refused.body["error"] as GraphError).code).toBe(138006);
      expect((refused.body["error"] as GraphError).error_data.messaging_product).toBe("whatsapp");
    } finally {
      await business.close();
    }

    const request = {
      recipient_type: "individual",
      to: phone,
      type: "interactive",
      interactive: { type: "call_permission_request", action: { name: "call_permission_request" }, body: { text: "May we call you?" } },
    };
    const sent = await post("messages", request);
    expect(sent.status).toBe(200);
    const messageId = (sent.body["messages"] as Array<{ id: string }>)[0]!.id;
    expect(messageId).toMatch(/^wamid\./);
    const reply = await receiver.waitFor((i) => i.kind === "messages" && (i.item["context"] as { id: string } | undefined)?.id === messageId);
    expect(reply.field).toBe("messages");
    expect(reply.item["interactive"]).toMatchObject({ type: "call_permission_reply", call_permission_reply: { response: "reject", is_permanent: false } });
    const second = await post("messages", request);
    expect(second.status).toBe(400);
    expect((second.body["error"] as GraphError).code).toBe(138009);
    const limited = await lookup(`user_wa_id=${phone}`);
    const requestAction = (limited["actions"] as Array<{ can_perform_action: boolean; limits: Array<Record<string, unknown>> }>)[0]!;
    expect(requestAction.can_perform_action).toBe(false);
    expect(requestAction.limits[0]).toMatchObject({ current_usage: 1 });
    expect(typeof requestAction.limits[0]!["limit_expiration_time"]).toBe("number");

    // Granted (as if by another channel), a connected call resets the request counters.
    sim.whatsapp.setPermission(phone, "temporary");
    const caller = new WaTestBusiness(sim.stunUrl);
    try {
      const { call, answer } = await connect(caller, { to: phone });
      await caller.applyAnswer(answer);
      await itemOf(call.id, (i) => i.item["status"] === "RINGING");
      await call.answer();
      await call.hangup();
    } finally {
      await caller.close();
    }
    const userId = sim.whatsapp.calls().find((c) => c.user.waId === phone)!.user.userId;
    const after = await lookup(`recipient=${encodeURIComponent(userId)}`);
    expect(after["permission"]).toMatchObject({ status: "temporary" });
    const actions = after["actions"] as Array<{ action_name: string; can_perform_action: boolean; limits: Array<{ current_usage: number }> }>;
    expect(actions[0]!.limits.map((l) => l.current_usage)).toEqual([0, 0]);
    expect(actions[1]).toMatchObject({ action_name: "start_call", can_perform_action: true });
    expect(actions[1]!.limits[0]!.current_usage).toBe(1);

    sim.whatsapp.setPermission(phone, "no_permission");
    sim.whatsapp.setPermissionReply({ response: "accept", permanent: true });
    const granted = await post("messages", { ...request, to: undefined, recipient: userId });
    expect(granted.status).toBe(200);
    const accepted = await receiver.waitFor((i) => i.kind === "messages" && (i.item["interactive"] as { call_permission_reply: { response: string } }).call_permission_reply.response === "accept");
    expect(accepted.item["from_user_id"]).toBe(userId);
    expect((await lookup(`user_wa_id=${phone}`))["permission"]).toEqual({ status: "permanent" });
  });
});
