import { createSocket, type Socket } from "node:dgram";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseTelephoneEvent } from "../../transcode/dtmf.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp, type SippProcess } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * A consumer's Messenger call against SIPp playing the PBX: every way a PBX can answer, refuse,
 * end or change a call must end both legs correctly.
 */
describe("Messenger consumer call, SIPp as the PBX", () => {
  let h: Harness;
  let pbxPort: number;

  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({
      env: {
        SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}`,
        SIP_AUTH_USER: "alice",
        SIP_AUTH_PASSWORD: "s3cret",
        ACCEPT_TIMEOUT_MS: "3000",
      },
      sim: { consumer: { telephoneEvent: true } },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });

  async function pbx(scenario: string, vars?: Record<string, string>, extraArgs?: string[]): Promise<SippProcess> {
    const sipp = startSipp({ scenario, port: pbxPort, vars, extraArgs, timeoutS: 20 });
    await sipp.ready;
    return sipp;
  }

  function endedOutcome(callId: string): string | undefined {
    return h.logs.find("call ended").find((l) => l.callId === callId)?.outcome as string | undefined;
  }

  it.each([
    [486, "Busy Here", "target-busy"],
    [603, "Decline", "target-declined"],
    [480, "Temporarily Unavailable", "target-no-answer"],
  ])("PBX answers %i: the consumer's call is rejected at Meta", async (status, reason, outcome) => {
    const sipp = await pbx("uas-reject.xml", { status: String(status), reason });
    const call = await h.sim.placeCall();
    await call.waitForState("ended", 10_000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
    expect(graphRequests(h.sim, "reject", call.id)).toHaveLength(1);
    await waitFor(() => endedOutcome(call.id) !== undefined, 3000, "the call to end");
    expect(endedOutcome(call.id)).toBe(outcome);
  });

  it("PBX rings past the accept window: CANCEL to the PBX, reject at Meta", async () => {
    const sipp = await pbx("uas-cancel.xml");
    const call = await h.sim.placeCall();
    await call.waitForState("ended", 10_000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(graphRequests(h.sim, "reject", call.id)).toHaveLength(1);
    expect(endedOutcome(call.id)).toBe("target-no-answer");
  });

  it("consumer hangs up while the PBX rings: CANCEL to the PBX", async () => {
    const sipp = await pbx("uas-cancel.xml");
    const call = await h.sim.placeCall();
    await sleep(500);
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    await waitFor(() => h.gateway.registry.get(call.id) === undefined, 3000, "the gateway to drop the call");
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(0);
  });

  it("PBX hangs up: BYE becomes terminate at Meta", async () => {
    const sipp = await pbx("uas-bye-from-pbx.xml");
    const call = await h.sim.placeCall();
    await call.waitForState("ended", 10_000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    await waitFor(() => endedOutcome(call.id) !== undefined, 3000, "the call to end");
    expect(endedOutcome(call.id)).toBe("completed-target-hangup");
  });

  it("digest challenge from the PBX is answered (SIPp verifies it)", async () => {
    const sipp = await pbx("uas-auth.xml", { status: "401", reason: "Unauthorized", header: "WWW-Authenticate" });
    const call = await h.sim.placeCall();
    await call.waitForState("accepted", 10_000);
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });

  it("PBX re-INVITE moving to PCMA is answered, and the call goes on", async () => {
    const sipp = await pbx("gw-reinvite.xml", { pause_ms: "800" });
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await sleep(1500);
    expect(h.gateway.registry.get(call.id)?.state).toBe("active");
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/re-INVITE answered m=audio \d+ RTP\/AVP 8/);
    expect(h.logs.find("PBX changed the audio codec").find((l) => l.callId === call.id)?.codec).toBe("PCMA");
  });

  describe("media and DTMF at the PBX's RTP port", () => {
    let media: Socket;
    const received: { pt: number; payload: Buffer }[] = [];
    beforeEach(async () => {
      media = createSocket("udp4");
      media.on("message", (msg) => received.push({ pt: msg[1]! & 0x7f, payload: msg.subarray(12) }));
      await new Promise<void>((r) => media.bind(0, "127.0.0.1", () => r()));
    });
    afterEach(() => media.close());

    it("PCMU reaches the PBX, DTMF crosses both ways, BYE from the consumer", async () => {
      const sipp = await pbx("gw-answer-dtmf.xml", { media_port: String(media.address().port), dtmf_after_ms: "1500" });
      const call = await h.sim.placeCall();
      await call.waitForState("media", 10_000);
      // The consumer's own stream starts once Meta's edge has applied its inferred answer.
      await waitFor(() => call.consumer.stats.packetsSent > 5, 5000, "the consumer to be sending");
      // Consumer presses 7 (RFC 4733 on Meta's leg) → telephone-event 101 at the PBX.
      expect(await call.consumer.sendDtmf("7")).toBe(true);
      const endSeen = (): boolean => received.some((p) => p.pt === 101 && (p.payload[1]! & 0x80) !== 0);
      await waitFor(endSeen, 3000, "the end of the telephone-event at the PBX");
      const events = received.filter((p) => p.pt === 101).map((p) => parseTelephoneEvent(p.payload));
      expect(new Set(events.map((e) => e.event))).toEqual(new Set([7]));
      expect(events.some((e) => e.end)).toBe(true);
      expect(received.filter((p) => p.pt === 0).length).toBeGreaterThan(20);
      expect(received.filter((p) => p.pt === 0).every((p) => p.payload.length === 160)).toBe(true);
      // SIPp plays RFC 2833 digit 5 → the consumer receives telephone-event 5 from Meta's side.
      await waitFor(() => call.consumer.stats.telephoneEvents.some((e) => e.event === 5), 5000, "digit 5 at the consumer");
      await call.hangup();
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      expect(result.logs).toMatch(/invite X-Meta-PSID: \d+ X-Meta-Call-Id: c_\d+ Max-Forwards: 70 m=audio \d+ RTP\/AVP 0 8 101/);
    });
  });
});
