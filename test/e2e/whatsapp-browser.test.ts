import { existsSync } from "node:fs";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { DEFAULT_CHROMIUM_PATH } from "../../sim/chromium.js";
import { SimStateError } from "../../sim/errors.js";
import { BrowserWhatsAppConsumer } from "../../sim/wa-browser-consumer.js";
import { detectTone } from "../../transcode/tone.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/** Business calls from baresip take the first number: its users are played by Chromium (number-level switch). */
const BROWSER_NUMBER_ID = "109876543230";
/** A number whose users are werift unless a call asks for the browser (call-level switch). */
const WERIFT_NUMBER_ID = "109876543231";
/** Known only to the simulator: keyed with SDES, which the browser cannot speak. */
const SDES_NUMBER_ID = "109876543232";
const WABA_ID = "556677889911";
const TOKEN = "EAAwhatsapptoken";
/** The phone the browser number rings (it dials out itself for business calls), and the other number's phone. */
const AGENT_SIP_PORT = 24260;
const PHONE_SIP_PORT = 24060;

/** Every line of `sdp` starting with `prefix`. */
function linesOf(sdp: string, prefix: string): string[] {
  return sdp.split(/\r?\n/).filter((l) => l.startsWith(prefix));
}

/** The tone the phone heard in its last second of audio. */
function phoneHeard(phone: Baresip): number {
  const { pcm, sampleRate } = phone.receivedPcm();
  expect(pcm.length).toBeGreaterThan(sampleRate);
  return detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate).hz;
}

/**
 * Headless Chromium, a real browser WebRTC stack, plays the WhatsApp user through the real gateway to a
 * real SIP phone (baresip), both ways: its offer reaches the gateway in the shape of Meta's, and it
 * answers the gateway's offer; tones decoded at both ends.
 */
describe("Chromium as the WhatsApp user, through the gateway to baresip", () => {
  let h: Harness;
  let phone: Baresip | undefined;
  beforeAll(async () => {
    h = await startHarness({
      env: {
        WHATSAPP_PHONE_NUMBERS: `${BROWSER_NUMBER_ID}=sip:agent@127.0.0.1:${AGENT_SIP_PORT},${WERIFT_NUMBER_ID}=sip:agent@127.0.0.1:${PHONE_SIP_PORT}`,
        WHATSAPP_ACCESS_TOKEN: TOKEN,
        WHATSAPP_WABA_ID: WABA_ID,
        SIP_ALLOW_FROM: "127.0.0.0/8",
      },
      sim: {
        whatsapp: {
          numbers: [
            { wabaId: WABA_ID, phoneNumberId: BROWSER_NUMBER_ID, displayPhoneNumber: "15550003333", accessToken: TOKEN, consumer: "browser" },
            { wabaId: WABA_ID, phoneNumberId: WERIFT_NUMBER_ID, displayPhoneNumber: "15550004444", accessToken: TOKEN },
            { wabaId: WABA_ID, phoneNumberId: SDES_NUMBER_ID, displayPhoneNumber: "15550005555", accessToken: TOKEN, srtpKeyExchange: "SDES" },
          ],
          outboundPickup: { afterMs: 500 },
        },
      },
    });
  });
  beforeEach(async () => {
    // A missing browser fails the test (a throwing beforeAll would only mark it skipped); CI has it.
    if (!existsSync(DEFAULT_CHROMIUM_PATH)) throw new Error(`Chromium is required at ${DEFAULT_CHROMIUM_PATH} (Debian package chromium)`);
    await h.sim.whatsapp.consumerBrowser();
  });
  afterEach(async () => {
    await phone?.stop();
    phone = undefined;
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("a user's call: Chromium's offer in Meta's shape, pre_accept and accept, tones both ways, its DTMF on 126/8000", async () => {
    phone = await Baresip.start({ port: PHONE_SIP_PORT, toneHz: 1000, rtpPortMin: 24100 });
    const call = await h.sim.placeWhatsAppCall({ phoneNumberId: WERIFT_NUMBER_ID, consumer: "browser", toneHz: 440, fromPhone: "447700900321", name: "Grace Hopper" });
    expect(call.consumer).toBeInstanceOf(BrowserWhatsAppConsumer);

    // What the gateway was offered: Chromium's ICE and DTLS in the shape of Meta's offer (§5.7).
    const offer = call.sdps.consumerOffer!;
    expect(linesOf(offer, "a=group:")).toEqual(["a=group:BUNDLE audio"]);
    expect(offer).toMatch(/^a=ice-lite$/m);
    expect(linesOf(offer, "m=")).toEqual([expect.stringMatching(/^m=audio \d+ UDP\/TLS\/RTP\/SAVPF 111 126$/)]);
    expect(linesOf(offer, "a=mid:")).toEqual(["a=mid:audio"]);
    expect(linesOf(offer, "a=rtpmap:")).toEqual(["a=rtpmap:111 opus/48000/2", "a=rtpmap:126 telephone-event/8000"]);
    expect(linesOf(offer, "a=fmtp:111")).toEqual(["a=fmtp:111 minptime=10;useinbandfec=1"]);
    expect(linesOf(offer, "a=fingerprint:").every((l) => l.startsWith("a=fingerprint:sha-256 "))).toBe(true);
    expect(linesOf(offer, "a=setup:")).toEqual(["a=setup:actpass"]);
    expect(linesOf(offer, "a=extmap")).toEqual([]);
    const candidates = linesOf(offer, "a=candidate:");
    expect(candidates.length).toBeGreaterThan(0);
    for (const c of candidates) expect(c).toMatch(/^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host generation 0 network-cost 50 ufrag \S+$/);

    await call.waitForState("media", 20_000);
    await sleep(2500);
    const actions = call.actionLog.map((a) => a.action);
    expect(actions.slice(0, 2)).toEqual(["pre_accept", "accept"]);
    expect(call.actionLog.every((a) => a.outcome === "ok")).toBe(true);
    expect(call.sdps.acceptAnswer).toBe(call.sdps.preAcceptAnswer);
    expect(call.sdps.acceptAnswer).toMatch(/^a=mid:audio$/m);
    expect(call.sdps.acceptAnswer).toMatch(/^a=setup:active$/m);

    // The phone's 1 kHz tone, as Chromium decoded and played it out.
    const consumer = call.consumer as BrowserWhatsAppConsumer;
    const heard = consumer.detectTone(1);
    expect(Math.abs(heard.hz - 1000), JSON.stringify(heard)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-40);
    expect(consumer.stats.payloadTypes).toEqual([111]);
    expect(consumer.stats.packetsSent).toBeGreaterThan(50);

    // Chromium's RTCDTMFSender, on the only telephone-event negotiated.
    await consumer.sendDtmf("5", 200);
    await waitFor(() => h.logs.find("DTMF from consumer").some((l) => l.digit === "5"), 5000, "the gateway to read the browser's key press");
    expect(consumer.failures).toEqual([]);

    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
    await sleep(300);
    expect(Math.abs(phoneHeard(phone) - 440)).toBeLessThan(10);
  }, 60_000);

  it("a business call: Chromium answers the gateway's offer, ACCEPTED on pickup, tones both ways, terminate when the agent hangs up", async () => {
    phone = await Baresip.start({ port: AGENT_SIP_PORT, toneHz: 1000, rtpPortMin: 24300, dial: `sip:+447700900654@127.0.0.1:${h.gateway.sipAddress.port}` });
    await waitFor(() => h.sim.whatsapp.calls().some((c) => c.direction === "BUSINESS_INITIATED"), 15_000, "the user's call");
    const call = h.sim.whatsapp.calls().find((c) => c.direction === "BUSINESS_INITIATED")!;
    expect(call.phoneNumberId).toBe(BROWSER_NUMBER_ID);
    expect(call.consumer).toBeInstanceOf(BrowserWhatsAppConsumer);
    await call.waitForState("media", 20_000);
    await sleep(2500);
    expect(call.user.waId).toBe("447700900654");
    expect(call.statuses).toEqual(["RINGING", "ACCEPTED"]);

    // Chromium's answer as Meta's: ice-lite, active (the business is DTLS server), the business's mid echoed.
    const offer = call.sdps.businessOffer!;
    const answer = call.sdps.consumerAnswer!;
    expect(answer).toMatch(/^a=ice-lite$/m);
    expect(linesOf(answer, "a=setup:")).toEqual(["a=setup:active"]);
    expect(linesOf(answer, "a=mid:")).toEqual(linesOf(offer, "a=mid:"));
    expect(linesOf(answer, "a=fingerprint:").every((l) => l.startsWith("a=fingerprint:sha-256 "))).toBe(true);
    for (const c of linesOf(answer, "a=candidate:")) expect(c).toMatch(/ 127\.0\.0\.1 \d+ typ host /);
    expect(linesOf(answer, "a=rtpmap:").map((l) => l.replace(/^a=rtpmap:\d+ /, ""))).toEqual(["opus/48000/2", "telephone-event/8000"]);

    const consumer = call.consumer as BrowserWhatsAppConsumer;
    const heard = consumer.detectTone(1);
    expect(Math.abs(heard.hz - 1000), JSON.stringify(heard)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-40);
    expect(Math.abs(phoneHeard(phone) - 440)).toBeLessThan(10);
    expect(consumer.failures).toEqual([]);

    // baresip says BYE as it exits.
    await phone.stop();
    phone = undefined;
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the gateway to end the call");
    await call.waitForState("ended", 5000);
    expect(call.actionLog.map((a) => a.action)).toEqual(["connect", "terminate"]);
    // The ended call closed its page.
    expect(consumer.state).toBe("closed");
  }, 60_000);

  it("an SDES number cannot have the browser as its user: the call is refused before any webhook", async () => {
    const posts = h.sim.whatsapp.webhookPosts.length;
    await expect(h.sim.placeWhatsAppCall({ phoneNumberId: SDES_NUMBER_ID, consumer: "browser" })).rejects.toThrow(SimStateError);
    expect(h.sim.whatsapp.webhookPosts.length).toBe(posts);
    expect(h.sim.whatsapp.calls().filter((c) => c.phoneNumberId === SDES_NUMBER_ID)).toEqual([]);
  });
});
