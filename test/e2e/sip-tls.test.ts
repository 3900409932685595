import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { freePort } from "../support/sipp.js";
import { TestPki, type TestCert } from "../support/tls-certs.js";

/**
 * SIP over TLS (RFC 3261 §26) against a real phone (baresip) with certificates made for this run:
 * calls both ways over TLS with SRTP, and each way a certificate can be wrong failing its call.
 */
describe("SIP over TLS", () => {
  let pki: TestPki;
  let gatewayCert: TestCert;
  let phone: Baresip | undefined;
  let h: Harness | undefined;

  beforeAll(() => {
    pki = new TestPki();
    gatewayCert = pki.leaf("gateway", "IP:127.0.0.1,DNS:localhost");
  });
  afterEach(async () => {
    await phone?.stop();
    phone = undefined;
    await h?.stop();
    h = undefined;
  });
  afterAll(() => pki?.remove());

  const tlsEnv = (extra: Record<string, string>): Record<string, string> => ({
    SIP_TRANSPORTS: "udp,tcp,tls",
    SIP_TLS_CERT: gatewayCert.cert,
    SIP_TLS_KEY: gatewayCert.key,
    SIP_TLS_CA: pki.ca.cert,
    ...extra,
  });

  async function expectAudioBothWays(callId: string): Promise<void> {
    const call = h!.sim.calls().find((c) => c.id === callId)!;
    await call.waitForState("media", 10_000);
    await sleep(2500);
    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-35);
    await call.hangup();
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
    await waitFor(() => /terminated|closed/i.test(phone!.log), 5000, "the phone to see the call end");
    const { pcm, sampleRate } = phone!.receivedPcm();
    expect(pcm.length).toBeGreaterThan(sampleRate);
    const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
    expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);
  }

  it("a consumer's call to a ;transport=tls phone with SRTP required: audio both ways; the next call reuses the TLS connection", async () => {
    const cert = pki.leaf("phone", "IP:127.0.0.1");
    phone = await Baresip.start({ port: 28060, toneHz: 1000, rtpPortMin: 28100, mediaenc: "srtp-mand", tls: { certificate: cert.combined, cafile: pki.ca.cert } });
    h = await startHarness({ env: tlsEnv({ SIP_TARGET: "sip:agent@127.0.0.1:28061;transport=tls", SIP_SRTP: "require", LOG_LEVEL: "debug" }) });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    expect(h.gateway.registry.get(call.id)!.pbxMediaStats()!.srtp).toBe("AES_CM_128_HMAC_SHA1_80");
    await expectAudioBothWays(call.id);
    // A second call rides the connection the first one opened.
    const second = await h.sim.placeCall({ toneHz: 440 });
    await second.waitForState("accepted", 10_000);
    await second.hangup();
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the second call to end");
    expect(h.logs.find("SIP TLS connection opened")).toHaveLength(1);
  });

  it("a sips: target works the same way", async () => {
    const cert = pki.leaf("phone-sips", "IP:127.0.0.1");
    phone = await Baresip.start({ port: 28160, toneHz: 1000, rtpPortMin: 28200, tls: { certificate: cert.combined, cafile: pki.ca.cert } });
    h = await startHarness({ env: tlsEnv({ SIP_TARGET: "sips:agent@127.0.0.1:28161" }) });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    await expectAudioBothWays(call.id);
  });

  it("an agent's phone calling in over TLS with SRTP: audio both ways", async () => {
    const port = await freePort();
    h = await startHarness({ env: tlsEnv({ SIP_LISTEN: `127.0.0.1:${port}`, SIP_ALLOW_FROM: "127.0.0.0/8", SIP_SRTP: "require" }), sim: { outboundPickup: { afterMs: 400 } } });
    const tlsPort = h.gateway.sipAddress.tlsPort!;
    expect(tlsPort).toBe(port + 1);
    const cert = pki.leaf("agent-phone", "IP:127.0.0.1");
    const psid = "7200000012377";
    phone = await Baresip.start({
      port: 28260,
      toneHz: 1000,
      rtpPortMin: 28300,
      mediaenc: "srtp-mand",
      tls: { certificate: cert.combined, cafile: pki.ca.cert },
      dial: `sip:${psid}@127.0.0.1:${tlsPort};transport=tls`,
    });
    await waitFor(() => h!.sim.calls().some((c) => c.psid === psid), 10_000, "the consumer's call");
    const call = h.sim.calls().find((c) => c.psid === psid)!;
    await call.waitForState("media", 10_000);
    expect(h.gateway.registry.get(call.id)!.pbxMediaStats()!.srtp).toBe("AES_CM_128_HMAC_SHA1_80");
    await expectAudioBothWays(call.id);
  });

  it("SIP_TLS_VERIFY=false accepts a phone whose certificate nobody vouches for", async () => {
    const cert = pki.leaf("lab-phone", "DNS:lab.invalid", "unknown");
    phone = await Baresip.start({ port: 28460, toneHz: 1000, rtpPortMin: 28500, tls: { certificate: cert.combined } });
    h = await startHarness({ env: tlsEnv({ SIP_TARGET: "sip:agent@127.0.0.1:28461;transport=tls", SIP_TLS_VERIFY: "false" }) });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    expect(h.logs.find("SIP TLS connection refused: the peer's certificate did not verify")).toHaveLength(0);
    await expectAudioBothWays(call.id);
  });

  it.each([
    ["a certificate for another name", "wrong-name", "DNS:pbx.other.example", "trusted", /ALTNAME/],
    ["a certificate from an unknown CA", "unknown-ca", "IP:127.0.0.1", "unknown", /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/],
  ] as const)("%s: that call fails with a clear log line, the gateway goes on", async (_label, name, san, issuer, code) => {
    const cert = pki.leaf(name, san, issuer);
    phone = await Baresip.start({ port: 28360, toneHz: 1000, rtpPortMin: 28400, tls: { certificate: cert.combined } });
    h = await startHarness({ env: tlsEnv({ SIP_TARGET: "sip:agent@127.0.0.1:28361;transport=tls" }) });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("ended", 15_000);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
    expect(graphRequests(h.sim, "reject", call.id)).toHaveLength(1);
    const refused = h.logs.find("SIP TLS connection refused: the peer's certificate did not verify");
    expect(refused.length).toBeGreaterThan(0);
    expect(String(refused[0]!.code)).toMatch(code);
    // The call's own lines say why it failed.
    const callLines = h.logs.lines.filter((l) => l.callId === call.id).map((l) => JSON.stringify(l));
    expect(callLines.some((l) => l.includes("TLS") && code.test(l))).toBe(true);
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
    // The phone never rang.
    expect(phone.log).not.toMatch(/Incoming call/i);
    expect(h.gateway.sipAddress.tlsPort).toBeGreaterThan(0);
  });
});
