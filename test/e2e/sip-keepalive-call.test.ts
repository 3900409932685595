import { afterEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { freePort } from "../support/sipp.js";
import { TestPki } from "../support/tls-certs.js";

/**
 * RFC 5626 keep-alives on the TLS connection of a live call, against a real phone (baresip,
 * whose SIP stack answers a CRLFCRLF ping with a CRLF pong): pinged while the call lives, the
 * pongs keep it open, and the call goes on undisturbed. (Idle closing and the release of a held
 * connection: test/integration/sip-keepalive.test.ts.)
 */
describe("keep-alives on a call's TLS connection to a phone", () => {
  let h: Harness | undefined;
  let phone: Baresip | undefined;
  let pki: TestPki | undefined;
  afterEach(async () => {
    await phone?.stop();
    phone = undefined;
    await h?.stop();
    h = undefined;
    pki?.remove();
    pki = undefined;
  });

  it("pings the call's connection while it lives, the phone answers, and the call is unaffected", async () => {
    pki = new TestPki();
    const gwCert = pki.leaf("gateway", "IP:127.0.0.1");
    const phoneCert = pki.leaf("phone", "IP:127.0.0.1");
    const port = await freePort();
    phone = await Baresip.start({ port, toneHz: 1000, rtpPortMin: 36900, tls: { certificate: phoneCert.combined, cafile: pki.ca.cert } });
    h = await startHarness({
      env: {
        SIP_TRANSPORTS: "udp,tls",
        SIP_TLS_CERT: gwCert.cert,
        SIP_TLS_KEY: gwCert.key,
        SIP_TLS_CA: pki.ca.cert,
        SIP_TARGET: `sip:agent@127.0.0.1:${port + 1};transport=tls`,
        SIP_KEEPALIVE_INTERVAL: "1",
      },
    });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    await waitFor(() => h!.logs.find("SIP flow answers keep-alives (RFC 5626); an unanswered one closes it").length > 0, 5000, "a pong from the phone");
    // Several intervals with pongs coming back: the connection stays, and the call with it.
    await sleep(2500);
    expect(h.logs.find("SIP flow did not answer a keep-alive; closed")).toHaveLength(0);
    expect(h.logs.find("SIP connection of a live call closed; later requests open a new one")).toHaveLength(0);
    expect(h.gateway.registry.size).toBe(1);
    await call.hangup();
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
    await waitFor(() => /terminated|closed/i.test(phone!.log), 5000, "the phone to see the BYE");
  });
});
