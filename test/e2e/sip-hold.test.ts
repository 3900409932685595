import { createSocket, type Socket } from "node:dgram";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { phoneAudio } from "../support/phone-audio.js";

/**
 * The PBX holds and resumes a consumer's call (RFC 3264 §8.4): while held nothing is sent to it,
 * the consumer hears what it plays (music on hold) and the Meta leg never goes silent; resume
 * restores two-way audio.
 */
describe("PBX hold and resume", () => {
  let h: Harness;
  let pbxPort: number;
  let audio: Socket;
  let arrivals: number[];
  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(async () => {
    requireSipp();
    arrivals = [];
    audio = createSocket("udp4");
    audio.on("message", (m) => {
      if ((m[1]! & 0x7f) === 0) arrivals.push(performance.now());
    });
    await new Promise<void>((r) => audio.bind(0, "127.0.0.1", () => r()));
  });
  afterEach(async () => {
    audio.close();
    await killAllSipp();
  });

  it.each([
    ["a=sendonly", "127.0.0.1", "sendonly", "a=recvonly"],
    ["a=inactive", "127.0.0.1", "inactive", "a=inactive"],
    ["c=0.0.0.0 (RFC 2543)", "0.0.0.0", "sendrecv", undefined],
  ] as const)("%s: nothing sent while held, the PBX's music reaches the consumer, resume restores both ways", async (_label, addr, dir, answered) => {
    const sipp = startSipp({
      scenario: "gw-hold.xml",
      port: pbxPort,
      vars: { audio_port: String(audio.address().port), hold_after_ms: "1500", hold_ms: "3000", hold_addr: addr, hold_dir: dir },
      timeoutS: 30,
    });
    await sipp.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const gw = h.gateway.registry.get(call.id)!;
    // The PBX plays 600 Hz (its music on hold) from the address its SDP names.
    const stop = phoneAudio(gw.pbxMediaStats()!.rtp.localRtpPort, { toneHz: dir === "inactive" ? 0 : 600, from: audio });
    try {
      await waitFor(() => arrivals.length > 20, 5000, "audio at the PBX before the hold");
      await waitFor(() => h.logs.find("PBX put the call on hold").some((l) => l.callId === call.id), 5000, "the hold");
      await sleep(300);
      const heldFrom = arrivals.length;
      const consumerBefore = call.consumer.stats.packetsReceived;
      await sleep(1500);
      expect(arrivals.length - heldFrom).toBe(0);
      expect(gw.pbxMediaStats()!.held).toBe(true);
      // The Meta leg never went silent: the PBX's music, or comfort noise.
      expect(call.consumer.stats.packetsReceived - consumerBefore).toBeGreaterThan(50);
      if (dir !== "inactive") expect(Math.abs(call.consumer.detectTone(1).hz - 600)).toBeLessThan(15);
      await waitFor(() => h.logs.find("PBX resumed the call").some((l) => l.callId === call.id), 5000, "the resume");
      const resumedFrom = arrivals.length;
      await sleep(600);
      expect(arrivals.length - resumedFrom).toBeGreaterThan(20);
      expect(gw.pbxMediaStats()!.held).toBe(false);
      expect(gw.pbxMediaStats()!.holds).toBe(1);
    } finally {
      stop();
    }
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    if (answered) expect(result.logs).toContain(`hold answered ${answered}`);
    expect(result.logs).toContain("resume answered a=sendrecv");
  }, 40_000);

  it("counts each call's holds in /metrics once the call ended", async () => {
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the calls to end");
    const text = await (await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/metrics`)).text();
    expect(/^gateway_sip_holds (\d+)$/m.exec(text)?.[1]).toBe("3");
  });
});
