import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SimCall } from "../../sim/index.js";
import { requireTool } from "../../scripts/peers/baresip.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp, type SippProcess } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { phoneAudio } from "../support/phone-audio.js";
import { decodeH264File, decodeH264Rtp, openPhoneVideoSockets, sendPhoneCamera, type PhoneVideoSockets } from "../support/video.js";

const RTPFB = 205;
const PSFB = 206;

/**
 * Video on calls an agent places to a consumer: the same media session as consumer calls, driven
 * from the other direction. SIPp is the agent's phone (signalling), real UDP sockets its camera and
 * screen; the simulator plays Meta and the consumer.
 */
function agentRig(env: Record<string, string> = {}, pickup: { afterMs: number } | "manual" = { afterMs: 200 }) {
  const rig = {} as { h: Harness; psidSeq: number };
  beforeAll(async () => {
    rig.psidSeq = 0;
    rig.h = await startHarness({ env: { SIP_ALLOW_FROM: "127.0.0.1", ...env }, sim: { outboundPickup: pickup } });
  });
  afterAll(async () => {
    await rig.h?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });
  const agent = async (scenario: string, vars: Record<string, string>): Promise<{ sipp: SippProcess; psid: string }> => {
    const psid = `7200000${String(++rig.psidSeq).padStart(4, "0")}`;
    const sipp = startSipp({ scenario, port: await freePort(), remote: `127.0.0.1:${rig.h.gateway.sipAddress.port}`, service: psid, vars, timeoutS: 40 });
    await sipp.ready;
    return { sipp, psid };
  };
  const simCall = async (psid: string): Promise<SimCall> => {
    await waitFor(() => rig.h.sim.calls().some((c) => c.psid === psid), 5000, `the consumer ${psid} to be called`);
    return rig.h.sim.calls().find((c) => c.psid === psid)!;
  };
  return { rig, agent, simCall };
}

async function audioFlows(call: SimCall): Promise<void> {
  const n = call.consumer.stats.packetsReceived;
  await sleep(300);
  expect(call.consumer.stats.packetsReceived).toBeGreaterThan(n + 5);
}

describe("agent calls: the consumer turns video on and off", () => {
  const { rig, agent, simCall } = agentRig();
  let phone: PhoneVideoSockets;
  beforeAll(() => requireTool("ffprobe", "Debian package ffmpeg"));
  beforeEach(async () => {
    phone = await openPhoneVideoSockets();
  });
  afterEach(() => phone.close());

  it.each(["H264", "VP8", "VP9", "H265", "AV1"] as const)(
    "%s from the consumer reaches the agent's phone as decodable H.264; the phone's INFO gets a keyframe",
    async (codec) => {
      const { sipp, psid } = await agent("gw-agent-consumer-video.xml", { video_port: String(phone.port), info_after_ms: "3000" });
      const call = await simCall(psid);
      await call.waitForState("media", 10_000);
      expect(await call.startVideo({ codec, width: 640, height: 360, fps: 30 })).toBe(200);
      await waitFor(() => phone.packets.length > 50, 15_000, "H.264 RTP at the agent's phone");
      await audioFlows(call);

      // SIP INFO picture_fast_update from the phone: an IDR from our encoder, or a PLI to the consumer.
      const gw = rig.h.gateway.registry.get(call.id)!;
      const plisBefore = call.consumer.videoStats.sent?.plisReceived ?? 0;
      if (codec === "H264") {
        await waitFor(() => (call.consumer.videoStats.sent?.plisReceived ?? 0) > plisBefore, 8000, "a PLI at the consumer after the phone's INFO");
        expect(gw.pbxMediaStats()?.consumerVideo?.state).toBe("passthrough");
      } else {
        await waitFor(() => (gw.pbxMediaStats()?.consumerVideo?.transcoder?.keyframeRequests ?? 0) > 0, 8000, "the phone's INFO at our encoder");
        await waitFor(() => (gw.pbxMediaStats()?.consumerVideo?.transcoder?.keyframesForced ?? 0) > 0, 3000, "an IDR forced for the phone");
      }

      expect(await call.stopVideo()).toBe(200);
      await waitFor(() => rig.h.logs.find("consumer video changed").filter((l) => l.callId === call.id).length === 2, 5000, "video off");
      await sleep(500);
      const afterOff = phone.packets.length;
      await sleep(500);
      expect(phone.packets.length).toBe(afterOff);
      await audioFlows(call);

      await call.hangup();
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      expect(result.logs).toMatch(/re-INVITE off m=video 0 RTP\/AVP 96/);
      expect(result.logs).toMatch(/keyframe requested by INFO/);
      const decoded = decodeH264Rtp(phone.packets);
      expect(decoded.frames).toBeGreaterThan(30);
      if (codec !== "H264") expect(decoded.profile).toBe("Constrained Baseline");
    },
    60_000,
  );
});

describe("agent calls: the agent's phone turns video on, off and on", () => {
  const { rig, agent, simCall } = agentRig();
  let phone: PhoneVideoSockets;
  beforeEach(async () => {
    phone = await openPhoneVideoSockets();
  });
  afterEach(() => phone.close());

  it.each([
    ["without a collision", undefined],
    ["when Meta's own media_update collides (200 without SDP)", "no-sdp"],
    ["when Meta's own media_update collides (conflict error)", "error"],
  ] as const)("media_update to Meta, H.264 reaches the consumer, then tracks-only off and on, %s", async (_label, collide) => {
    const { sipp, psid } = await agent("gw-agent-pbx-video.xml", {
      video_port: String(phone.port),
      video_fb: "a=rtcp-fb:96 nack pli",
      pause_ms: "1500",
      off_after_ms: "4000",
    });
    const call = await simCall(psid);
    await call.waitForState("media", 10_000);
    if (collide) rig.h.sim.collideNextMediaUpdate({ mode: collide });
    const gw = rig.h.gateway.registry.get(call.id)!;
    await waitFor(() => gw.pbxMediaStats()?.video !== undefined && rig.h.logs.find("media_update done").some((l) => l.callId === call.id), 10_000, "video agreed with Meta");
    await sendPhoneCamera(phone, gw.pbxMediaStats()!.video!.localRtpPort, 1.5, 0x5eed);
    await sleep(300);
    const file = join(mkdtempSync(join(tmpdir(), "consumer-")), "consumer.h264");
    writeFileSync(file, call.consumer.receivedVideoAnnexB("H264"));
    expect(decodeH264File(file).frames).toBeGreaterThan(20);

    // The pickup re-offer was version 1: ours goes from there, and a collision is retried one version on.
    const updates = graphRequests(rig.h.sim, "media_update", call.id).map(
      (r) => r.body as { from_version: number; to_version?: number; session?: unknown; tracks?: { msid: string; label: string; status: string }[] },
    );
    expect(updates[0]!.from_version).toBe(1);
    if (collide) {
      expect(updates.length).toBe(2);
      expect(updates[1]!.from_version).toBe(updates[0]!.from_version + 1);
    } else {
      expect(updates.length).toBe(1);
    }
    const on = updates.at(-1)!;
    expect(on.tracks).toEqual([expect.objectContaining({ label: "default_video", status: "enabled" })]);
    expect(call.mediaVersion).toBe(on.to_version);
    await audioFlows(call);

    // Video off and on again: the same track disabled and enabled, no offer, the version kept.
    await waitFor(() => graphRequests(rig.h.sim, "media_update", call.id).length === updates.length + 2, 15_000, "video off and on again at Meta");
    const [off, again] = graphRequests(rig.h.sim, "media_update", call.id)
      .slice(updates.length)
      .map((r) => r.body as { from_version: number; session?: unknown; tracks?: unknown[] });
    expect(off).toMatchObject({ from_version: on.to_version, tracks: [{ msid: on.tracks![0]!.msid, label: "default_video", status: "disabled" }] });
    expect(again).toMatchObject({ from_version: on.to_version, tracks: [{ msid: on.tracks![0]!.msid, label: "default_video", status: "enabled" }] });
    expect(off!.session).toBeUndefined();
    expect(again!.session).toBeUndefined();
    expect(call.mediaVersion).toBe(on.to_version);

    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/video off answered m=video 0 RTP\/AVP 96/);
    expect(result.logs).toMatch(/video back on answered m=video [1-9][0-9]* RTP\/AVP 96/);
  }, 60_000);
});

/**
 * Keyframes and bandwidth for the phone's video, both call directions: the consumer's PLI and REMB
 * reach the phone in the form its SDP negotiated.
 */
describe("keyframe requests and bitrate caps from the consumer reach the phone", () => {
  const { rig, agent, simCall } = agentRig();
  let phone: PhoneVideoSockets;
  beforeEach(async () => {
    phone = await openPhoneVideoSockets();
  });
  afterEach(() => phone.close());

  const feedbackFor = (ssrc: number, packetType: number, fmt: number): Buffer[] =>
    phone.feedback.filter((p) => p.packetType === packetType && p.fmt === fmt).map((p) => p.body).filter((b) => b.includes(ssrcBytes(ssrc)));

  it("agent call, phone with nack pli and goog-remb: RTCP PLI and REMB", async () => {
    // The phone's scenario goes on (video off and on) after what this test needs; it is stopped at the end.
    const { psid } = await agent("gw-agent-pbx-video.xml", {
      video_port: String(phone.port),
      video_fb: "a=rtcp-fb:96 nack pli\na=rtcp-fb:96 goog-remb",
      pause_ms: "800",
      off_after_ms: "6000",
    });
    const call = await simCall(psid);
    await call.waitForState("media", 10_000);
    const gw = rig.h.gateway.registry.get(call.id)!;
    await waitFor(() => rig.h.logs.find("media_update done").some((l) => l.callId === call.id), 10_000, "video agreed with Meta");
    const camera = sendPhoneCamera(phone, gw.pbxMediaStats()!.video!.localRtpPort, 3, 0x5eed);
    await waitFor(() => call.consumer.videoStats.received.framesDepacketized > 5, 5000, "the phone's video at the consumer");

    expect(call.consumer.requestKeyframe()).toBe(true);
    await waitFor(() => feedbackFor(0x5eed, PSFB, 1).length > 0, 3000, "a PLI at the phone");
    // PLI: sender SSRC, then the media SSRC, the phone's stream.
    expect(feedbackFor(0x5eed, PSFB, 1)[0]!.readUInt32BE(4)).toBe(0x5eed);

    expect(call.consumer.sendRemb(300_000)).toBe(true);
    await waitFor(() => feedbackFor(0x5eed, PSFB, 15).length > 0, 3000, "a REMB at the phone");
    const remb = feedbackFor(0x5eed, PSFB, 15)[0]!;
    expect(remb.toString("ascii", 8, 12)).toBe("REMB");
    const word = remb.readUInt32BE(12);
    expect((word & 0x3ffff) * 2 ** ((word >>> 18) & 0x3f)).toBe(300_000);
    expect(remb.readUInt32BE(16)).toBe(0x5eed);
    await camera;

    await call.hangup();
    await killAllSipp();
  }, 60_000);
});

describe("consumer call, phone with ccm tmmbr only: INFO for keyframes, TMMBR for bitrate", () => {
  let h: Harness;
  let pbxPort: number;
  let phone: PhoneVideoSockets;
  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
  });
  afterAll(async () => {
    await h?.stop();
    await killAllSipp();
  });
  beforeEach(async () => {
    requireSipp();
    phone = await openPhoneVideoSockets();
  });
  afterEach(() => phone.close());

  it("the consumer's PLI becomes SIP INFO picture_fast_update; its REMB becomes TMMBR", async () => {
    const sipp = startSipp({
      scenario: "gw-pbx-video-feedback.xml",
      port: pbxPort,
      vars: { video_port: String(phone.port), video_fb: "a=rtcp-fb:96 ccm tmmbr", pause_ms: "800" },
      timeoutS: 40,
    });
    await sipp.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const gw = h.gateway.registry.get(call.id)!;
    await waitFor(() => h.logs.find("media_update done").some((l) => l.callId === call.id), 10_000, "video agreed with Meta");
    const camera = sendPhoneCamera(phone, gw.pbxMediaStats()!.video!.localRtpPort, 3, 0x7a11);
    await waitFor(() => call.consumer.videoStats.received.framesDepacketized > 5, 5000, "the phone's video at the consumer");

    expect(call.consumer.sendRemb(512_000)).toBe(true);
    await waitFor(() => phone.feedback.some((p) => p.packetType === RTPFB && p.fmt === 3), 3000, "a TMMBR at the phone");
    const tmmbr = phone.feedback.find((p) => p.packetType === RTPFB && p.fmt === 3)!.body;
    // FCI: the phone's SSRC, then MxTBR exp (6) | mantissa (17) | overhead (9).
    expect(tmmbr.readUInt32BE(8)).toBe(0x7a11);
    const word = tmmbr.readUInt32BE(12);
    expect(((word >>> 9) & 0x1ffff) * 2 ** (word >>> 26)).toBe(512_000);
    expect(gw.pbxMediaStats()!.videoBitrateLimitsSent).toBeGreaterThan(0);

    expect(call.consumer.requestKeyframe()).toBe(true);
    await camera;
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/keyframe asked by INFO picture_fast_update/);
    // No PLI was negotiated, so none was sent.
    expect(phone.feedback.some((p) => p.packetType === PSFB && p.fmt === 1)).toBe(false);
  }, 60_000);
});

describe("agent call whose pickup re-offer never comes", () => {
  const { rig, agent, simCall } = agentRig({ MEDIA_TIMEOUT_MS: "3000" }, "manual");

  it("ends on both legs within MEDIA_TIMEOUT_MS, and says why", async () => {
    const { sipp, psid } = await agent("gw-agent-call-consumer-bye.xml", {});
    const call = await simCall(psid);
    await waitFor(() => rig.h.logs.find("consumer ringing").some((l) => l.psid === psid), 5000, "ringing");
    const pickedUpAt = Date.now();
    await call.answer({ pickupReoffer: false });
    // The agent's phone is alive and talking: only the consumer's side is silent.
    await waitFor(() => rig.h.gateway.registry.get(call.id)?.pbxMediaStats()?.rtp !== undefined, 5000, "the agent's media");
    const stopAudio = phoneAudio(rig.h.gateway.registry.get(call.id)!.pbxMediaStats()!.rtp.localRtpPort);
    await call.waitForState("ended", 10_000).finally(stopAudio);
    const endedAfter = Date.now() - pickedUpAt;
    expect(endedAfter).toBeGreaterThanOrEqual(3000);
    expect(endedAfter).toBeLessThan(3000 + 4000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(graphRequests(rig.h.sim, "terminate", call.id)).toHaveLength(1);
    const ended = rig.h.logs.find("call ended").find((l) => l.psid === psid)!;
    expect(ended.outcome).toBe("media-timeout");
    expect(String(ended.detail)).toMatch(/pickup/);
  }, 30_000);
});

function ssrcBytes(ssrc: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ssrc);
  return b;
}
