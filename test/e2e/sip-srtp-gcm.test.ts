import { afterEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { Kamailio } from "../support/kamailio.js";
import { freePort } from "../support/sipp.js";

/**
 * AEAD_AES_128_GCM (RFC 7714) against an independent implementation: baresip's srtp module
 * (libre, on OpenSSL's GCM). The gateway's offer reaches the phone through kamailio as the
 * outbound proxy, which keeps only its GCM crypto line, as toward a PBX that runs only GCM; the
 * phone answers it and audio is decoded at both ends.
 */
describe("SRTP with AEAD_AES_128_GCM toward a phone that chooses it", () => {
  let h: Harness | undefined;
  let phone: Baresip | undefined;
  let kam: Kamailio | undefined;
  afterEach(async () => {
    await phone?.stop();
    phone = undefined;
    await h?.stop();
    h = undefined;
    await kam?.stop();
    kam = undefined;
  });

  it("a consumer's call keyed with AEAD_AES_128_GCM: audio both ways", async () => {
    const phonePort = await freePort();
    phone = await Baresip.start({ port: phonePort, toneHz: 1000, rtpPortMin: 36500, mediaenc: "srtp-mand" });
    const kamPort = await freePort();
    kam = await Kamailio.start({ port: kamPort, forwardToPort: phonePort, realm: "-", username: "-", password: "-", open: true, onlyCryptoSuites: ["AEAD_AES_128_GCM"] });
    h = await startHarness({ env: { SIP_TARGET: `sip:agent@127.0.0.1:${phonePort}`, SIP_OUTBOUND_PROXY: `sip:127.0.0.1:${kamPort}`, SIP_SRTP: "require" } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("media", 10_000);
    expect(h.gateway.registry.get(call.id)!.pbxMediaStats()!.srtp).toBe("AEAD_AES_128_GCM");
    expect(phone.log).toMatch(/SRTP is Enabled \(cryptosuite=AEAD_AES_128_GCM\)/);
    await sleep(2500);
    const atConsumer = call.consumer.detectTone(1);
    await call.hangup();
    await Promise.all([
      waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end"),
      waitFor(() => /terminated|closed/i.test(phone!.log), 5000, "the phone to see the call end"),
    ]);
    const heard = phone.receivedPcm();
    const lastSecond = heard.pcm.subarray(Math.max(0, heard.pcm.length - heard.sampleRate));
    expect(lastSecond.length).toBe(heard.sampleRate);
    expect({ consumer: Math.round(atConsumer.hz / 10), phone: Math.round(detectTone(lastSecond, heard.sampleRate).hz / 10) }).toEqual({ consumer: 100, phone: 44 });
    expect(atConsumer.levelDbfs).toBeGreaterThan(-35);
  });
});
