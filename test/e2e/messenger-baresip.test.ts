import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectTone } from "../../transcode/tone.js";
import { Baresip } from "../../scripts/peers/baresip.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

const PHONE_PORT = 25060;

/**
 * A consumer's Messenger call rings a real SIP phone (baresip, auto-answer): the consumer's
 * 440 Hz reaches the phone as G.711, the phone's 1 kHz reaches the consumer as Opus.
 */
describe("Messenger consumer call to a real SIP phone", () => {
  let h: Harness;
  let phone: Baresip;
  beforeAll(async () => {
    phone = await Baresip.start({ port: PHONE_PORT, toneHz: 1000, rtpPortMin: 25100 });
    h = await startHarness({ env: { SIP_TARGET: `sip:agent@127.0.0.1:${PHONE_PORT}` } });
  });
  afterAll(async () => {
    await h?.stop();
    await phone?.stop();
  });

  it("carries audio both ways through in-process transcoding", async () => {
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    await call.waitForState("media", 10_000);
    await sleep(2500);

    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-35);

    const gw = h.gateway.registry.get(call.id)!;
    const stats = gw.pbxMediaStats()!;
    expect(stats.codec).toBe("PCMU");
    expect(stats.rtp!.packetsReceived).toBeGreaterThan(50);
    expect(stats.rtp!.packetsSent).toBeGreaterThan(50);

    // The phone spoke from the moment it answered, before DTLS toward Meta was up: that audio was
    // held and delivered, not dropped.
    const held = h.logs.find("audio held during DTLS sent to the consumer").find((l) => l.callId === call.id);
    expect(held?.frames).toBeGreaterThan(0);

    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
    await sleep(500);
    const { pcm, sampleRate } = phone.receivedPcm();
    expect(pcm.length).toBeGreaterThan(sampleRate); // more than a second of audio reached the phone
    const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
    expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);
    expect(atPhone.levelDbfs).toBeGreaterThan(-35);
  });
});
