import { createSocket, type Socket } from "node:dgram";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseTelephoneEvent } from "../../transcode/dtmf.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp, type SippProcess } from "../support/sipp.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

const PHONE_NUMBER_ID = "109876543210";
const WABA_ID = "556677889900";

/** A WhatsApp consumer's call against SIPp playing the PBX: identity headers and the ways a PBX ends or refuses it. */
describe("WhatsApp consumer call, SIPp as the PBX", () => {
  let h: Harness;
  let pbxPort: number;

  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({
      env: {
        SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}`,
        WHATSAPP_PHONE_NUMBERS: PHONE_NUMBER_ID,
        WHATSAPP_ACCESS_TOKEN: "EAAwhatsapptoken",
        WHATSAPP_WABA_ID: WABA_ID,
        ACCEPT_TIMEOUT_MS: "3000",
      },
      sim: {
        whatsapp: {
          numbers: [{ wabaId: WABA_ID, phoneNumberId: PHONE_NUMBER_ID, displayPhoneNumber: "15550001111", accessToken: "EAAwhatsapptoken" }],
          // WhatsApp's 20 s / 30 s no-media hang-ups, shortened: every call here must keep media going.
          mediaStartTimeoutMs: 2500,
          mediaIdleTimeoutMs: 2500,
        },
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });

  async function pbx(scenario: string, vars?: Record<string, string>): Promise<SippProcess> {
    const sipp = startSipp({ scenario, port: pbxPort, vars, timeoutS: 20 });
    await sipp.ready;
    return sipp;
  }

  const requestedActions = (callId: string): (string | undefined)[] => h.sim.requests.filter((r) => r.rawBody.includes(callId)).map((r) => r.action);

  function endedOutcome(callId: string): string | undefined {
    return h.logs.find("call ended").find((l) => l.callId === callId)?.outcome as string | undefined;
  }

  it("the INVITE names the consumer (From, X-Meta-Platform, X-WhatsApp-*); a BYE from the PBX sends terminate", async () => {
    const sipp = await pbx("uas-whatsapp-identity.xml");
    const call = await h.sim.placeWhatsAppCall({ fromPhone: "447700900123", name: "Ada Lovelace" });
    await call.waitForState("ended", 10_000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(call.actionLog.map((a) => a.action)).toEqual(["pre_accept", "accept", "terminate"]);
    await waitFor(() => endedOutcome(call.id) !== undefined, 3000, "the call to end");
    expect(endedOutcome(call.id)).toBe("completed-target-hangup");
  });

  it.each([
    [486, "Busy Here", "target-busy"],
    [603, "Decline", "target-declined"],
  ])("PBX answers %i: the pre-accepted call is rejected at Meta, never accepted", async (status, reason, outcome) => {
    const sipp = await pbx("uas-reject.xml", { status: String(status), reason });
    const call = await h.sim.placeWhatsAppCall();
    await call.waitForState("ended", 10_000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(call.actionLog.map((a) => a.action)).toEqual(["pre_accept", "reject"]);
    await waitFor(() => endedOutcome(call.id) !== undefined, 3000, "the call to end");
    expect(endedOutcome(call.id)).toBe(outcome);
    expect(h.gateway.registry.size).toBe(0);
  });

  it("the consumer hangs up while the PBX rings: CANCEL to the PBX, nothing more at Meta", async () => {
    const sipp = await pbx("uas-cancel.xml");
    const call = await h.sim.placeWhatsAppCall();
    await waitFor(() => call.actionLog.some((a) => a.action === "pre_accept"), 5000, "pre_accept");
    await call.hangup();
    await waitFor(() => endedOutcome(call.id) !== undefined, 5000, "the call to end");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(call.actionLog.map((a) => a.action)).toEqual(["pre_accept"]);
  });

  it("a connect webhook whose offer is not usable is rejected at Meta before any INVITE, and the gateway goes on", async () => {
    const sipp = await pbx("uas-whatsapp-identity.xml");
    const callId = "wacid.HBgLMTIzNDU2Nzg5MDEVAgARGBJCQURPRkZFUjAwMDAwMDAwMDAA";
    const body = {
      object: "whatsapp_business_account",
      entry: [
        {
          id: WABA_ID,
          changes: [
            {
              field: "calls",
              value: {
                messaging_product: "whatsapp",
                metadata: { display_phone_number: "15550001111", phone_number_id: PHONE_NUMBER_ID },
                contacts: [{ profile: { name: "Bad Offer" }, wa_id: "447700900999", user_id: "GB.1234567890" }],
                calls: [
                  {
                    id: callId,
                    from: "447700900999",
                    from_user_id: "GB.1234567890",
                    to: "15550001111",
                    event: "connect",
                    timestamp: String(Math.floor(Date.now() / 1000)),
                    direction: "USER_INITIATED",
                    session: { sdp_type: "offer", sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n" },
                  },
                ],
              },
            },
          ],
        },
      ],
    };
    expect(await h.sim.sendRawWebhook(JSON.stringify(body))).toBe(200);
    await waitFor(() => endedOutcome(callId) !== undefined, 5000, "the call to end");
    expect(h.sim.requests.filter((r) => r.rawBody.includes(callId)).map((r) => r.action)).toEqual(["reject"]);
    expect(h.gateway.registry.size).toBe(0);
    // No INVITE left for the PBX: the next call is the first one SIPp sees, and it is answered.
    const call = await h.sim.placeWhatsAppCall({ fromPhone: "447700900123", name: "Ada Lovelace" });
    await call.waitForState("ended", 10_000);
    expect(call.actionLog.map((a) => a.action)).toEqual(["pre_accept", "accept", "terminate"]);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });

  it("Meta refuses accept (code 100): the answered PBX gets a BYE and the call is rejected at Meta", async () => {
    const sipp = await pbx("gw-answer.xml");
    h.sim.failNext("accept", { httpStatus: 400, code: 100, message: "Invalid parameter" });
    const call = await h.sim.placeWhatsAppCall();
    await call.waitForState("ended", 10_000);
    await waitFor(() => endedOutcome(call.id) !== undefined, 3000, "the call to end");
    expect(endedOutcome(call.id)).toBe("accept-failed");
    // The refused accept never reached the call at Meta; the requests show it was tried once.
    expect(requestedActions(call.id)).toEqual(["pre_accept", "accept", "reject"]);
    expect(call.actionLog.map((a) => a.action)).toEqual(["pre_accept", "reject"]);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });

  it("pre_accept refused for a passing reason: the call still connects with accept", async () => {
    const sipp = await pbx("uas-whatsapp-identity.xml");
    h.sim.failNext("pre_accept", { httpStatus: 500, code: 138004, message: "Connection error" });
    const call = await h.sim.placeWhatsAppCall({ fromPhone: "447700900123", name: "Ada Lovelace" });
    await call.waitForState("ended", 10_000);
    expect(requestedActions(call.id)).toEqual(["pre_accept", "accept", "terminate"]);
    expect(call.actionLog.map((a) => a.action)).toEqual(["accept", "terminate"]);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });

  it("a PBX that sends no audio: the gateway's comfort audio keeps the call up past WhatsApp's no-media hang-ups", async () => {
    const sipp = await pbx("gw-answer.xml");
    const call = await h.sim.placeWhatsAppCall();
    await call.waitForState("accepted", 10_000);
    await sleep(6000);
    expect(call.end).toBeUndefined();
    expect(call.consumer.stats.packetsReceived).toBeGreaterThan(200);
    await call.hangup();
    await waitFor(() => endedOutcome(call.id) !== undefined, 5000, "the call to end");
    expect(endedOutcome(call.id)).toBe("completed-consumer-hangup");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });

  it("calls to a number not configured here, or from another WhatsApp Business Account, are left alone", async () => {
    const before = h.sim.requests.length;
    const connect = (wabaId: string, phoneNumberId: string, callId: string) => ({
      object: "whatsapp_business_account",
      entry: [
        {
          id: wabaId,
          changes: [
            {
              field: "calls",
              value: {
                messaging_product: "whatsapp",
                metadata: { display_phone_number: "15550009999", phone_number_id: phoneNumberId },
                calls: [
                  {
                    id: callId,
                    from: "447700900777",
                    to: "15550009999",
                    event: "connect",
                    timestamp: String(Math.floor(Date.now() / 1000)),
                    direction: "USER_INITIATED",
                    session: { sdp_type: "offer", sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" },
                  },
                ],
              },
            },
          ],
        },
      ],
    });
    expect(await h.sim.sendRawWebhook(JSON.stringify(connect(WABA_ID, "999999999999", "wacid.OTHERNUMBER")))).toBe(200);
    expect(await h.sim.sendRawWebhook(JSON.stringify(connect("111111111111", PHONE_NUMBER_ID, "wacid.OTHERWABA")))).toBe(200);
    await waitFor(() => h.gateway.calls.stats().otherPageDropped >= 2, 3000, "both deliveries to be dropped");
    expect(h.sim.requests.length).toBe(before);
    expect(h.gateway.registry.size).toBe(0);
  });

  describe("DTMF on WhatsApp's telephone-event/8000", () => {
    let media: Socket;
    const received: { pt: number; payload: Buffer }[] = [];
    beforeEach(async () => {
      media = createSocket("udp4");
      media.on("message", (msg) => received.push({ pt: msg[1]! & 0x7f, payload: msg.subarray(12) }));
      await new Promise<void>((r) => media.bind(0, "127.0.0.1", () => r()));
    });
    afterEach(() => media.close());

    it("a key the consumer presses reaches the PBX as RFC 4733, and the PBX's reaches the consumer on 126/8000", async () => {
      const sipp = await pbx("gw-whatsapp-dtmf.xml", { media_port: String(media.address().port), dtmf_after_ms: "1500" });
      const call = await h.sim.placeWhatsAppCall();
      await call.waitForState("media", 10_000);
      await call.consumer.sendDtmf("7");
      const endSeen = (): boolean => received.some((p) => p.pt === 101 && (p.payload[1]! & 0x80) !== 0);
      await waitFor(endSeen, 5000, "the end of the telephone-event at the PBX");
      const events = received.filter((p) => p.pt === 101).map((p) => parseTelephoneEvent(p.payload));
      expect(new Set(events.map((e) => e.event))).toEqual(new Set([7]));
      // SIPp plays RFC 2833 digit 5 → the consumer receives it as telephone-event on WhatsApp's clock.
      await waitFor(() => call.consumer.stats.telephoneEvents.some((e) => e.event === 5), 5000, "digit 5 at the consumer");
      expect(call.consumer.stats.payloadTypes).toContain(126);
      await call.hangup();
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
    });
  });
});
