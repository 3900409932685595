import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * SDES-keyed SRTP toward a real SIP phone (baresip and its srtp module): the consumer's 440 Hz
 * decoded at the phone and the phone's 1 kHz decoded at the consumer prove both directions were
 * encrypted and decrypted with the keys each side put in its SDP (a packet that does not
 * authenticate is dropped, so no key mix-up can pass as audio).
 */

async function expectAudioBothWays(h: Harness, phone: Baresip, callId: string): Promise<void> {
  const call = h.sim.calls().find((c) => c.id === callId)!;
  await call.waitForState("media", 10_000);
  await sleep(2500);
  const heard = call.consumer.detectTone(1);
  expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
  expect(heard.levelDbfs).toBeGreaterThan(-35);
  const stats = h.gateway.registry.get(call.id)!.pbxMediaStats()!;
  expect(stats.rtp.packetsReceived).toBeGreaterThan(50);
  expect(stats.rtp.packetsSent).toBeGreaterThan(50);
  await call.hangup();
  await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
  await waitFor(() => /terminated|closed/i.test(phone.log), 5000, "the phone to see the call end");
  const { pcm, sampleRate } = phone.receivedPcm();
  expect(pcm.length).toBeGreaterThan(sampleRate);
  const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
  expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);
  expect(atPhone.levelDbfs).toBeGreaterThan(-35);
}

function suiteOf(h: Harness, callId: string): unknown {
  return h.logs.find("SRTP toward the PBX").find((l) => l.callId === callId)?.suite;
}

describe("SRTP toward the PBX (SDES)", () => {
  let phone: Baresip | undefined;
  let h: Harness | undefined;
  afterEach(async () => {
    await killAllSipp();
    await phone?.stop();
    phone = undefined;
    await h?.stop();
    h = undefined;
  });

  it("SIP_SRTP=require to a phone that takes only RTP/SAVP: encrypted audio both ways", async () => {
    phone = await Baresip.start({ port: 29060, toneHz: 1000, rtpPortMin: 29100, mediaenc: "srtp-mand" });
    h = await startHarness({ env: { SIP_TARGET: "sip:agent@127.0.0.1:29060", SIP_SRTP: "require", LOG_LEVEL: "debug" } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    expect(suiteOf(h, call.id)).toBe("AES_CM_128_HMAC_SHA1_80");
    expect(h.gateway.registry.get(call.id)!.pbxMediaStats()!.srtp).toBe("AES_CM_128_HMAC_SHA1_80");
    // Our offer at debug shows the transport and suites, never a key.
    const offers = h.logs.find("SDP offer to the PBX").filter((l) => l.callId === call.id);
    expect(offers.length).toBeGreaterThan(0);
    expect(String(offers[0]!.sipSdp)).toMatch(/m=audio \d+ RTP\/SAVP /);
    expect(String(offers[0]!.sipSdp)).toContain("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>");
    expect(h.logs.lines.some((l) => /inline:(?!<redacted>)[A-Za-z0-9+/]{20}/.test(JSON.stringify(l)))).toBe(false);
    await expectAudioBothWays(h, phone, call.id);
  });

  it("SIP_SRTP=offer (default) to a phone that offers SRTP best-effort: the PBX's crypto answer switches it on", async () => {
    phone = await Baresip.start({ port: 29160, toneHz: 1000, rtpPortMin: 29200, mediaenc: "srtp" });
    h = await startHarness({ env: { SIP_TARGET: "sip:agent@127.0.0.1:29160" } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    expect(h.gateway.registry.get(call.id)!.pbxMediaStats()!.srtp).toBeDefined();
    await expectAudioBothWays(h, phone, call.id);
  });

  it("SIP_SRTP=offer to a phone without SRTP: plain RTP, audio both ways", async () => {
    phone = await Baresip.start({ port: 29260, toneHz: 1000, rtpPortMin: 29300 });
    h = await startHarness({ env: { SIP_TARGET: "sip:agent@127.0.0.1:29260", SIP_SRTP: "offer" } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    expect(h.gateway.registry.get(call.id)!.pbxMediaStats()!.srtp).toBeUndefined();
    await expectAudioBothWays(h, phone, call.id);
  });

  it("SIP_SRTP=require to a phone without SRTP: it refuses RTP/SAVP, the consumer's call is rejected at Meta", async () => {
    phone = await Baresip.start({ port: 29360, toneHz: 1000, rtpPortMin: 29400 });
    h = await startHarness({ env: { SIP_TARGET: "sip:agent@127.0.0.1:29360", SIP_SRTP: "require" } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("ended", 15_000);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
    expect(graphRequests(h.sim, "reject", call.id)).toHaveLength(1);
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
  });

  it("SIP_SRTP=require and a PBX (SIPp) that answers plain RTP/AVP: BYE to the PBX, rejected at Meta", async () => {
    requireSipp();
    const port = await freePort();
    const sipp = startSipp({ scenario: "uas-answer-plain-to-savp.xml", port, timeoutS: 20 });
    await sipp.ready;
    h = await startHarness({ env: { SIP_TARGET: `sip:agent@127.0.0.1:${port}`, SIP_SRTP: "require" } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("ended", 15_000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
    expect(graphRequests(h.sim, "reject", call.id)).toHaveLength(1);
    const refused = h.logs.find("PBX answer unusable").find((l) => l.callId === call.id);
    expect(JSON.stringify(refused?.err)).toMatch(/SIP_SRTP is require/);
  });

  it("SIP_SRTP=require and an agent's phone offering plain RTP: 488 before the consumer rings", async () => {
    h = await startHarness({ env: { SIP_ALLOW_FROM: "127.0.0.0/8", SIP_SRTP: "require" } });
    const psid = "7200000012398";
    phone = await Baresip.start({ port: 29560, toneHz: 1000, rtpPortMin: 29600, dial: `sip:${psid}@127.0.0.1:${h.gateway.sipAddress.port}` });
    await waitFor(() => /488|Not Acceptable/i.test(phone!.log), 10_000, "the phone to be refused");
    expect(h.sim.calls().some((c) => c.psid === psid)).toBe(false);
    const refused = h.logs.find("agent call refused: unusable SDP offer");
    expect(JSON.stringify(refused[0]?.err)).toMatch(/SIP_SRTP is require/);
  });

  it("an agent's phone calling in with RTP/SAVP: encrypted both ways", async () => {
    h = await startHarness({ env: { SIP_ALLOW_FROM: "127.0.0.0/8" }, sim: { outboundPickup: { afterMs: 400 } } });
    const psid = "7200000012399";
    phone = await Baresip.start({
      port: 29460,
      toneHz: 1000,
      rtpPortMin: 29500,
      mediaenc: "srtp-mand",
      dial: `sip:${psid}@127.0.0.1:${h.gateway.sipAddress.port}`,
    });
    await waitFor(() => h!.sim.calls().some((c) => c.psid === psid), 10_000, "the consumer's call");
    const call = h.sim.calls().find((c) => c.psid === psid)!;
    await call.waitForState("media", 10_000);
    expect(h.gateway.registry.get(call.id)!.pbxMediaStats()!.srtp).toBe("AES_CM_128_HMAC_SHA1_80");
    await expectAudioBothWays(h, phone, call.id);
  });

  it("video turned on mid-call is encrypted too: a video phone that takes only RTP/SAVP decodes it", async () => {
    phone = await Baresip.start({ port: 29660, toneHz: 1000, rtpPortMin: 29700, video: true, controlPort: 29659, mediaenc: "srtp-mand" });
    h = await startHarness({ env: { SIP_TARGET: "sip:agent@127.0.0.1:29660", SIP_SRTP: "require", LOG_LEVEL: "debug" } });
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const decoders = (): number => phone!.log.split("Set video decoder: H264").length - 1;
    expect(await call.startVideo({ codec: "H264" })).toBe(200);
    await waitFor(() => decoders() > 0, 10_000, "the phone to start its H.264 decoder");
    await sleep(2000);
    const dir = mkdtempSync(join(tmpdir(), "srtp-snap-"));
    const snapshot = async (name: string): Promise<Buffer> => {
      const file = join(dir, `${name}.png`);
      expect(await phone!.command(29659, "snapshot_recv", file)).toMatch(/"ok":true/);
      await waitFor(() => existsSync(file), 3000, `the phone's snapshot ${name}`);
      await sleep(100);
      return readFileSync(file);
    };
    const first = await snapshot("1");
    await sleep(1000);
    const second = await snapshot("2");
    expect(first.length).toBeGreaterThan(20_000);
    expect(second.equals(first)).toBe(false);
    const stats = h.gateway.registry.get(call.id)!.pbxMediaStats()!;
    expect(stats.video?.packetsSent).toBeGreaterThan(20);
    expect(stats.srtp).toBe("AES_CM_128_HMAC_SHA1_80");
    // Our re-INVITE's video m-line was RTP/SAVP with its own keys.
    const offers = h.logs.find("SDP offer to the PBX").filter((l) => l.callId === call.id && /m=video [1-9]/.test(String(l.sipSdp)));
    expect(offers.length).toBeGreaterThan(0);
    expect(String(offers.at(-1)!.sipSdp)).toMatch(/m=video \d+ RTP\/SAVP 96[\s\S]*a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>/);
    await call.hangup();
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
  }, 60_000);
});
