import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

const PHONE_NUMBER_ID = "109876543210";
/** A second number, set to srtp_key_exchange_protocol SDES at Meta. */
const SDES_NUMBER_ID = "109876543211";
const WABA_ID = "556677889900";

/** WhatsApp calls through the gateway to and from a real SIP phone (baresip). */
describe("WhatsApp Business Calling through the gateway", () => {
  let h: Harness;
  let phone: Baresip | undefined;
  beforeAll(async () => {
    h = await startHarness({
      env: {
        WHATSAPP_PHONE_NUMBERS: `${PHONE_NUMBER_ID}=sip:agent@127.0.0.1:27060,${SDES_NUMBER_ID}=sip:agent@127.0.0.1:27460`,
        WHATSAPP_SDES_NUMBERS: SDES_NUMBER_ID, WHATSAPP_ACCESS_TOKEN: "EAAwhatsapptoken", WHATSAPP_WABA_ID: WABA_ID, SIP_ALLOW_FROM: "127.0.0.0/8" },
      sim: {
        whatsapp: {
          numbers: [
            { wabaId: WABA_ID, phoneNumberId: PHONE_NUMBER_ID, displayPhoneNumber: "15550001111", accessToken: "EAAwhatsapptoken" },
            { wabaId: WABA_ID, phoneNumberId: SDES_NUMBER_ID, displayPhoneNumber: "15550002222", accessToken: "EAAwhatsapptoken", srtpKeyExchange: "SDES" },
          ],
          outboundPickup: { afterMs: 500 },
        },
      },
    });
  });
  // Each test's phone goes with it, also when the test fails half-way.
  afterEach(async () => {
    await phone?.stop();
    phone = undefined;
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("a consumer's call to a number routed to the phone is pre-accepted at once, rings the phone, is accepted with the same answer, and carries tones both ways", async () => {
    phone = await Baresip.start({ port: 27060, toneHz: 1000, rtpPortMin: 27100 });
    const call = await h.sim.placeWhatsAppCall({ toneHz: 440, fromPhone: "447700900123", name: "Ada Lovelace" });
    await call.waitForState("media", 15_000);
    await sleep(2500);

    const actions = call.actionLog.map((a) => a.action);
    expect(actions.slice(0, 2)).toEqual(["pre_accept", "accept"]);
    expect(call.sdps.preAcceptAnswer).toBeDefined();
    expect(call.sdps.acceptAnswer).toBe(call.sdps.preAcceptAnswer);
    expect(call.sdps.preAcceptAnswer).toMatch(/a=setup:active/);
    expect(call.sdps.preAcceptAnswer).toMatch(/a=mid:audio/);
    // Our correlation id: the SIP Call-ID of the phone's leg.
    expect(call.bizOpaqueCallbackData).toBeDefined();
    // Media toward Meta starts only once accept is answered (the phone spoke from its 200 OK on:
    // that audio was held, not sent early).
    expect(call.businessPacketsBeforeAccept).toBe(0);

    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-35);

    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
    await sleep(300);
    const { pcm, sampleRate } = phone.receivedPcm();
    expect(pcm.length).toBeGreaterThan(sampleRate);
    const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
    expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);
  });

  it("an agent dials a +number: connect, the answer by webhook, RINGING/ACCEPTED to 180/200, tones both ways, terminate when the agent hangs up", async () => {
    phone = await Baresip.start({ port: 27260, toneHz: 1000, rtpPortMin: 27300, dial: `sip:+447700900456@127.0.0.1:${h.gateway.sipAddress.port}` });
    await waitFor(() => h.sim.whatsapp.calls().some((c) => c.direction === "BUSINESS_INITIATED"), 10_000, "the consumer's call");
    const call = h.sim.whatsapp.calls().find((c) => c.direction === "BUSINESS_INITIATED")!;
    await call.waitForState("media", 15_000);
    await sleep(2500);
    expect(call.user.waId).toBe("447700900456");
    expect(call.statuses.map((s) => s)).toEqual(expect.arrayContaining(["RINGING", "ACCEPTED"]));
    const atConsumer = call.consumer.detectTone(1);
    expect(Math.abs(atConsumer.hz - 1000)).toBeLessThan(10);
    const { pcm, sampleRate } = phone.receivedPcm();
    expect(pcm.length).toBeGreaterThan(sampleRate);
    const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
    expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);

    // baresip says BYE as it exits.
    await phone.stop();
    phone = undefined;
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the gateway to end the call");
    await call.waitForState("ended", 5000);
    expect(call.actionLog.map((a) => a.action)).toContain("terminate");
  });

  it("a number keyed with SDES: RTP/SAVP with a=crypto and no ICE or DTLS, we send first, tones both ways", async () => {
    phone = await Baresip.start({ port: 27460, toneHz: 1000, rtpPortMin: 27500 });
    const call = await h.sim.placeWhatsAppCall({ phoneNumberId: SDES_NUMBER_ID, toneHz: 440, fromPhone: "447700900789" });
    await call.waitForState("media", 15_000);
    await sleep(2500);
    const answer = call.sdps.acceptAnswer!;
    expect(answer).toMatch(/m=audio \d+ RTP\/SAVP 111 126/);
    expect(answer).toMatch(/a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:/);
    expect(answer).not.toMatch(/a=ice-|a=fingerprint|a=setup/);
    expect(call.sdps.preAcceptAnswer).toBe(answer);
    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-35);
    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
    await sleep(300);
    const { pcm, sampleRate } = phone.receivedPcm();
    expect(pcm.length).toBeGreaterThan(sampleRate);
    const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
    expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);
  });
});
