import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { H264Packetizer } from "../../transcode/video/h264-packetizer.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { requireTool } from "../../scripts/peers/baresip.js";
import { decodeH264File, decodeH264Rtp, h264Clip, startsIdr } from "../support/video.js";

/** A gateway whose consumer calls ring SIPp on a port of its own, for one describe block. */
function gatewayRingingSipp(): { h: Harness; pbxPort: number } {
  const rig = {} as { h: Harness; pbxPort: number };
  beforeAll(async () => {
    rig.pbxPort = await freePort();
    rig.h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${rig.pbxPort}` } });
  });
  afterAll(async () => {
    await rig.h?.stop();
    await killAllSipp();
  });
  return rig;
}

/**
 * The consumer turns video on: whatever codec Meta sends, a SIP video phone (SIPp signalling, a
 * real UDP socket for media) must get H.264 it can decode, after a re-INVITE adding video.
 */
describe("consumer video to a SIP video phone", () => {
  let h: Harness;
  let pbxPort: number;
  let video: Socket;
  let packets: Buffer[];

  beforeAll(async () => {
    requireTool("ffprobe", "Debian package ffmpeg");
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(async () => {
    requireSipp();
    packets = [];
    video = createSocket("udp4");
    video.on("message", (m) => packets.push(m));
    await new Promise<void>((r) => video.bind(0, "127.0.0.1", () => r()));
  });
  afterEach(async () => {
    video.close();
    await killAllSipp();
  });

  it.each(["H264", "VP8", "VP9", "H265", "AV1"] as const)("%s from the consumer reaches the phone as decodable H.264", async (codec) => {
    const sipp = startSipp({ scenario: "gw-video.xml", port: pbxPort, vars: { video_port: String(video.address().port) }, timeoutS: 40 });
    await sipp.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    expect(await call.startVideo({ codec, width: 640, height: 360, fps: 30 })).toBe(200);
    await waitFor(() => packets.length > 50, 15_000, "H.264 RTP at the phone");
    await sleep(2000);
    // Audio never broke while video was added.
    const before = call.consumer.stats.packetsReceived;
    await sleep(300);
    expect(call.consumer.stats.packetsReceived).toBeGreaterThan(before + 5);
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);

    // Reassemble what reached the phone and let ffmpeg decode it.
    expect(packets.every((p) => p.length - 12 <= 1200 + 16)).toBe(true);
    const decoded = decodeH264Rtp(packets);
    expect(decoded.frames).toBeGreaterThan(30);
    if (codec !== "H264") expect(decoded.profile).toBe("Constrained Baseline");
  }, 60_000);
});

describe("video keyframes and video off/on", () => {
  const rig = gatewayRingingSipp();

  it("a PLI from the phone yields a keyframe within 500 ms (transcoded VP8)", async () => {
    requireSipp();
    const sock = createSocket("udp4");
    const idrAt: number[] = [];
    sock.on("message", (m) => {
      if (m.length < 13 || (m[1]! & 0x7f) !== 96) return;
      if (startsIdr(m)) idrAt.push(performance.now());
    });
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const sipp = startSipp({ scenario: "gw-video.xml", port: rig.pbxPort, vars: { video_port: String(sock.address().port) }, timeoutS: 40 });
    await sipp.ready;
    const call = await rig.h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await call.startVideo({ codec: "VP8" });
    await waitFor(() => idrAt.length > 0, 15_000, "the first keyframe at the phone");
    await sleep(1500);
    const video = rig.h.gateway.registry.get(call.id)!.pbxMediaStats()!.video!;
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = idrAt.length;
      const sentAt = performance.now();
      // RTCP PSFB, FMT 1 (PLI): header, sender SSRC, media SSRC.
      const pli = Buffer.alloc(12);
      pli[0] = 0x81;
      pli[1] = 206;
      pli.writeUInt16BE(2, 2);
      pli.writeUInt32BE(0x1234, 4);
      pli.writeUInt32BE(video.ssrc, 8);
      sock.send(pli, video.localRtcpPort, "127.0.0.1");
      await waitFor(() => idrAt.length > before, 2000, "a keyframe after the PLI");
      delays.push(idrAt[before]! - sentAt);
      await sleep(700);
    }
    expect(Math.max(...delays)).toBeLessThan(500);
    await call.hangup();
    await finish(sipp);
    sock.close();
  }, 60_000);
});

describe("consumer video on, off, on again", () => {
  const rig = gatewayRingingSipp();

  it("re-INVITEs the phone each time, and audio never breaks", async () => {
    requireSipp();
    const sock = createSocket("udp4");
    let videoPackets = 0;
    sock.on("message", () => videoPackets++);
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const sipp = startSipp({ scenario: "gw-video-toggle.xml", port: rig.pbxPort, vars: { video_port: String(sock.address().port) }, timeoutS: 40 });
    await sipp.ready;
    const call = await rig.h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const audioFlows = async (): Promise<void> => {
      const n = call.consumer.stats.packetsReceived;
      await sleep(300);
      expect(call.consumer.stats.packetsReceived).toBeGreaterThan(n + 5);
    };

    expect(await call.startVideo({ codec: "H264" })).toBe(200);
    await waitFor(() => videoPackets > 30, 10_000, "video at the phone");
    await audioFlows();

    expect(await call.stopVideo()).toBe(200);
    await waitFor(() => rig.h.logs.find("consumer video changed").filter((l) => l.callId === call.id).length === 2, 5000, "video off");
    await sleep(500);
    const afterOff = videoPackets;
    await sleep(700);
    expect(videoPackets).toBe(afterOff);
    await audioFlows();

    expect(await call.startVideo({ codec: "H264" })).toBe(200);
    await waitFor(() => videoPackets > afterOff + 30, 10_000, "video at the phone again");
    await audioFlows();
    // Each video start wires nothing new onto the call's media: its listeners stay one each.
    const pbxMedia = (rig.h.gateway.registry.get(call.id) as unknown as { media: { far: { media: import("node:events").EventEmitter } } }).media.far.media;
    expect(pbxMedia.listenerCount("keyframeRequest")).toBe(1);
    expect(pbxMedia.listenerCount("bitrateLimit")).toBe(1);

    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/re-INVITE off m=video 0 RTP\/AVP 96/);
    sock.close();
  }, 60_000);
});

describe("PBX turns video on", () => {
  const rig = gatewayRingingSipp();

  it.each([
    ["without a collision", undefined],
    ["when Meta's own media_update collides (200 without SDP)", "no-sdp"],
    ["when Meta's own media_update collides (conflict error)", "error"],
  ] as const)("media_update to Meta, H.264 reaches the consumer %s", async (_label, collide) => {
    requireSipp();
    const sock = createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const sipp = startSipp({ scenario: "gw-pbx-video.xml", port: rig.pbxPort, vars: { video_port: String(sock.address().port), pause_ms: "1200" }, timeoutS: 40 });
    await sipp.ready;
    const call = await rig.h.sim.placeCall();
    await call.waitForState("media", 10_000);
    if (collide) rig.h.sim.collideNextMediaUpdate({ mode: collide });
    const gw = rig.h.gateway.registry.get(call.id)!;
    await waitFor(() => gw.pbxMediaStats()?.video !== undefined && rig.h.logs.find("media_update done").some((l) => l.callId === call.id), 10_000, "video agreed with Meta");
    const port = gw.pbxMediaStats()!.video!.localRtpPort;

    // The phone's camera: H.264 RTP at 30 fps into the gateway's video port.
    const packetizer = new H264Packetizer({ payloadType: 96, ssrc: 0x5eed });
    const clip = h264Clip(2);
    for (let i = 0; i < clip.length; i++) {
      for (const p of packetizer.packetize(clip[i]!, i * 3000)) sock.send(p.serialize(), port, "127.0.0.1");
      await sleep(33);
    }
    await sleep(500);
    const received = call.consumer.receivedVideoAnnexB("H264");
    const file = join(mkdtempSync(join(tmpdir(), "consumer-")), "consumer.h264");
    writeFileSync(file, received);
    expect(decodeH264File(file).frames).toBeGreaterThan(30);

    // Versions: ours moved the media version on, and a collision was resolved by retrying.
    const updates = graphRequests(rig.h.sim, "media_update", call.id).map((r) => r.body as { from_version: number; to_version: number });
    if (collide) {
      expect(updates.length).toBe(2);
      expect(updates[1]!.from_version).toBe(updates[0]!.from_version + 1);
    } else {
      expect(updates.length).toBe(1);
    }
    expect(call.mediaVersion).toBe(updates.at(-1)!.to_version);
    const before = call.consumer.stats.packetsReceived;
    await sleep(300);
    expect(call.consumer.stats.packetsReceived).toBeGreaterThan(before + 5);

    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    sock.close();
  }, 60_000);
});

describe("PBX turns video on, off, and on again", () => {
  const rig = gatewayRingingSipp();

  it("disables the video track at Meta without renegotiating, and the consumer's audio goes on", async () => {
    requireSipp();
    const sock = createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const sipp = startSipp({
      scenario: "gw-pbx-video-off.xml",
      port: rig.pbxPort,
      vars: { video_port: String(sock.address().port), pause_ms: "800", off_after_ms: "1500" },
      timeoutS: 40,
    });
    await sipp.ready;
    const call = await rig.h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await waitFor(() => graphRequests(rig.h.sim, "media_update", call.id).length === 1, 10_000, "video on at Meta");
    await waitFor(() => graphRequests(rig.h.sim, "media_update", call.id).length === 2, 10_000, "video off at Meta");
    const [on, off] = graphRequests(rig.h.sim, "media_update", call.id).map(
      (r) => r.body as { from_version: number; to_version?: number; session?: unknown; tracks?: { msid: string; label: string; status: string }[] },
    );
    expect(on!.tracks).toEqual([expect.objectContaining({ label: "default_video", status: "enabled" })]);
    expect(on!.session).toBeDefined();
    // Off is the same track disabled: no offer, no new version, Meta's view of the track updated.
    expect(off!.tracks).toEqual([{ msid: on!.tracks![0]!.msid, label: "default_video", status: "disabled" }]);
    expect(off!.session).toBeUndefined();
    expect(off!.to_version).toBeUndefined();
    expect(off!.from_version).toBe(on!.to_version);
    expect(call.mediaVersion).toBe(on!.to_version);
    expect(call.mediaUpdates.at(-1)?.reason).toBe("business-tracks");
    expect(call.businessTracks.find((t) => t.msid === on!.tracks![0]!.msid)?.status).toBe("disabled");
    const before = call.consumer.stats.packetsReceived;
    await sleep(300);
    expect(call.consumer.stats.packetsReceived).toBeGreaterThan(before + 5);
    // Camera on again: the track is enabled again, still without renegotiating.
    await waitFor(() => graphRequests(rig.h.sim, "media_update", call.id).length === 3, 10_000, "video on again at Meta");
    const again = graphRequests(rig.h.sim, "media_update", call.id)[2]!.body as { from_version: number; session?: unknown; tracks?: unknown[] };
    expect(again).toMatchObject({ from_version: on!.to_version, tracks: [{ msid: on!.tracks![0]!.msid, label: "default_video", status: "enabled" }] });
    expect(again.session).toBeUndefined();
    expect(call.mediaVersion).toBe(on!.to_version);
    await waitFor(() => rig.h.logs.find("PBX video toward the consumer").filter((l) => l.callId === call.id).length === 3, 5000, "the PBX's answer");
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/video off answered m=video 0 RTP\/AVP 96/);
    expect(result.logs).toMatch(/video back on answered m=video [1-9][0-9]* RTP\/AVP 96/);
    sock.close();
  }, 60_000);
});

describe("consumer camera already on when the call is accepted", () => {
  const rig = gatewayRingingSipp();

  it("re-INVITEs the phone with video right after the call is up", async () => {
    requireSipp();
    const sock = createSocket("udp4");
    let videoPackets = 0;
    sock.on("message", () => videoPackets++);
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const sipp = startSipp({ scenario: "gw-video.xml", port: rig.pbxPort, vars: { video_port: String(sock.address().port) }, timeoutS: 40 });
    await sipp.ready;
    const call = await rig.h.sim.placeCall({ video: { codec: "VP8" } });
    await call.waitForState("media", 10_000);
    await waitFor(() => videoPackets > 30, 15_000, "video at the phone");
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    sock.close();
  }, 60_000);
});
