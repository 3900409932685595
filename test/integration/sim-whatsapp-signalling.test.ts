import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchesOf, MAX_UPDATES_PER_POST, MetaSimulator, whatsAppPayload, WhatsAppPermissions, type WaUpdate } from "../../sim/index.js";
import { graphGet, graphPost, waitUntil, WaTestBusiness, WaWebhookReceiver } from "../support/whatsapp-business.js";

const APP_SECRET = "wa-signalling-secret";
const TOKEN = "EAAG-page-and-default-token";
const OTHER_TOKEN = "EAAG-second-number-token";
const PAGE_ID = "1234567890";
const FIRST = { wabaId: "405500000000001", phoneNumberId: "405500000000101", displayPhoneNumber: "15550404040" };
const SECOND = { wabaId: "405500000000002", phoneNumberId: "405500000000202", displayPhoneNumber: "15550505050", accessToken: OTHER_TOKEN };
const THIRD = { wabaId: "405500000000002", phoneNumberId: "405500000000303", displayPhoneNumber: "15550606060", maxConcurrentCalls: 1 };


interface GraphError {
  message: string;
  type: string;
  code: number;
  error_data?: { messaging_product: string; details: string };
  fbtrace_id: string;
}

describe("WhatsApp signalling: envelope and signature, batching, injected failures, rate and SIP errors", () => {
  let receiver: WaWebhookReceiver;
  let sim: MetaSimulator;
  const url = (number: { phoneNumberId: string }, edge: string): string => `${sim.graphUrl}/v23.0/${number.phoneNumberId}/${edge}`;

  beforeAll(async () => {
    receiver = await WaWebhookReceiver.start(APP_SECRET);
    sim = await MetaSimulator.start({
      appSecret: APP_SECRET,
      pageId: PAGE_ID,
      pageAccessToken: TOKEN,
      webhookUrl: receiver.url,
      whatsapp: { numbers: [FIRST, SECOND, THIRD], permissionsApiRatePerSecond: 3 },
    });
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  it("signs WhatsApp webhooks like Messenger's and sends both products to the one webhook URL", async () => {
    const wa = await sim.placeWhatsAppCall({ name: "Zoë" });
    const messenger = await sim.placeCall();
    await receiver.waitFor((i) => i.item["id"] === wa.id);
    const waPost = receiver.posts.find((p) => p.rawBody.includes(wa.id))!;
    const pagePost = receiver.posts.find((p) => p.rawBody.includes(messenger.id))!;
    for (const p of [waPost, pagePost]) {
      expect(p.signatureValid).toBe(true);
      expect(p.headers["x-hub-signature-256"]).toBe(`sha256=${createHmac("sha256", APP_SECRET).update(p.rawBody).digest("hex")}`);
    }
    // Escaped unicode, as Meta signs it: a re-serialized body would not match.
    expect(waPost.rawBody).toContain("Zo\\u00eb");
    expect((pagePost.body as { object: string }).object).toBe("page");
    expect((waPost.body as { object: string }).object).toBe("whatsapp_business_account");
    await sim.whatsapp.getCall(wa.id)!.hangup();
    await messenger.hangup();
  });

  it("holds updates of different calls and numbers and flushes them in one POST (one entry per WABA), or as merged values", async () => {
    sim.whatsapp.holdWebhooks();
    const placing = [sim.placeWhatsAppCall(), sim.placeWhatsAppCall({ phoneNumberId: SECOND.phoneNumberId }), sim.placeWhatsAppCall()];
    await waitUntil(() => sim.whatsapp.heldWebhooks === 3, 5000, "three held connects");
    const postsBefore = receiver.posts.length;
    expect(await sim.whatsapp.flushWebhooks()).toEqual([200]);
    const calls = await Promise.all(placing);
    expect(receiver.posts.length).toBe(postsBefore + 1);
    const batch = receiver.posts.at(-1)!.body as { entry: Array<{ id: string; changes: Array<{ field: string; value: { metadata: { phone_number_id: string }; calls: Array<{ id: string }> } }> }> };
    expect(batch.entry.map((e) => e.id)).toEqual([FIRST.wabaId, SECOND.wabaId]);
    expect(batch.entry[0]!.changes.map((c) => c.value.calls[0]!.id)).toEqual([calls[0]!.id, calls[2]!.id]);
    expect(batch.entry[1]!.changes[0]!.value.metadata.phone_number_id).toBe(SECOND.phoneNumberId);
    expect(calls.every((c) => c.connectWebhookStatus === 200)).toBe(true);

    // Merged: one value per number holds several calls[] items; a terminate with errors[] stays on its own.
    sim.whatsapp.holdWebhooks();
    const hangups = [calls[0]!.hangup(), calls[2]!.hangup()];
    await waitUntil(() => sim.whatsapp.heldWebhooks === 2, 5000, "two held terminates");
    expect(await sim.whatsapp.flushWebhooks({ layout: "merged" })).toEqual([200]);
    expect(await Promise.all(hangups)).toEqual([200, 200]);
    const merged = receiver.posts.at(-1)!.body as { entry: Array<{ changes: Array<{ value: { calls: Array<{ id: string; event: string }>; contacts: unknown[] } }> }> };
    expect(merged.entry).toHaveLength(1);
    expect(merged.entry[0]!.changes).toHaveLength(1);
    expect(merged.entry[0]!.changes[0]!.value.calls.map((c) => `${c.id}:${c.event}`)).toEqual([`${calls[0]!.id}:terminate`, `${calls[2]!.id}:terminate`]);
    expect(merged.entry[0]!.changes[0]!.value.contacts).toHaveLength(2);

    // Out of order: held updates each in their own POST, last first.
    sim.whatsapp.holdWebhooks();
    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const connect = await graphPost(url(SECOND, "calls"), { messaging_product: "whatsapp", action: "connect", to: "4915112345678", session: { sdp_type: "offer", sdp: await business.offer() } }, OTHER_TOKEN);
      const callId = (connect.body["calls"] as Array<{ id: string }>)[0]!.id;
      await waitUntil(() => sim.whatsapp.heldWebhooks === 2, 5000, "connect and RINGING held");
      expect(await sim.whatsapp.flushWebhooks({ grouping: "separate", order: "reverse", delivery: { duplicates: 1 } })).toEqual([200, 200]);
      const seen = receiver.items().filter((i) => i.item["id"] === callId).map((i) => (i.kind === "statuses" ? String(i.item["status"]) : String(i.item["event"])));
      expect(seen).toEqual(["RINGING", "RINGING", "connect", "connect"]);
    } finally {
      await business.close();
    }
    await calls[1]!.hangup();
  });

  it("answers WhatsApp requests with the number's token, the WhatsApp error envelope, injected failures, 613 past the permissions rate and 131055 for a SIP number", async () => {
    const wrongToken = await graphPost(url(SECOND, "calls"), { messaging_product: "whatsapp", action: "terminate", call_id: "wacid.x" }, TOKEN);
    expect(wrongToken.status).toBe(401);
    expect((wrongToken.body["error"] as GraphError).code).toBe(190);

    const unknown = await graphPost(url(FIRST, "calls"), { messaging_product: "whatsapp", action: "terminate", call_id: "wacid.nope" }, TOKEN);
    expect(unknown.status).toBe(400);
    const error = unknown.body["error"] as GraphError;
    expect(error.code).toBe(100);
    expect(error.error_data).toEqual({ messaging_product: "whatsapp", details: expect.stringMatching(/Invalid call id/) as unknown });
    expect(error.fbtrace_id).toMatch(/^\S+$/);

    const call = await sim.placeWhatsAppCall();
    sim.failNext("pre_accept", { httpStatus: 500, code: 138004, message: "Connection error" });
    const injected = await graphPost(url(FIRST, "calls"), { messaging_product: "whatsapp", action: "pre_accept", call_id: call.id, session: { sdp_type: "answer", sdp: "v=0" } }, TOKEN);
    expect(injected.status).toBe(500);
    expect(injected.body["error"]).toMatchObject({ code: 138004, error_data: { messaging_product: "whatsapp", details: "Connection error" } });
    expect(call.actionLog).toEqual([]);
    await call.hangup();

    const lookups = await Promise.all([1, 2, 3, 4, 5].map(() => graphGet(url(FIRST, "call_permissions") + "?user_wa_id=15551230000", TOKEN)));
    const limited = lookups.filter((r) => r.status === 429);
    expect(lookups.filter((r) => r.status === 200).length).toBe(3);
    expect(limited.length).toBe(2);
    expect((limited[0]!.body["error"] as GraphError).code).toBe(613);

    const sipOn = await graphPost(url(SECOND, "settings"), { calling: { sip: { status: "ENABLED" } } }, OTHER_TOKEN);
    expect(sipOn).toEqual({ status: 200, body: { success: true } });
    try {
      const sip = await graphPost(url(SECOND, "calls"), { messaging_product: "whatsapp", action: "connect", to: "15551230000", session: { sdp_type: "offer", sdp: "v=0" } }, OTHER_TOKEN);
      expect(sip.status).toBe(400);
      expect((sip.body["error"] as GraphError).code).toBe(131055);
      const sipLookup = await graphGet(url(SECOND, "call_permissions") + "?user_wa_id=15551230000", OTHER_TOKEN);
      expect((sipLookup.body["error"] as GraphError).code).toBe(131055);
    } finally {
      sim.whatsapp.setSipEnabled(SECOND.phoneNumberId, false);
    }
    // SDES set by the settings call applies to the next call.
    expect((await graphPost(url(SECOND, "settings"), { calling: { srtp_key_exchange_protocol: "SDES" } }, OTHER_TOKEN)).status).toBe(200);
    expect(((await graphGet(url(SECOND, "settings"), OTHER_TOKEN)).body["calling"] as Record<string, unknown>)["srtp_key_exchange_protocol"]).toBe("SDES");
    const sdes = await sim.placeWhatsAppCall({ phoneNumberId: SECOND.phoneNumberId });
    expect(sdes.consumer.keyExchange).toBe("SDES");
    expect(sdes.sdps.consumerOffer).toMatch(/RTP\/SAVP/);
    await sdes.hangup();
    expect((await graphPost(url(SECOND, "settings"), { calling: { srtp_key_exchange_protocol: "ZRTP" } }, OTHER_TOKEN)).status).toBe(400);

    // A number at its concurrent-call limit: user calls fail without a webhook, connect is 138002.
    const only = await sim.placeWhatsAppCall({ phoneNumberId: THIRD.phoneNumberId });
    await expect(sim.placeWhatsAppCall({ phoneNumberId: THIRD.phoneNumberId })).rejects.toThrow(/concurrent/);
    const full = await graphPost(url(THIRD, "calls"), { messaging_product: "whatsapp", action: "connect", to: "15559870000", session: { sdp_type: "offer", sdp: "v=0" } }, TOKEN);
    expect(full.status).toBe(429);
    expect((full.body["error"] as GraphError).code).toBe(138002);
    await only.hangup();

    // The Page API is untouched by the WhatsApp numbers beside it.
    const page = await graphGet(`${sim.graphUrl}/v26.0/${PAGE_ID}/messenger_call_permissions?psid=123&access_token=${TOKEN}`, TOKEN);
    expect(page.status).toBe(200);
  });
});

describe("WhatsApp Graph input that is malformed fails that request cleanly", () => {
  let receiver: WaWebhookReceiver;
  let sim: MetaSimulator;

  beforeAll(async () => {
    receiver = await WaWebhookReceiver.start(APP_SECRET);
    sim = await MetaSimulator.start({ appSecret: APP_SECRET, pageId: PAGE_ID, pageAccessToken: TOKEN, webhookUrl: receiver.url, whatsapp: { numbers: [FIRST] } });
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  it("answers every malformed body with a 4xx in the WhatsApp envelope, and the number keeps working", async () => {
    const call = await sim.placeWhatsAppCall();
    const offer = call.sdps.consumerOffer!;
    const business = new WaTestBusiness(sim.stunUrl);
    try {
      const answer = await business.answer(offer);
      const callsUrl = `${sim.graphUrl}/v23.0/${FIRST.phoneNumberId}/calls`;
      const answerWith = (sdp: string): Record<string, unknown> => ({ messaging_product: "whatsapp", call_id: call.id, action: "pre_accept", session: { sdp_type: "answer", sdp } });
      const bodies: unknown[] = [
        null,
        [],
        "text",
        { messaging_product: "whatsapp" },
        { messaging_product: "whatsapp", action: "dance", call_id: call.id },
        { messaging_product: "whatsapp", action: "accept", call_id: 42, session: { sdp_type: "answer", sdp: answer } },
        { messaging_product: "whatsapp", action: "accept", call_id: "x".repeat(10_000), session: { sdp_type: "answer", sdp: answer } },
        { messaging_product: "whatsapp", action: "pre_accept", call_id: call.id, session: "{not json" },
        { messaging_product: "whatsapp", action: "pre_accept", call_id: call.id, session: { sdp_type: "pranswer", sdp: answer } },
        { messaging_product: "whatsapp", action: "connect", to: "not-a-number", session: { sdp_type: "offer", sdp: offer } },
        { messaging_product: "whatsapp", action: "connect", recipient: "u".repeat(500), session: { sdp_type: "offer", sdp: offer } },
        answerWith(""),
        answerWith("v=0\r\n".repeat(5000)),
        answerWith("\u0000v=0"),
        answerWith(answer.replace(/a=fingerprint:sha-256 \S+/, "a=fingerprint:sha-256 ZZ")),
        answerWith(answer.replace(/a=candidate:.*/, "a=candidate:1 1 udp abc 127.0.0.1 notaport typ host")),
        answerWith(answer.replace(/a=rtpmap:111 .*/, "a=rtpmap:111 opus/abc")),
        answerWith(answer.replace(/m=audio \d+/, "m=audio 99999999999")),
      ];
      for (const body of bodies) {
        const res = await fetch(callsUrl, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, connection: "close" }, body: JSON.stringify(body) });
        const json = (await res.json()) as { error?: GraphError };
        expect(res.status, JSON.stringify(body).slice(0, 120)).toBeGreaterThanOrEqual(400);
        expect(res.status, JSON.stringify(body).slice(0, 120)).toBeLessThan(500);
        expect(json.error?.error_data?.messaging_product).toBe("whatsapp");
      }
      const broken = await fetch(callsUrl, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` }, body: "{" });
      expect(broken.status).toBe(400);
      const lookup = await graphGet(`${sim.graphUrl}/v23.0/${FIRST.phoneNumberId}/call_permissions`, TOKEN);
      expect(lookup.status).toBe(400);

      // The call is still there to be accepted.
      const ok = await graphPost(callsUrl, answerWith(answer), TOKEN);
      expect(ok.status).toBe(200);
      expect(call.phase).toBe("pre_accepted");
      await call.hangup();
    } finally {
      await business.close();
    }
  });
});

describe("WhatsApp permission limits over a week", () => {
  it("allows 1 request per 24 h and 2 per 7 days, resets them on a connected call, and expires a temporary permission after 7 days", () => {
    const permissions = new WhatsAppPermissions("no_permission");
    const day = 24 * 3600 * 1000;
    const t0 = Date.UTC(2026, 0, 1);
    expect(permissions.requestError("u", t0)).toBeUndefined();
    permissions.recordRequest("u", t0);
    expect(permissions.requestError("u", t0 + day - 1)?.code).toBe(138009);
    expect(permissions.requestError("u", t0 + day + 1)).toBeUndefined();
    permissions.recordRequest("u", t0 + day + 1);
    expect(permissions.requestError("u", t0 + 3 * day)?.code).toBe(138009);
    expect(permissions.response("u", t0 + 3 * day).actions[0]!.limits[1]).toMatchObject({ time_period: "P7D", current_usage: 2, limit_expiration_time: Math.floor((t0 + 7 * day) / 1000) });
    expect(permissions.requestError("u", t0 + 7 * day + 2)).toBeUndefined();
    permissions.recordConnectedCall("u", t0 + 3 * day, true);
    expect(permissions.requestError("u", t0 + 3 * day)).toBeUndefined();
    permissions.set("u", "temporary", t0);
    expect(permissions.callError("u", t0 + 6 * day)).toBeUndefined();
    expect(permissions.status("u", t0 + 7 * day + 1).status).toBe("no_permission");
    expect(permissions.callError("u", t0 + 7 * day + 1)?.code).toBe(138006);
  });
});

describe("WhatsApp batches", () => {
  it("put at most 1000 updates in one POST", () => {
    const number = { wabaId: "w", phoneNumberId: "p", displayPhoneNumber: "1555" };
    const updates: WaUpdate[] = Array.from({ length: 2500 }, (_v, i) => ({
      number,
      field: "calls",
      contacts: undefined,
      statuses: [{ id: `wacid.${i}`, timestamp: "1", type: "call", status: "RINGING", recipient_user_id: "US.1" }],
      errors: undefined,
    }));
    expect(batchesOf(updates).map((b) => b.length)).toEqual([1000, 1000, 500]);
    expect(() => whatsAppPayload(updates.slice(0, MAX_UPDATES_PER_POST + 1))).toThrow(RangeError);
    const merged = whatsAppPayload(updates.slice(0, MAX_UPDATES_PER_POST), "merged");
    expect(merged.entry[0]!.changes).toHaveLength(1);
    expect(merged.entry[0]!.changes[0]!.value.statuses).toHaveLength(1000);
  });
});
