import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { drachtioAvailability, drachtioRequired, startDrachtio, type DrachtioServer } from "../support/drachtio.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { freePort } from "../support/sipp.js";
import { TestPki } from "../support/tls-certs.js";

/**
 * The drachtio backend over TLS with SRTP: drachtio-server terminates SIP over TLS with a
 * certificate made for this run (its `sips:…;transport=tls` contact), the gateway's own media
 * layer does SDES-keyed SRTP, and a real phone (baresip with `mediaenc=srtp-mand`) is called and
 * calls in; audio is decoded at both ends.
 */
function skipReason(): string | undefined {
  const where = drachtioAvailability();
  if (where.kind === "local" || drachtioRequired()) return undefined; // in CI: run, and fail on a missing server
  return where.kind === "none" ? where.reason : "DRACHTIO_HOST names a server whose TLS listener these tests cannot configure";
}
const skip = skipReason();
if (skip) process.stdout.write(`drachtio TLS tests skipped: ${skip}\n`);

describe.skipIf(skip !== undefined)("drachtio backend: SIP over TLS with SRTP", () => {
  let pki: TestPki;
  let drachtio: DrachtioServer;
  let phone: Baresip | undefined;
  let h: Harness | undefined;

  beforeAll(async () => {
    pki = new TestPki();
    const cert = pki.leaf("drachtio", "IP:127.0.0.1");
    drachtio = await startDrachtio({ tls: { certFile: cert.cert, keyFile: cert.key, chainFile: pki.ca.cert } });
  });
  afterEach(async () => {
    await phone?.stop();
    phone = undefined;
    await h?.stop();
    h = undefined;
  });
  afterAll(async () => {
    await drachtio?.stop();
    pki?.remove();
  });

  const gateway = (env: Record<string, string>, sim?: NonNullable<Parameters<typeof startHarness>[0]>["sim"]): Promise<Harness> =>
    startHarness({
      sipBackend: "drachtio",
      env: { DRACHTIO_HOST: drachtio.host, DRACHTIO_PORT: String(drachtio.port), DRACHTIO_SECRET: drachtio.secret, SIP_SRTP: "require", ...env },
      sim,
    });

  /** 1 kHz from the phone heard by the consumer, 440 Hz from the consumer heard by the phone. */
  async function audioBothWays(callId: string): Promise<void> {
    const call = h!.sim.calls().find((c) => c.id === callId)!;
    await call.waitForState("media", 10_000);
    expect(h!.gateway.registry.get(callId)!.pbxMediaStats()!.srtp).toBe("AES_CM_128_HMAC_SHA1_80");
    await sleep(2500);
    const atConsumer = call.consumer.detectTone(1);
    await call.hangup();
    // The phone writes what it heard once its side of the call has closed.
    await Promise.all([
      waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end"),
      waitFor(() => /terminated|closed/i.test(phone!.log), 5000, "the phone to see the call end"),
    ]);
    const heard = phone!.receivedPcm();
    const lastSecond = heard.pcm.subarray(Math.max(0, heard.pcm.length - heard.sampleRate));
    expect(lastSecond.length).toBe(heard.sampleRate);
    const atPhone = detectTone(lastSecond, heard.sampleRate);
    expect({ consumerHz: Math.round(atConsumer.hz / 10), phoneHz: Math.round(atPhone.hz / 10) }).toEqual({ consumerHz: 100, phoneHz: 44 });
    expect(atConsumer.levelDbfs).toBeGreaterThan(-35);
  }

  it("a consumer's call to a ;transport=tls phone: drachtio-server opens the TLS connection, audio both ways over SRTP", async () => {
    const port = await freePort();
    const cert = pki.leaf("phone", "IP:127.0.0.1");
    phone = await Baresip.start({ port, toneHz: 1000, rtpPortMin: 36100, mediaenc: "srtp-mand", tls: { certificate: cert.combined, cafile: pki.ca.cert } });
    h = await gateway({ SIP_TARGET: `sip:agent@127.0.0.1:${port + 1};transport=tls` });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    await audioBothWays(call.id);
    expect(drachtio.log()).toMatch(/tls\/127\.0\.0\.1:\d+/i);
  });

  it("an agent's phone calling drachtio-server's TLS port with SRTP required: audio both ways", async () => {
    h = await gateway({ SIP_ALLOW_FROM: "127.0.0.0/8" }, { outboundPickup: { afterMs: 400 } });
    expect(h.gateway.sipAddress.tlsPort).toBe(drachtio.tlsPort);
    const psid = "7200000012399";
    const cert = pki.leaf("agent-phone", "IP:127.0.0.1");
    phone = await Baresip.start({
      port: await freePort(),
      toneHz: 1000,
      rtpPortMin: 36300,
      mediaenc: "srtp-mand",
      tls: { certificate: cert.combined, cafile: pki.ca.cert },
      dial: `sip:${psid}@127.0.0.1:${drachtio.tlsPort};transport=tls`,
    });
    await waitFor(() => h!.sim.calls().some((c) => c.psid === psid), 10_000, "the consumer's call");
    await audioBothWays(h.sim.calls().find((c) => c.psid === psid)!.id);
  });
});
