import { afterEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { gatewayBackends } from "../support/drachtio.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { Kamailio } from "../support/kamailio.js";
import { freePort } from "../support/sipp.js";

/**
 * SIP_OUTBOUND_PROXY with a real proxy (kamailio), on each SIP backend: it challenges the INVITE
 * (407), Record-Routes it and forwards it to a phone; the target's host is never resolved, and
 * the BYE inside the dialog goes back through the proxy.
 */
for (const backend of gatewayBackends()) {
  describe.skipIf(backend.skipReason !== undefined)(`outbound proxy: kamailio [${backend.name}]`, () => {
    let h: Harness | undefined;
    let kam: Kamailio | undefined;
    let phone: Baresip | undefined;
    afterEach(async () => {
      await h?.stop();
      h = undefined;
      await kam?.stop();
      kam = undefined;
      await phone?.stop();
      phone = undefined;
    });

    it("a consumer's call through the proxy reaches the phone, audio both ways, BYE loose-routed back", async () => {
      phone = await Baresip.start({ port: 28560, toneHz: 1000, rtpPortMin: 28600 });
      const kamPort = await freePort();
      kam = await Kamailio.start({ port: kamPort, forwardToPort: 28560, realm: "proxy.test", username: "gw", password: "pr0xy" });
      h = await startHarness({
        sipBackend: backend.name,
        env: { SIP_TARGET: "sip:agent@pbx.example.invalid", SIP_OUTBOUND_PROXY: `sip:127.0.0.1:${kamPort}`, SIP_AUTH_USER: "gw", SIP_AUTH_PASSWORD: "pr0xy" },
      });
      const call = await h.sim.placeCall({ toneHz: 440 });
      await call.waitForState("media", 10_000);
      expect(kam.log).toMatch(/KAM challenge/);
      expect(kam.log).toMatch(/KAM authorized \S+ user gw/);
      await sleep(2000);
      const heard = call.consumer.detectTone(1);
      expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
      await call.hangup();
      await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
      await waitFor(() => /KAM in-dialog BYE loose-routed/.test(kam!.log), 5000, "the BYE through the proxy");
      const { pcm, sampleRate } = phone.receivedPcm();
      expect(Math.abs(detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate).hz - 440)).toBeLessThan(10);
    });
  });
}
