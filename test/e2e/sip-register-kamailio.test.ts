import { afterEach, describe, expect, it } from "vitest";
import { startHarness, waitFor, type Harness } from "../support/harness.js";
import { drachtioAvailability, drachtioRequired, gatewayBackends, startDrachtio, type DrachtioServer } from "../support/drachtio.js";
import { KamailioRegistrar } from "../support/kamailio-registrar.js";
import { TestPki } from "../support/tls-certs.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/** The registration settings of these tests, to the registrar at `uri`. */
function registrarEnv(uri: string): Record<string, string> {
  return { SIP_REGISTRAR: uri, SIP_REGISTER_USER: "meta-gw", SIP_REGISTER_PASSWORD: "s3cret-reg", SIP_ALLOW_FROM: "127.0.0.0/8", SIP_PSID_HEADER: "X-PSID" };
}

/** An agent calls the registered user at the registrar (UDP), which routes the call on to the gateway. */
async function agentCallThroughRegistrar(h: Harness, kamPort: number, psid: string): Promise<void> {
  const sipp = startSipp({
    scenario: "gw-agent-call-registered.xml",
    port: await freePort(),
    remote: `127.0.0.1:${kamPort}`,
    service: "meta-gw",
    vars: { psid, talk_ms: "1500" },
    timeoutS: 20,
  });
  await waitFor(() => h.sim.calls().some((c) => c.psid === psid), 10_000, "the consumer's call");
  const result = await finish(sipp);
  expect(result.code, describeSipp(result)).toBe(0);
}

/**
 * The gateway as a registered user of a real registrar (kamailio), on each SIP backend, over UDP
 * and over TLS (on drachtio, drachtio-server's own TLS listener): it registers with digest, and
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
        env: registrarEnv(`sip:127.0.0.1:${kamPort}`),
        sim: { outboundPickup: { afterMs: 300 } },
      });
      await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
      expect(kam.log).toMatch(/KAM registered sip:meta-gw@127\.0\.0\.1/);
      await agentCallThroughRegistrar(h, kamPort, "7200000012366");
      expect(kam.log).toMatch(/KAM routed \S+ to sip:meta-gw@127\.0\.0\.1:\d+/);
      await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
      // Shutting down removes the binding (Expires: 0), answering the registrar's challenge again.
      await h.stop();
      h = undefined;
      await waitFor(() => /KAM registered sip:meta-gw@127\.0\.0\.1 expires 0/.test(kam!.log), 3000, "the binding's removal");
    });
  });
}

/** drachtio-server with a TLS listener the test configures: one it starts itself. */
function drachtioTlsSkip(): string | undefined {
  const where = drachtioAvailability();
  if (where.kind === "local" || drachtioRequired()) return undefined; // in CI: run, and fail on a missing server
  return where.kind === "none" ? where.reason : "DRACHTIO_HOST names a server whose TLS listener this test cannot configure";
}

describe("registered to kamailio over TLS", () => {
  let h: Harness | undefined;
  let kam: KamailioRegistrar | undefined;
  let pki: TestPki | undefined;
  let drachtio: DrachtioServer | undefined;
  afterEach(async () => {
    await killAllSipp();
    await h?.stop();
    h = undefined;
    await kam?.stop();
    kam = undefined;
    await drachtio?.stop();
    drachtio = undefined;
    pki?.remove();
    pki = undefined;
  });

  /** kamailio as the registrar with a TLS listener on the port after its UDP one. */
  async function tlsRegistrar(): Promise<{ pki: TestPki; kam: KamailioRegistrar; kamPort: number }> {
    requireSipp();
    pki = new TestPki();
    const kamCert = pki.leaf("kamailio", "IP:127.0.0.1");
    const kamPort = await freePort();
    kam = await KamailioRegistrar.start({ port: kamPort, realm: "pbx.test", username: "meta-gw", password: "s3cret-reg", tls: { port: kamPort + 1, cert: kamCert.cert, key: kamCert.key } });
    return { pki, kam, kamPort };
  }

  async function registeredOverTls(gateway: Harness, registrar: KamailioRegistrar, kamPort: number, psid: string): Promise<void> {
    await waitFor(() => gateway.logs.find("SIP registration in place").length > 0, 5000, "the registration");
    expect(registrar.log).toMatch(/KAM registered sips:meta-gw@127\.0\.0\.1/);
    await agentCallThroughRegistrar(gateway, kamPort, psid);
  }

  it("registers over TLS (sips:), and the registrar reaches the gateway over TLS with an agent's call", async () => {
    const { pki, kam, kamPort } = await tlsRegistrar();
    const gwCert = pki.leaf("gateway", "IP:127.0.0.1");
    h = await startHarness({
      env: { SIP_TRANSPORTS: "udp,tls", SIP_TLS_CERT: gwCert.cert, SIP_TLS_KEY: gwCert.key, SIP_TLS_CA: pki.ca.cert, ...registrarEnv(`sips:127.0.0.1:${kamPort + 1}`) },
      sim: { outboundPickup: { afterMs: 300 } },
    });
    await registeredOverTls(h, kam, kamPort, "7200000012355");
    expect(kam.log).toMatch(/KAM routed \S+ to sips:meta-gw@127\.0\.0\.1:\d+/);
  });

  it.skipIf(drachtioTlsSkip() !== undefined)("[drachtio] drachtio-server registers over TLS, its TLS listener the Contact, and the registrar reaches it there", async () => {
    const { pki, kam, kamPort } = await tlsRegistrar();
    const cert = pki.leaf("drachtio", "IP:127.0.0.1");
    drachtio = await startDrachtio({ tls: { certFile: cert.cert, keyFile: cert.key, chainFile: pki.ca.cert } });
    h = await startHarness({
      sipBackend: "drachtio",
      env: { DRACHTIO_HOST: drachtio.host, DRACHTIO_PORT: String(drachtio.port), DRACHTIO_SECRET: drachtio.secret, ...registrarEnv(`sips:127.0.0.1:${kamPort + 1}`) },
      sim: { outboundPickup: { afterMs: 300 } },
    });
    await registeredOverTls(h, kam, kamPort, "7200000012344");
    expect(kam.log).toMatch(new RegExp(`KAM routed \\S+ to sips:meta-gw@127\\.0\\.0\\.1:${drachtio.tlsPort}\\b`));
  });
});
