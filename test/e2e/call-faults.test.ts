import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness, TEST_PAGE_ID } from "../support/harness.js";

/** A failure on one call ends that call cleanly, or is refused, and never reaches Meta on bad input. */
describe("an agent's INVITE whose SDP cannot carry audio", () => {
  let h: Harness;
  let seq = 0;
  beforeAll(async () => {
    h = await startHarness({ env: { SIP_ALLOW_FROM: "127.0.0.1" } });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });

  it.each([
    ["v=0 alone", "application/sdp", "v=0"],
    ["no m-line", "application/sdp", "v=0\no=pbx 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0"],
    ["a port that is not a number", "application/sdp", "v=0\no=pbx 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio abc RTP/AVP 0"],
    ["no G.711", "application/sdp", "v=0\no=pbx 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 18\na=rtpmap:18 G729/8000"],
    ["JSON", "application/sdp", '{"sdp":"v=0","type":"offer"}'],
    ["prose", "application/sdp", "Hello, this is not a session description at all."],
  ])("%s: 488 and nothing reaches Meta", async (_label, contentType, body) => {
    const psid = `7300000${String(++seq).padStart(4, "0")}`;
    const graphBefore = h.sim.requests.length;
    const sipp = startSipp({
      scenario: "gw-agent-bad-sdp.xml",
      port: await freePort(),
      remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
      service: psid,
      vars: { body, content_type: contentType },
      timeoutS: 10,
    });
    await sipp.ready;
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/refused 488/);
    expect(h.sim.requests.slice(graphBefore).filter((r) => JSON.stringify(r.query).includes(psid) || r.rawBody.includes(psid))).toEqual([]);
    expect(h.logs.find("agent call refused: unusable SDP offer").length).toBeGreaterThanOrEqual(seq);
    expect(h.gateway.registry.size).toBe(0);
  });
});

describe("Meta accepts the call but its reply cannot be used", () => {
  let h: Harness;
  let pbxPort: number;
  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
  });
  afterAll(async () => {
    await h?.stop();
    await killAllSipp();
  });
  beforeEach(() => requireSipp());

  it.each([
    ["an SDP answer that is not SDP", (body: unknown) => ({ ...(body as object), session: { sdp_response: { sdp_type: "answer", sdp: "garbage" } } })],
    ["no session at all", (body: unknown) => ({ ...(body as object), session: undefined })],
  ] as const)("%s: terminate (never reject), and the phone's leg ends", async (_label, rewrite) => {
    const sipp = startSipp({ scenario: "gw-answer.xml", port: pbxPort, timeoutS: 20 });
    await sipp.ready;
    h.sim.rewriteNextSuccess("accept", rewrite);
    const call = await h.sim.placeCall();
    await call.waitForState("ended", 15_000);
    await waitFor(() => h.logs.find("call ended").some((l) => l.callId === call.id), 5000, "the end record");
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    expect(graphRequests(h.sim, "reject", call.id)).toHaveLength(0);
    const ended = h.logs.find("call ended").find((l) => l.callId === call.id)!;
    expect(ended.outcome).toBe("accept-failed");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  }, 30_000);
});

describe("a malformed media_update re-offer on a live call", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("is refused with a log line; the call and its audio go on", async () => {
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio abc UDP/TLS/RTP/SAVPF 111\r\n";
    const body = {
      object: "page",
      entry: [
        {
          id: TEST_PAGE_ID,
          time: Date.now(),
          calls: [{ id: call.id, to: TEST_PAGE_ID, from: call.psid, event: "media_update", timestamp: Math.floor(Date.now() / 1000), session: { version: call.mediaVersion + 1, sdp_renegotiation: { sdp_type: "offer", sdp: offer } } }],
        },
      ],
    };
    expect(await h.sim.sendRawWebhook(JSON.stringify(body), { signature: "valid" })).toBe(200);
    await waitFor(() => h.logs.find("media_update refused: the call keeps its current media").some((l) => l.callId === call.id), 5000, "the update refused");
    await sleep(500);
    expect(h.gateway.registry.get(call.id)?.state).toBe("active");
    const before = call.consumer.stats.packetsReceived;
    await sleep(400);
    expect(call.consumer.stats.packetsReceived).toBeGreaterThan(before + 10);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(0);
    await call.hangup();
  }, 30_000);
});

describe("a PBX that goes silent without BYE", () => {
  let h: Harness;
  let pbxPort: number;
  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}`, MEDIA_TIMEOUT_MS: "3000" } });
  });
  afterAll(async () => {
    await h?.stop();
    await killAllSipp();
  });

  it("a PBX that vanished (BYE never answered): the call and its ports are released at once, not when the BYE times out", async () => {
    requireSipp();
    const sipp = startSipp({ scenario: "gw-answer-vanish.xml", port: pbxPort, timeoutS: 60 });
    await sipp.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const upAt = Date.now();
    await call.waitForState("ended", 10_000);
    // RFC 3261 §15.1.1: released once the BYE is sent, not after its 32 s transaction timeout.
    await waitFor(() => h.gateway.registry.size === 0, 3000, "the call to be released");
    expect(Date.now() - upAt).toBeLessThan(3000 + 6000);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    await killAllSipp();
  }, 30_000);

  it("ends the call on both legs after MEDIA_TIMEOUT_MS, saying why", async () => {
    requireSipp();
    const sipp = startSipp({ scenario: "gw-answer.xml", port: pbxPort, timeoutS: 20 });
    await sipp.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const upAt = Date.now();
    await call.waitForState("ended", 10_000);
    expect(Date.now() - upAt).toBeLessThan(3000 + 4000);
    await waitFor(() => h.logs.find("call ended").some((l) => l.callId === call.id), 5000, "the end record");
    const ended = h.logs.find("call ended").find((l) => l.callId === call.id)!;
    expect(ended.outcome).toBe("media-timeout");
    expect(String(ended.detail)).toMatch(/PBX/);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  }, 30_000);
});

describe("an exception inside one call's media handlers", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("ends that call on both legs, logged with its call id; the other call goes on", async () => {
    const faulty = await h.sim.placeCall();
    const healthy = await h.sim.placeCall();
    await faulty.waitForState("media", 10_000);
    await healthy.waitForState("media", 10_000);
    // Fault injected from inside: the echo's audio handler throws on the next consumer packet,
    // deep inside werift's receive path.
    const session = h.gateway.registry.get(faulty.id) as unknown as { media: { far: { sendAudio: () => void } } };
    session.media.far.sendAudio = () => {
      throw new Error("injected media handler fault");
    };
    await faulty.waitForState("ended", 5000);
    await waitFor(() => h.logs.find("call ended").some((l) => l.callId === faulty.id), 5000, "the faulty call's end record");
    const failed = h.logs.find("call step failed").find((l) => l.callId === faulty.id);
    expect(failed).toBeDefined();
    expect(h.logs.find("call ended").find((l) => l.callId === faulty.id)!.outcome).toBe("error");
    expect(graphRequests(h.sim, "terminate", faulty.id)).toHaveLength(1);
    expect(h.gateway.registry.get(faulty.id)).toBeUndefined();
    // The other call never noticed.
    expect(h.gateway.registry.get(healthy.id)?.state).toBe("active");
    const before = healthy.consumer.stats.packetsReceived;
    await sleep(400);
    expect(healthy.consumer.stats.packetsReceived).toBeGreaterThan(before + 10);
    await healthy.hangup();
  }, 30_000);
});
