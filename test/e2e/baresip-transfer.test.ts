import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

const PHONE_A = 27060;
const PHONE_A_CONTROL = 27059;
const PHONE_B = 27160;

/**
 * A real SIP phone transfers a live consumer call to a second phone (baresip's /transfer, a REFER):
 * the consumer, who heard the first phone's 1 kHz, hears the second phone's 700 Hz afterwards, on the
 * same Meta call.
 */
describe("baresip transfers a consumer's call to another baresip", () => {
  let h: Harness;
  let phoneA: Baresip;
  let phoneB: Baresip;
  beforeAll(async () => {
    phoneA = await Baresip.start({ port: PHONE_A, toneHz: 1000, rtpPortMin: 27100, controlPort: PHONE_A_CONTROL });
    phoneB = await Baresip.start({ port: PHONE_B, toneHz: 700, rtpPortMin: 27200, user: "b" });
    h = await startHarness({ env: { SIP_TARGET: `sip:agent@127.0.0.1:${PHONE_A}` } });
  });
  afterAll(async () => {
    await h?.stop();
    await phoneA?.stop();
    await phoneB?.stop();
  });

  it("the consumer hears the second phone after the transfer, and the call goes on", async () => {
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("media", 10_000);
    await sleep(1500);
    expect(Math.abs(call.consumer.detectTone(1).hz - 1000)).toBeLessThan(10);

    const reply = await phoneA.command(PHONE_A_CONTROL, "transfer", `sip:b@127.0.0.1:${PHONE_B}`);
    expect(reply).toMatch(/"ok":true/);
    await waitFor(() => h.logs.find("transfer complete: the consumer is with the new party").some((l) => l.callId === call.id), 15_000, "the transfer");
    await sleep(2000);
    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 700)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-35);
    expect(h.gateway.registry.get(call.id)?.state).toBe("active");
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(0);
    await call.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
  }, 60_000);
});
