import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { KamailioRegistrar } from "../support/kamailio-registrar.js";
import { freePort } from "../support/sipp.js";
import { TestPki } from "../support/tls-certs.js";

const ANSWERS = "SIP flow answers keep-alives (RFC 5626); an unanswered one closes it";
const UNANSWERED = "SIP flow did not answer a keep-alive; closed";

/**
 * RFC 5626 keep-alives (SIP_KEEPALIVE_INTERVAL) on TLS connections the gateway holds, against
 * peers whose SIP stacks answer a CRLFCRLF ping with a CRLF pong: kamailio as the registrar, and
 * baresip as the phone of a live call. (Idle closing and the release of a held connection, over
 * TCP: test/integration/sip-keepalive.test.ts.)
 */
describe("keep-alives on held TLS connections", () => {
  let pki: TestPki;
  let h: Harness | undefined;
  let kam: KamailioRegistrar | undefined;
  let phone: Baresip | undefined;
  beforeEach(() => {
    pki = new TestPki();
  });
  afterEach(async () => {
    kam?.resume();
    await h?.stop();
    await phone?.stop();
    await kam?.stop();
    [h, phone, kam] = [undefined, undefined, undefined];
    pki.remove();
  });

  /** The gateway over TLS, trusting the test CA, pinging every second. */
  function gateway(env: Record<string, string>): Promise<Harness> {
    const cert = pki.leaf("gateway", "IP:127.0.0.1");
    return startHarness({ env: { SIP_TRANSPORTS: "udp,tls", SIP_TLS_CERT: cert.cert, SIP_TLS_KEY: cert.key, SIP_TLS_CA: pki.ca.cert, SIP_KEEPALIVE_INTERVAL: "1", ...env } });
  }

  it("a registration's connection: pinged; when kamailio stops answering (frozen, socket open) it is closed and the binding made again on a new one", async () => {
    const kamCert = pki.leaf("kamailio", "IP:127.0.0.1");
    const kamPort = await freePort();
    kam = await KamailioRegistrar.start({ port: kamPort, realm: "pbx.test", username: "meta-gw", password: "s3cret-reg", tls: { port: kamPort + 1, cert: kamCert.cert, key: kamCert.key } });
    h = await gateway({ SIP_REGISTRAR: `sips:127.0.0.1:${kamPort + 1}`, SIP_REGISTER_USER: "meta-gw", SIP_REGISTER_PASSWORD: "s3cret-reg" });
    await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
    const registered = (): number => (kam!.log.match(/KAM registered sips:meta-gw@127\.0\.0\.1 expires [1-9]/g) ?? []).length;
    expect(registered()).toBe(1);
    // kamailio answered a ping: from now on a missing pong counts.
    await waitFor(() => h!.logs.find(ANSWERS).length > 0, 5000, "a pong from kamailio");
    expect(h.logs.find(UNANSWERED)).toHaveLength(0);

    kam.pause();
    await waitFor(() => h!.logs.find(UNANSWERED).length > 0, 6000, "the unanswered keep-alive");
    await waitFor(() => h!.logs.find("SIP connection to the registrar closed; registering again").length > 0, 2000, "the new registration attempt");
    kam.resume();
    // A fresh binding, well before the first one (3600 s) would have been refreshed.
    await waitFor(() => registered() >= 2, 8000, "the second REGISTER at kamailio");
    expect(h.logs.find("SIP registration failed")).toHaveLength(0);
  });

  it("a live call's connection: pinged while the call lives, baresip answers, and the call goes on undisturbed", async () => {
    const phoneCert = pki.leaf("phone", "IP:127.0.0.1");
    const port = await freePort();
    phone = await Baresip.start({ port, toneHz: 1000, rtpPortMin: 36900, tls: { certificate: phoneCert.combined, cafile: pki.ca.cert } });
    h = await gateway({ SIP_TARGET: `sip:agent@127.0.0.1:${port + 1};transport=tls` });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    await waitFor(() => h!.logs.find(ANSWERS).length > 0, 5000, "a pong from the phone");
    // Several intervals with pongs coming back: the connection stays, and the call with it.
    await sleep(2500);
    expect(h.logs.find(UNANSWERED)).toHaveLength(0);
    expect(h.logs.find("SIP connection of a live call closed; later requests open a new one")).toHaveLength(0);
    expect(h.gateway.registry.size).toBe(1);
    await call.hangup();
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
    await waitFor(() => /terminated|closed/i.test(phone!.log), 5000, "the phone to see the BYE");
  });
});
