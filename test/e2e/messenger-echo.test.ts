import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mediaUpdateEvent } from "../../sim/webhook-events.js";
import { graphRequests, requestSdp, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * Consumer-initiated Messenger calls through the real gateway against the Meta simulator, with
 * the echo target: the consumer's own tone must come back to them.
 */
describe("Messenger consumer call, echo target", () => {
  let h: Harness;
  const destinations = new Set<string>();
  const originalSend = dgram.Socket.prototype.send;
  beforeAll(async () => {
    // Record where every UDP datagram of this process goes: nothing may leave loopback, and in
    // particular werift must not fall back to its built-in public STUN server.
    dgram.Socket.prototype.send = function (this: dgram.Socket, ...args: unknown[]) {
      const host = args.slice(1).find((a) => typeof a === "string");
      destinations.add(String(host));
      return (originalSend as (...a: unknown[]) => void).apply(this, args);
    } as typeof dgram.Socket.prototype.send;
    h = await startHarness();
  });
  afterAll(async () => {
    dgram.Socket.prototype.send = originalSend;
    await h?.stop();
  });

  it("connects and the consumer hears their own tone back", async () => {
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    await call.waitForState("media", 10_000);
    await sleep(1500);
    const tone = call.consumer.detectTone(1);
    expect(tone.hz).toBeGreaterThan(430);
    expect(tone.hz).toBeLessThan(450);
    expect(tone.levelDbfs).toBeGreaterThan(-30);
    // The echo came back on our transceiver (mid 0); the consumer sent on the one its re-offer added.
    expect(call.consumer.stats.receivedOnMids).toEqual(["0"]);
    const gwCall = h.gateway.registry.get(call.id);
    expect(gwCall?.state).toBe("active");
    // Our offer in accept spells Opus as Meta's own samples do.
    const offer = requestSdp(graphRequests(h.sim, "accept", call.id)[0]!)!;
    expect(offer).toMatch(/^a=rtpmap:111 opus\/48000\/2$/m);
    expect(offer).not.toMatch(/OPUS/);

    // The accept carried our offer, shaped as Meta requires.
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);

    await call.hangup();
    await waitFor(() => h.gateway.registry.get(call.id) === undefined, 5000, "the gateway to end the call");
    expect(h.logs.find("call ended").some((l) => l.callId === call.id && l.outcome === "completed-consumer-hangup")).toBe(true);
  });

  it("sent UDP to loopback only (no STUN server, no other host)", () => {
    expect(destinations.size).toBeGreaterThan(0);
    expect([...destinations]).toEqual(["127.0.0.1"]);
  });

  it("ends the call at Meta when the gateway hangs up", async () => {
    const call = await h.sim.placeCall({ toneHz: 600 });
    await call.waitForState("media", 10_000);
    await h.gateway.registry.get(call.id)!.hangup("operator");
    await call.waitForState("ended", 5_000);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    expect(h.gateway.registry.get(call.id)).toBeUndefined();
  });
});

describe("Messenger media_update webhooks on a live call", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("applies a consumer re-offer, drops a duplicate, and audio keeps flowing", async () => {
    const call = await h.sim.placeCall({ toneHz: 500 });
    await call.waitForState("media", 10_000);
    // Meta re-delivers the same media_update: version 1 is applied once, the copy dropped.
    expect(await call.sendMediaUpdate({ duplicates: 1 })).toBe(200);
    await waitFor(() => h.logs.find("media_update applied").some((l) => l.callId === call.id), 5000, "the re-offer to be applied");
    await waitFor(() => h.logs.find("duplicate webhook event dropped").some((l) => l.callId === call.id), 5000, "the duplicate to be dropped");
    expect(h.logs.find("media_update applied").filter((l) => l.callId === call.id)).toHaveLength(1);
    // A late retry of an older version is stale once version 1 is in place.
    const stale = mediaUpdateEvent({ callId: call.id, version: 1, sdp: "v=0\r\n" });
    stale.timestamp -= 5; // a different delivery of version 1, not a byte-identical duplicate
    expect(await h.sim.webhooks.sendEvent(stale)).toBe(200);
    await waitFor(() => h.logs.find("media_update not applied").some((l) => l.callId === call.id), 5000, "the stale version to be dropped");
    const before = call.consumer.stats.packetsReceived;
    await sleep(800);
    expect(call.consumer.stats.packetsReceived - before).toBeGreaterThan(25);
    const tone = call.consumer.detectTone(0.5);
    expect(Math.abs(tone.hz - 500)).toBeLessThan(10);
    expect(h.gateway.registry.get(call.id)?.state).toBe("active");
    await call.hangup();
  });
});
