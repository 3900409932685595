import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp, type SippProcess } from "../support/sipp.js";
import { startHarness, waitFor, type Harness } from "../support/harness.js";

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
      sim: { whatsapp: { numbers: [{ wabaId: WABA_ID, phoneNumberId: PHONE_NUMBER_ID, displayPhoneNumber: "15550001111", accessToken: "EAAwhatsapptoken" }] } },
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
});
