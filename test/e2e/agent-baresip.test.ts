import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/** A real SIP phone (baresip) as the agent calling a consumer through the gateway. */
describe("agent on a real SIP phone calls a consumer", () => {
  let h: Harness;
  let phone: Baresip | undefined;
  beforeAll(async () => {
    h = await startHarness({ env: { SIP_ALLOW_FROM: "127.0.0.0/8" }, sim: { outboundPickup: { afterMs: 400 } } });
  });
  afterAll(async () => {
    await phone?.stop();
    await h?.stop();
  });

  it("rings, is answered, carries tones both ways, and ends when the consumer hangs up", async () => {
    const psid = "7200000012345";
    phone = await Baresip.start({ port: 26060, toneHz: 1000, rtpPortMin: 26100, dial: `sip:${psid}@127.0.0.1:${h.gateway.sipAddress.port}` });
    await waitFor(() => h.sim.calls().some((c) => c.psid === psid), 10_000, "the consumer's call");
    const call = h.sim.calls().find((c) => c.psid === psid)!;
    await call.waitForState("media", 10_000);
    await sleep(2500);
    const atConsumer = call.consumer.detectTone(1);
    expect(Math.abs(atConsumer.hz - 1000)).toBeLessThan(10);
    expect(atConsumer.levelDbfs).toBeGreaterThan(-35);
    const stats = h.gateway.registry.get(call.id)!.pbxMediaStats()!;
    expect(stats.rtp.packetsReceived).toBeGreaterThan(50);
    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the gateway to end the call");
    await waitFor(() => /terminated|closed/i.test(phone!.log), 5000, "the phone to see the call end");
    const { pcm, sampleRate } = phone.receivedPcm();
    expect(pcm.length).toBeGreaterThan(sampleRate);
    const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
    expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);
    expect(atPhone.levelDbfs).toBeGreaterThan(-35);
  });
});
