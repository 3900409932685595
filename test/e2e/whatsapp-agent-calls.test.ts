import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { WhatsAppCall } from "../../sim/index.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

const PHONE_NUMBER_ID = "109876543210";
const WABA_ID = "556677889900";
const TOKEN = "EAAwhatsapptoken";
/** A second number, keyed with SDES at Meta. */
const SDES_NUMBER_ID = "109876543211";

/**
 * Agents call WhatsApp consumers: an INVITE from the PBX (SIPp) to `+number` becomes a
 * business-initiated WhatsApp call through the real gateway, on a gateway with no Messenger Page.
 */
describe("agent calls a WhatsApp consumer (WhatsApp-only gateway)", () => {
  let h: Harness;
  let seq = 0;
  const nextNumber = (): string => `4477009${String(++seq).padStart(5, "0")}`;

  beforeAll(async () => {
    h = await startHarness({
      env: {
        META_PAGE_ID: "",
        META_PAGE_ACCESS_TOKEN: "",
        WHATSAPP_PHONE_NUMBERS: `${PHONE_NUMBER_ID},${SDES_NUMBER_ID}`,
        WHATSAPP_SDES_NUMBERS: SDES_NUMBER_ID,
        WHATSAPP_ACCESS_TOKEN: TOKEN,
        SIP_ALLOW_FROM: "127.0.0.1",
        RING_TIMEOUT_MS: "4000",
        CALL_PERMISSION_REQUEST: "true",
      },
      sim: {
        whatsapp: {
          numbers: [
            { wabaId: WABA_ID, phoneNumberId: PHONE_NUMBER_ID, displayPhoneNumber: "15550001111", accessToken: TOKEN },
            { wabaId: WABA_ID, phoneNumberId: SDES_NUMBER_ID, displayPhoneNumber: "15550002222", accessToken: TOKEN, srtpKeyExchange: "SDES" },
          ],
          outboundPickup: "manual",
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

  async function agent(scenario: string, dialled: string, vars?: Record<string, string>, echo = false) {
    const port = await freePort();
    const sipp = startSipp({
      scenario,
      port,
      remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
      service: dialled,
      vars,
      timeoutS: 25,
      extraArgs: echo ? ["-rtp_echo"] : [],
    });
    await sipp.ready;
    return sipp;
  }

  const callTo = (phone: string): WhatsAppCall | undefined => h.sim.whatsapp.calls().find((c) => c.user.waId === phone);
  const ringing = (phone: string): Promise<void> =>
    waitFor(() => h.logs.find("consumer ringing").some((l) => l.psid === `+${phone}`), 5000, `+${phone} to ring`);
  const graphFor = (phone: string) => h.sim.requests.filter((r) => r.rawBody.includes(phone) || r.query.user_wa_id === phone);

  it("answered: 180 on RINGING, 200 on ACCEPTED, the consumer's audio echoed back, BYE from the agent ends it at Meta", async () => {
    const phone = nextNumber();
    const sipp = await agent("gw-agent-call.xml", `+${phone}`, { talk_ms: "3000" }, true);
    await ringing(phone);
    const call = callTo(phone)!;
    expect(call.sdps.businessOffer).toMatch(/a=setup:actpass/);
    await call.answer();
    await call.waitForState("media", 10_000);
    await sleep(1200);
    // The consumer's 440 Hz went to the agent as G.711 and came back (RTP echo) as Opus.
    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 440)).toBeLessThan(10);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    await call.waitForState("ended", 5000);
    expect(call.actionLog.map((a) => a.action)).toEqual(["connect", "terminate"]);
    expect(call.bizOpaqueCallbackData).toBeDefined();
  });

  it("from the SDES number the INVITE names: our RTP/SAVP offer with a=crypto, the consumer's audio echoed back", async () => {
    const phone = nextNumber();
    const sipp = await agent("gw-agent-call-from-number.xml", `+${phone}`, { talk_ms: "3000", number: SDES_NUMBER_ID }, true);
    await ringing(phone);
    const call = callTo(phone)!;
    expect(call.phoneNumberId).toBe(SDES_NUMBER_ID);
    expect(call.sdps.businessOffer).toMatch(/m=audio \d+ RTP\/SAVP 111 126/);
    expect(call.sdps.businessOffer).toMatch(/a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:/);
    expect(call.sdps.businessOffer).not.toMatch(/a=fingerprint|a=ice-ufrag/);
    await call.answer();
    await call.waitForState("media", 10_000);
    await sleep(1200);
    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 440)).toBeLessThan(10);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    await call.waitForState("ended", 5000);
  });

  it("no permission: a call_permission_request within Meta's limit (1 a day), then only 403; never a connect", async () => {
    const phone = nextNumber();
    h.sim.whatsapp.setPermission(phone, "no_permission");
    h.sim.whatsapp.setPermissionReply({ response: "ignore" });
    const first = await finish(await agent("gw-agent-refused.xml", `+${phone}`, { status: "403" }));
    expect(first.code, describeSipp(first)).toBe(0);
    expect(first.logs).toMatch(/refused SIP\/2.0 403 Call Permission Requested From Consumer/);
    const second = await finish(await agent("gw-agent-refused.xml", `+${phone}`, { status: "403" }));
    expect(second.code, describeSipp(second)).toBe(0);
    expect(second.logs).toMatch(/refused SIP\/2.0 403 Consumer Has Not Granted Call Permission/);
    const requests = graphFor(phone);
    expect(requests.filter((r) => r.path.endsWith("/messages"))).toHaveLength(1);
    expect(JSON.parse(requests.find((r) => r.path.endsWith("/messages"))!.rawBody)).toMatchObject({
      messaging_product: "whatsapp",
      to: phone,
      type: "interactive",
      interactive: { type: "call_permission_request" },
    });
    expect(requests.some((r) => r.path.endsWith("/calls"))).toBe(false);
  });

  it("a permission the consumer grants is logged from the messages webhook, and their next call goes through", async () => {
    const phone = nextNumber();
    h.sim.whatsapp.setPermission(phone, "no_permission");
    h.sim.whatsapp.setPermissionReply({ response: "accept" });
    const refused = await finish(await agent("gw-agent-refused.xml", `+${phone}`, { status: "403" }));
    expect(refused.code, describeSipp(refused)).toBe(0);
    await waitFor(() => h.logs.find("call permission reply").some((l) => l.response === "approve"), 5000, "the permission reply");
    const sipp = await agent("gw-agent-call.xml", `+${phone}`, { talk_ms: "500" }, true);
    await ringing(phone);
    await callTo(phone)!.answer();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });

  it("the consumer declines (REJECTED): 486 to the agent", async () => {
    const phone = nextNumber();
    const sipp = await agent("gw-agent-refused.xml", `+${phone}`, { status: "486" });
    await ringing(phone);
    await callTo(phone)!.decline();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/refused SIP\/2.0 486 Consumer Declined/);
  });

  it("the consumer does not answer: 480 to the agent, terminate at Meta", async () => {
    const phone = nextNumber();
    const sipp = await agent("gw-agent-refused.xml", `+${phone}`, { status: "480" });
    const result = await finish(sipp, 20_000);
    expect(result.code, describeSipp(result)).toBe(0);
    const call = callTo(phone)!;
    await call.waitForState("ended", 5000);
    expect(call.actionLog.map((a) => a.action)).toEqual(["connect", "terminate"]);
  });

  it("CANCEL while the consumer rings: terminate at Meta", async () => {
    const phone = nextNumber();
    const sipp = await agent("uac-cancel.xml", `+${phone}`);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    const call = callTo(phone)!;
    await call.waitForState("ended", 5000);
    expect(call.actionLog.map((a) => a.action)).toEqual(["connect", "terminate"]);
  });

  it("a PSID has no Page to call from here: 404, nothing sent to Meta", async () => {
    const before = h.sim.requests.length;
    const sipp = await agent("gw-agent-refused.xml", "7100000000001", { status: "404" });
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(h.sim.requests.length).toBe(before);
  });

  it("Meta refuses connect (138006 no permission): 403 to the agent", async () => {
    const phone = nextNumber();
    h.sim.failNext("connect", { httpStatus: 401, code: 138006, message: "No approved call permission" });
    const sipp = await agent("gw-agent-refused.xml", `+${phone}`, { status: "403" });
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });
});
