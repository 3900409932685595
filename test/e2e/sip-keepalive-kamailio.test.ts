import { afterEach, describe, expect, it } from "vitest";
import { startHarness, waitFor, type Harness } from "../support/harness.js";
import { KamailioRegistrar } from "../support/kamailio-registrar.js";
import { freePort } from "../support/sipp.js";
import { TestPki } from "../support/tls-certs.js";

/**
 * RFC 5626 keep-alives on the TLS connection of a registration, against kamailio (which answers a
 * CRLFCRLF ping with a CRLF pong): the gateway pings it, and when kamailio stops answering (frozen
 * with SIGSTOP, its socket still open) the gateway closes the connection and registers again.
 */
describe("keep-alives on a registration's TLS connection to kamailio", () => {
  let h: Harness | undefined;
  let kam: KamailioRegistrar | undefined;
  let pki: TestPki | undefined;
  afterEach(async () => {
    kam?.resume();
    await h?.stop();
    h = undefined;
    await kam?.stop();
    kam = undefined;
    pki?.remove();
    pki = undefined;
  });

  it("pings, closes the connection when a pong goes missing, and registers again on a new one", async () => {
    pki = new TestPki();
    const kamCert = pki.leaf("kamailio", "IP:127.0.0.1");
    const gwCert = pki.leaf("gateway", "IP:127.0.0.1");
    const kamPort = await freePort();
    kam = await KamailioRegistrar.start({ port: kamPort, realm: "pbx.test", username: "meta-gw", password: "s3cret-reg", tls: { port: kamPort + 1, cert: kamCert.cert, key: kamCert.key } });
    h = await startHarness({
      env: {
        SIP_TRANSPORTS: "udp,tls",
        SIP_TLS_CERT: gwCert.cert,
        SIP_TLS_KEY: gwCert.key,
        SIP_TLS_CA: pki.ca.cert,
        SIP_REGISTRAR: `sips:127.0.0.1:${kamPort + 1}`,
        SIP_REGISTER_USER: "meta-gw",
        SIP_REGISTER_PASSWORD: "s3cret-reg",
        SIP_KEEPALIVE_INTERVAL: "1",
      },
    });
    await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
    const registered = (): number => (kam!.log.match(/KAM registered sips:meta-gw@127\.0\.0\.1 expires [1-9]/g) ?? []).length;
    expect(registered()).toBe(1);
    // kamailio answered a ping: from now on a missing pong counts.
    await waitFor(() => h!.logs.find("SIP flow answers keep-alives (RFC 5626); an unanswered one closes it").length > 0, 5000, "a pong from kamailio");
    expect(h.logs.find("SIP flow did not answer a keep-alive; closed")).toHaveLength(0);

    kam.pause();
    await waitFor(() => h!.logs.find("SIP flow did not answer a keep-alive; closed").length > 0, 6000, "the unanswered keep-alive");
    await waitFor(() => h!.logs.find("SIP connection to the registrar closed; registering again").length > 0, 2000, "the new registration attempt");
    kam.resume();
    // A fresh binding, well before the first one (3600 s) would have been refreshed.
    await waitFor(() => registered() >= 2, 8000, "the second REGISTER at kamailio");
    expect(h.logs.find("SIP registration failed")).toHaveLength(0);
  });
});
