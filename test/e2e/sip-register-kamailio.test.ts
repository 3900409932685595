import { afterEach, describe, expect, it } from "vitest";
import { startHarness, waitFor, type Harness } from "../support/harness.js";
import { gatewayBackends } from "../support/drachtio.js";
import { KamailioRegistrar } from "../support/kamailio-registrar.js";
import { TestPki } from "../support/tls-certs.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/**
 * The gateway as a registered user of a real registrar (kamailio), on each SIP backend (over TLS
 * on the embedded one, whose TLS settings are its own): it registers with digest, and
 * an agent's call to that user is routed by the registrar to the gateway and rings the consumer
 * named in a header; at shutdown the binding is removed.
 */
for (const backend of gatewayBackends()) {
  describe.skipIf(backend.skipReason !== undefined)(`registered to kamailio [${backend.name}]`, () => {
    let h: Harness | undefined;
    let kam: KamailioRegistrar | undefined;
    afterEach(async () => {
      await killAllSipp();
      await h?.stop();
      h = undefined;
      await kam?.stop();
      kam = undefined;
    });

    it("an agent's call to the registered user reaches the consumer", async () => {
      requireSipp();
      const kamPort = await freePort();
      kam = await KamailioRegistrar.start({ port: kamPort, realm: "pbx.test", username: "meta-gw", password: "s3cret-reg" });
      h = await startHarness({
        sipBackend: backend.name,
        env: {
          SIP_REGISTRAR: `sip:127.0.0.1:${kamPort}`,
          SIP_REGISTER_USER: "meta-gw",
          SIP_REGISTER_PASSWORD: "s3cret-reg",
          SIP_ALLOW_FROM: "127.0.0.0/8",
          SIP_PSID_HEADER: "X-PSID",
        },
        sim: { outboundPickup: { afterMs: 300 } },
      });
      await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
      expect(kam.log).toMatch(/KAM registered sip:meta-gw@127\.0\.0\.1/);
      const psid = "7200000012366";
      const agentPort = await freePort();
      const sipp = startSipp({
        scenario: "gw-agent-call-registered.xml",
        port: agentPort,
        remote: `127.0.0.1:${kamPort}`,
        service: "meta-gw",
        vars: { psid, talk_ms: "1500" },
        timeoutS: 20,
      });
      await waitFor(() => h!.sim.calls().some((c) => c.psid === psid), 10_000, "the consumer's call");
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      expect(kam.log).toMatch(/KAM routed \S+ to sip:meta-gw@127\.0\.0\.1:\d+/);
      await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
      // Shutting down removes the binding (Expires: 0), answering the registrar's challenge again.
      await h.stop();
      h = undefined;
      await waitFor(() => /KAM registered sip:meta-gw@127\.0\.0\.1 expires 0/.test(kam!.log), 3000, "the binding's removal");
    });
  });
}

describe("registered to kamailio over TLS", () => {
  let h: Harness | undefined;
  let kam: KamailioRegistrar | undefined;
  let pki: TestPki | undefined;
  afterEach(async () => {
    await killAllSipp();
    await h?.stop();
    h = undefined;
    await kam?.stop();
    kam = undefined;
    pki?.remove();
    pki = undefined;
  });

  it("registers over TLS (sips:), and the registrar reaches the gateway over TLS with an agent's call", async () => {
    requireSipp();
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
        SIP_ALLOW_FROM: "127.0.0.0/8",
        SIP_PSID_HEADER: "X-PSID",
      },
      sim: { outboundPickup: { afterMs: 300 } },
    });
    await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
    expect(kam.log).toMatch(/KAM registered sips:meta-gw@127\.0\.0\.1/);
    const psid = "7200000012355";
    const sipp = startSipp({
      scenario: "gw-agent-call-registered.xml",
      port: await freePort(),
      remote: `127.0.0.1:${kamPort}`,
      service: "meta-gw",
      vars: { psid, talk_ms: "1500" },
      timeoutS: 20,
    });
    await waitFor(() => h!.sim.calls().some((c) => c.psid === psid), 10_000, "the consumer's call");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(kam.log).toMatch(/KAM routed \S+ to sips:meta-gw@127\.0\.0\.1:\d+/);
  });
});
