import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MetaSimulator, SimCallEndedError, SimStateError, type MetaSimulatorOptions } from "../../sim/index.js";
import { graphGet, graphPost, VALID_OFFER, WebhookReceiver } from "./sim-helpers.js";

const SECRET = "graph-secret";
const PAGE = "987654321";
const TOKEN = "EAAB-token";

describe("MetaSimulator Graph API", () => {
  let receiver: WebhookReceiver;
  let sim: MetaSimulator;

  const start = async (extra: Partial<MetaSimulatorOptions> = {}): Promise<MetaSimulator> => {
    sim = await MetaSimulator.start({
      appSecret: SECRET,
      pageId: PAGE,
      pageAccessToken: TOKEN,
      webhookUrl: receiver.url,
      host: "127.0.0.1",
      port: 0,
      graphVersion: "v26.0",
      eventDelayMs: 5,
      ...extra,
    });
    return sim;
  };
  const calls = (version = "v26.0"): string => `${sim.graphUrl}/${version}/${PAGE}/calls`;
  const offer = { sdp_type: "offer", sdp: VALID_OFFER };

  beforeEach(async () => {
    receiver = await WebhookReceiver.start(SECRET);
  });
  afterEach(async () => {
    await sim?.stop();
    await receiver.close();
  });

  it("checks the page token from the header or the query", async () => {
    await start();
    const call = await sim.placeCall();
    const missing = await graphPost(calls(), { call_id: call.id, action: "reject" }, undefined);
    expect(missing.status).toBe(401);
    expect(missing.body["error"]).toMatchObject({ code: 104, type: "OAuthException" });

    const wrong = await graphPost(calls(), { call_id: call.id, action: "reject" }, "nope");
    expect(wrong.status).toBe(401);
    expect(wrong.body["error"]).toMatchObject({ code: 190, type: "OAuthException" });
    expect(Object.keys(wrong.body["error"] as object)).toEqual(["message", "type", "code", "fbtrace_id"]);

    const viaQuery = await graphPost(`${calls("v19.0")}?access_token=${TOKEN}`, { call_id: call.id, action: "reject" }, undefined);
    expect(viaQuery).toEqual({ status: 200, body: { success: true } });
  });

  it("rejects other pages and unknown paths like Graph", async () => {
    await start();
    const other = await graphPost(`${sim.graphUrl}/v26.0/1/calls`, { call_id: "c_1", action: "terminate" }, TOKEN);
    expect(other.status).toBe(400);
    expect(other.body["error"]).toMatchObject({ type: "GraphMethodException", code: 100, error_subcode: 33 });
    const path = await graphPost(`${sim.graphUrl}/calls`, {}, TOKEN);
    expect(path.status).toBe(400);
  });

  it("answers 2018390 for an unknown call id and 2018392 for a bad SDP", async () => {
    await start();
    const unknown = await graphPost(calls(), { call_id: "c_404", action: "accept", session: offer }, TOKEN);
    expect(unknown.status).toBe(400);
    expect(unknown.body["error"]).toMatchObject({ code: 2018390 });

    const call = await sim.placeCall();
    const sha1 = VALID_OFFER.replace("a=fingerprint:sha-256", "a=fingerprint:sha-1");
    const bad = await graphPost(calls(), { call_id: call.id, action: "accept", session: { sdp_type: "offer", sdp: sha1 } }, TOKEN);
    expect(bad.body["error"]).toMatchObject({ code: 2018392, error_subcode: 2494010 });
    const noSession = await graphPost(calls(), { call_id: call.id, action: "accept" }, TOKEN);
    expect(noSession.body["error"]).toMatchObject({ code: 2018391 });
    expect(call.state).toBe("ringing");
  });

  it("rejects a ringing call, then sends terminate Completed and refuses further actions", async () => {
    await start();
    const call = await sim.placeCall({ psid: "4242" });
    expect((await graphPost(calls(), { call_id: call.id, action: "reject" }, TOKEN)).body).toEqual({ success: true });
    const terminate = await receiver.waitForEvent((e) => e["event"] === "terminate");
    expect(terminate).toMatchObject({ id: call.id, status: "Completed" });
    expect(terminate["duration"]).toBeUndefined();
    expect(Number.isInteger(terminate["start_time"]) && Number.isInteger(terminate["end_time"])).toBe(true);
    expect(call.state).toBe("ended");
    expect(call.end?.reason).toBe("business-rejected");

    const again = await graphPost(calls(), { call_id: call.id, action: "terminate" }, TOKEN);
    expect(again.body["error"]).toMatchObject({ code: 2018396 });
    const accept = await graphPost(calls(), { call_id: call.id, action: "accept", session: offer }, TOKEN);
    expect(accept.body["error"]).toMatchObject({ code: 2018396 });
  });

  it("ends an unanswered call after the accept window with terminate Failed", async () => {
    await start({ acceptWindowMs: 150 });
    const call = await sim.placeCall();
    await call.waitForState("ended", 2000);
    expect(call.end).toMatchObject({ reason: "not-answered", status: "Failed" });
    const terminate = await receiver.waitForEvent((e) => e["event"] === "terminate");
    expect(terminate).toMatchObject({ id: call.id, status: "Failed" });
    const late = await graphPost(calls(), { call_id: call.id, action: "accept", session: offer }, TOKEN);
    expect(late.body["error"]).toMatchObject({ code: 2018395 });
    await expect(call.waitForState("accepted", 100)).rejects.toBeInstanceOf(SimCallEndedError);
  });

  it("accepts once (answer + re-offer), refuses a second accept and logs every request", async () => {
    await start();
    const call = await sim.placeCall();
    sim.failNext("accept", { httpStatus: 500, code: 2, message: "An unexpected error has occurred. Please retry your request later." });
    const injected = await graphPost(calls(), { call_id: call.id, action: "accept", session: offer }, TOKEN);
    expect(injected.status).toBe(500);
    expect(injected.body["error"]).toMatchObject({ code: 2, type: "OAuthException" });
    expect(call.state).toBe("ringing");

    const [first, second] = await Promise.all([
      graphPost(calls(), { call_id: call.id, action: "accept", session: offer }, TOKEN),
      graphPost(calls(), { call_id: call.id, action: "accept", session: offer }, TOKEN),
    ]);
    const ok = [first, second].find((r) => r.status === 200);
    const refused = [first, second].find((r) => r.status !== 200);
    expect(ok?.body["session"]).toMatchObject({ sdp_response: { sdp_type: "answer" }, sdp_renegotiation: { sdp_type: "offer" } });
    expect((refused?.body["error"] as { message: string }).message).toMatch(/already been accepted/);
    expect(call.state).toBe("accepted");

    const log = sim.requests;
    expect(log).toHaveLength(3);
    expect(log[0]).toMatchObject({ method: "POST", path: `/v26.0/${PAGE}/calls`, action: "accept", response: { status: 500 } });
    expect(log[0]?.headers["authorization"]).toBe(`Bearer ${TOKEN}`);
    expect(log[1]?.body).toMatchObject({ call_id: call.id, action: "accept" });
  });

  it("can return accept SDPs as bare strings and leave out the re-offer", async () => {
    await start({ acceptSdpForm: "string", acceptRenegotiation: false });
    const call = await sim.placeCall();
    const res = await graphPost(calls(), { call_id: call.id, action: "accept", session: offer }, TOKEN);
    const session = res.body["session"] as Record<string, unknown>;
    expect(typeof session["sdp_response"]).toBe("string");
    expect(session["sdp_renegotiation"]).toBeUndefined();
  });

  it("holds a request forever on an injected timeout until the simulator stops", async () => {
    await start();
    const call = await sim.placeCall();
    sim.failNext("terminate", "timeout");
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 200);
    await expect(
      fetch(calls(), {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ call_id: call.id, action: "terminate" }),
        signal: abort.signal,
      }),
    ).rejects.toThrow();
    clearTimeout(timer);
    expect(sim.requests[0]?.response).toBeUndefined();
    expect(call.state).toBe("ringing");
  });

  it("reports permissions per PSID and refuses connect without one", async () => {
    await start();
    sim.setPermission("777", "no_permission");
    const url = (psid: string): string => `${sim.graphUrl}/v26.0/${PAGE}/messenger_call_permissions?psid=${psid}&access_token=${TOKEN}`;
    const granted = await graphGet(url("555"));
    expect(granted.body).toMatchObject({
      permission: { status: "has_permission" },
      actions: [{ action_name: "send_call_permission_request" }, { action_name: "start_call", can_perform_action: true }],
    });
    expect(Number.isInteger((granted.body["permission"] as { expiration_time: number }).expiration_time)).toBe(true);
    const denied = await graphGet(url("777"));
    expect(denied.body).toMatchObject({ permission: { status: "no_permission" }, actions: [{}, { action_name: "start_call", can_perform_action: false }] });

    const connect = await graphPost(calls(), { to: "777", action: "connect", session: offer }, TOKEN);
    expect(connect.body["error"]).toMatchObject({ code: 2018394 });
  });

  it("reports a consumer hang-up while ringing as terminate Completed", async () => {
    await start();
    const call = await sim.placeCall();
    expect(await call.hangup()).toBe(200);
    expect(call.state).toBe("ended");
    expect(call.consumer.state).toBe("closed");
    expect(await receiver.waitForEvent((e) => e["event"] === "terminate")).toMatchObject({ id: call.id, status: "Completed" });
    expect(sim.activeCalls()).toHaveLength(0);
  });

  it("delivers raw webhooks with each signature mode", async () => {
    await start();
    const body = '{"object":"page","entry":[]}';
    expect(await sim.sendRawWebhook(body, { signature: "valid" })).toBe(200);
    expect(await sim.sendRawWebhook(body, { signature: "wrong" })).toBe(403);
    expect(await sim.sendRawWebhook(body, { signature: "missing" })).toBe(403);
    expect(receiver.received.map((r) => r.rawBody)).toEqual([body, body, body]);
  });

  it("can start before the gateway and get its webhook URL later", async () => {
    await start({ webhookUrl: undefined });
    await expect(sim.placeCall()).rejects.toBeInstanceOf(SimStateError);
    sim.setWebhookUrl(receiver.url);
    expect((await sim.placeCall()).connectWebhookStatus).toBe(200);
  });

  it("duplicates every webhook it sends on its own when asked", async () => {
    await start({ webhookDelivery: { duplicates: 1 } });
    const call = await sim.placeCall();
    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[0]?.rawBody).toBe(receiver.received[1]?.rawBody);
    expect(receiver.events().every((e) => e["id"] === call.id)).toBe(true);
  });

  it("rings an outbound call until the consumer declines, then reports terminate Completed", async () => {
    await start({ outboundPickup: "manual" });
    const res = await graphPost(calls(), { to: "5551234", action: "connect", session: offer }, TOKEN);
    expect(res.status).toBe(200);
    const callId = res.body["id"] as string;
    await receiver.waitForEvent((e) => e["id"] === callId && e["event"] === "call_status" && e["call_status"] === "ringing");
    const connect = receiver.events().find((e) => e["event"] === "connect");
    expect(connect).toMatchObject({ id: callId, to: "5551234", from: PAGE, call_direction: "business_initiated" });
    const call = sim.getCall(callId)!;
    expect(call.state).toBe("ringing");
    const reject = await graphPost(calls(), { call_id: callId, action: "reject" }, TOKEN);
    expect(reject.body["error"]).toMatchObject({ code: 100 });
    expect(await call.decline()).toBe(200);
    const terminate = await receiver.waitForEvent((e) => e["id"] === callId && e["event"] === "terminate");
    expect(terminate["status"]).toBe("Completed");
    expect(terminate["duration"]).toBeUndefined();
  });
});
