import { createSocket, type Socket } from "node:dgram";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { phoneAudio } from "../support/phone-audio.js";

/**
 * A PBX that plays prompts before it answers (183 with SDP). By default the consumer is accepted at
 * Meta only when the PBX answers; with ACCEPT_ON=early-media, on the prompts, which the consumer hears.
 */
describe.each([
  ["answer", undefined],
  ["early-media", "early-media"],
] as const)("ACCEPT_ON=%s with a PBX that plays early media", (_label, acceptOn) => {
  let h: Harness;
  let pbxPort: number;
  let audio: Socket;
  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}`, ...(acceptOn ? { ACCEPT_ON: acceptOn } : {}) } });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(async () => {
    requireSipp();
    audio = createSocket("udp4");
    await new Promise<void>((r) => audio.bind(0, "127.0.0.1", () => r()));
  });
  afterEach(async () => {
    audio.close();
    await killAllSipp();
  });

  it(acceptOn ? "accepts on the 183 and the consumer hears the prompt before the PBX answers" : "accepts only on the 200; the prompt is not played before", async () => {
    const sipp = startSipp({ scenario: "gw-early-media.xml", port: pbxPort, vars: { audio_port: String(audio.address().port), answer_after_ms: "3000" }, timeoutS: 30 });
    await sipp.ready;
    const call = await h.sim.placeCall();
    const placedAt = Date.now();
    if (acceptOn) {
      await call.waitForState("media", 2500);
      const gw = h.gateway.registry.get(call.id)!;
      // The PBX's prompt: 700 Hz from the address its SDP names.
      const stop = phoneAudio(gw.pbxMediaStats()!.rtp.localRtpPort, { toneHz: 700, from: audio });
      try {
        await sleep(1200);
        expect(Date.now() - placedAt).toBeLessThan(3000);
        expect(Math.abs(call.consumer.detectTone(1).hz - 700)).toBeLessThan(15);
        await waitFor(() => h.logs.find("PBX answered after its early media").some((l) => l.callId === call.id), 5000, "the PBX's answer");
      } finally {
        stop();
      }
    } else {
      await call.waitForState("accepted", 6000);
      const accept = graphRequests(h.sim, "accept", call.id)[0]!;
      expect(accept.receivedAt - placedAt).toBeGreaterThanOrEqual(2800);
    }
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    await waitFor(() => h.gateway.registry.get(call.id)?.state === "active", 5000, "the call to be active");
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  }, 30_000);
});
