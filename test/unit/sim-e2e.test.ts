import {
  MediaStream,
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  useSdesMid,
  type RTCRtpTransceiver,
  type RTCTrackEvent,
} from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loopbackIceConfig, MetaSimulator } from "../../sim/index.js";
import { OPUS_SAMPLE_RATE, OpusPcmRecorder, OpusToneEncoder } from "../../sim/consumer-audio.js";
import { bundleMids, mediaDirection, mediaMid, parseSdp, rtpMaps } from "../../sim/sdp-text.js";
import { detectTone, type ToneDetection } from "../../transcode/tone.js";
import { graphPost, socketHandleCounts, WebhookReceiver } from "./sim-helpers.js";

const APP_SECRET = "e2e-app-secret";
const PAGE_ID = "1234567890";
const TOKEN = "EAAB-page-token";

/**
 * The gateway's media leg reduced to a bare werift offerer: full ICE (controlling against the
 * ice-lite consumer), BUNDLE, sha-256, Opus 111 + telephone-event 126. It speaks a tone on its
 * own transceiver and records what arrives on each mid.
 */
class TestGateway {
  readonly pc: RTCPeerConnection;
  readonly ours: RTCRtpTransceiver;
  private readonly received = new Map<string, OpusPcmRecorder>();
  private toneTimer: NodeJS.Timeout | undefined;

  constructor(stunUrl: string) {
    this.pc = new RTCPeerConnection({
      ...loopbackIceConfig(stunUrl),
      bundlePolicy: "max-bundle",
      codecs: {
        audio: [
          new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2, payloadType: 111, parameters: "minptime=10;useinbandfec=1" }),
          new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 8000, payloadType: 126, parameters: "0-16" }),
        ],
        video: [],
      },
      headerExtensions: { audio: [useSdesMid()], video: [] },
    });
    this.pc.ontrack = (event: RTCTrackEvent) => {
      const recorder = new OpusPcmRecorder(10);
      this.received.set(event.transceiver.mid ?? "?", recorder);
      event.track.onReceiveRtp.subscribe((rtp) => recorder.push(rtp.payload));
    };
    const track = new MediaStreamTrack({ kind: "audio" });
    this.ours = this.pc.addTransceiver(track, { direction: "sendrecv", streams: [new MediaStream({ id: "gw", tracks: [track] })] });
  }

  async offer(): Promise<string> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.pc.localDescription?.sdp ?? "";
  }

  /** Meta's re-offer is answered locally and the answer is never sent (as in Meta's docs). */
  async answerLocally(offer: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "offer", sdp: offer });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
  }

  speak(hz: number): void {
    const encoder = new OpusToneEncoder(hz, 0.3);
    let seq = 1;
    this.toneTimer = setInterval(() => {
      const { payload, timestampOffset } = encoder.nextFrame();
      const header = new RtpHeader({ payloadType: 111, sequenceNumber: seq++ & 0xffff, timestamp: timestampOffset });
      void this.ours.sender.sendRtp(new RtpPacket(header, payload));
    }, 20);
  }

  samplesOn(mid: string): number {
    return this.received.get(mid)?.pcm().length ?? 0;
  }

  heardOn(mid: string): ToneDetection {
    return detectTone(this.received.get(mid)?.pcm(1) ?? new Int16Array(0), OPUS_SAMPLE_RATE);
  }

  async close(): Promise<void> {
    clearInterval(this.toneTimer);
    await this.pc.close();
  }
}

describe("MetaSimulator end to end with a werift offerer", () => {
  let receiver: WebhookReceiver;
  let sim: MetaSimulator;
  let resourcesBefore: Record<string, number>;
  const callsUrl = (): string => `${sim.graphUrl}/v26.0/${PAGE_ID}/calls`;

  beforeAll(async () => {
    resourcesBefore = socketHandleCounts();
    receiver = await WebhookReceiver.start(APP_SECRET);
    sim = await MetaSimulator.start({
      appSecret: APP_SECRET,
      pageId: PAGE_ID,
      pageAccessToken: TOKEN,
      webhookUrl: receiver.url,
      host: "127.0.0.1",
      port: 0,
      graphVersion: "v26.0",
    });
  });

  afterAll(async () => {
    await sim?.stop();
    await receiver?.close();
  });

  it("consumer calls: accept, split transceivers, a tone each way, terminate", async () => {
    const call = await sim.placeCall({ toneHz: 440 });
    expect(call.id).toMatch(/^c_\d+$/);
    expect(call.psid).toMatch(/^\d+$/);
    expect(call.connectWebhookStatus).toBe(200);
    const connect = await receiver.waitForEvent((e) => e["event"] === "connect" && e["id"] === call.id);
    expect(connect).toMatchObject({ to: PAGE_ID, from: call.psid, call_direction: "user_initiated" });
    expect(Number.isInteger(connect["timestamp"])).toBe(true);

    const gateway = new TestGateway(sim.stunUrl);
    try {
      const offer = await gateway.offer();
      expect(offer).toContain("a=candidate:");
      const accept = await graphPost(
        callsUrl(),
        { platform: "messenger", call_id: call.id, action: "accept", session: { sdp_type: "offer", sdp: offer } },
        TOKEN,
      );
      expect(accept.status).toBe(200);
      const session = accept.body["session"] as Record<"sdp_response" | "sdp_renegotiation", { sdp_type: string; sdp: string }>;
      expect(session.sdp_response.sdp_type).toBe("answer");
      expect(session.sdp_renegotiation.sdp_type).toBe("offer");
      expect(call.state).toBe("accepted");

      const answer = session.sdp_response.sdp;
      expect(answer).toContain("a=ice-lite");
      expect(answer).toContain("a=setup:passive");
      const answerDoc = parseSdp(answer);
      expect(answerDoc.media).toHaveLength(1);
      expect(answerDoc.media[0]?.formats).toEqual(["111"]);
      expect(mediaDirection(answerDoc.media[0]!)).toBe("sendrecv");

      const reoffer = session.sdp_renegotiation.sdp;
      const reofferDoc = parseSdp(reoffer);
      expect(bundleMids(reofferDoc)).toEqual(["0", "1"]);
      expect(reofferDoc.session).toContain("a=x-fb-feature:pqc-0");
      const [mid0, mid1] = reofferDoc.media;
      expect([mediaMid(mid0!), mediaDirection(mid0!)]).toEqual(["0", "recvonly"]);
      expect([mediaMid(mid1!), mediaDirection(mid1!)]).toEqual(["1", "sendonly"]);
      expect(mid1!.lines.some((l) => l.startsWith("a=msid:"))).toBe(true);
      expect(mid1!.lines.some((l) => l.startsWith("a=ssrc:"))).toBe(true);
      for (const m of reofferDoc.media) {
        expect(m.lines).toContain("a=setup:passive");
        expect(m.lines).toContain("a=x-google-flag:conference");
        expect(m.lines).toContain("a=rtcp-rsize");
        expect(rtpMaps(m).map((r) => r.payloadType)).toEqual([111]);
      }

      await gateway.pc.setRemoteDescription({ type: "answer", sdp: answer });
      await gateway.answerLocally(reoffer);
      expect(gateway.pc.getTransceivers().map((t) => [t.mid, t.currentDirection])).toEqual([
        ["0", "sendonly"],
        ["1", "recvonly"],
      ]);

      gateway.speak(1000);
      await call.waitForState("media", 10_000);
      await new Promise((r) => setTimeout(r, 1500));

      const heardByConsumer = call.consumer.detectTone(1);
      expect(Math.abs(heardByConsumer.hz - 1000)).toBeLessThan(5);
      expect(heardByConsumer.snrDb).toBeGreaterThan(10);
      const stats = call.consumer.stats;
      expect(stats.state).toBe("connected");
      expect(stats.payloadTypes).toEqual([111]);
      expect(stats.receivedOnMids).toEqual(["0"]);
      expect(stats.ssrcs).toEqual([gateway.ours.sender.ssrc]);
      expect(stats.firstPacketAt).toBeTypeOf("number");
      expect(stats.packetsSent).toBeGreaterThan(40);

      // The consumer's voice arrives on the transceiver Meta's re-offer added, not on ours.
      expect(gateway.samplesOn("0")).toBe(0);
      const heardByGateway = gateway.heardOn("1");
      expect(Math.abs(heardByGateway.hz - 440)).toBeLessThan(5);
      expect(heardByGateway.snrDb).toBeGreaterThan(10);

      const terminate = await graphPost(callsUrl(), { call_id: call.id, action: "terminate" }, TOKEN);
      expect(terminate).toEqual({ status: 200, body: { success: true } });
      const ended = await receiver.waitForEvent((e) => e["event"] === "terminate" && e["id"] === call.id);
      expect(ended["status"]).toBe("Completed");
      expect(Number.isInteger(ended["duration"])).toBe(true);
      expect(call.state).toBe("ended");
      expect(call.consumer.state).toBe("closed");
      expect(sim.activeCalls()).toHaveLength(0);
    } finally {
      await gateway.close();
    }
  });

  it("business calls: connect, ringing, pickup re-offer, versioned media updates both ways", async () => {
    const gateway = new TestGateway(sim.stunUrl);
    try {
      const connect = await graphPost(
        callsUrl(),
        { platform: "messenger", to: "5550001", action: "connect", session: { sdp_type: "offer", sdp: await gateway.offer() } },
        TOKEN,
      );
      expect(connect.status).toBe(200);
      const callId = connect.body["id"] as string;
      expect(callId).toMatch(/^c_\d+$/);
      const answer = (connect.body["session"] as { sdp_response: { sdp_type: string; sdp: string } }).sdp_response;
      expect(answer.sdp_type).toBe("answer");
      expect(answer.sdp).toContain("a=setup:passive");
      await gateway.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });

      const call = sim.getCall(callId)!;
      expect(call.direction).toBe("business_initiated");
      await receiver.waitForEvent((e) => e["id"] === callId && e["event"] === "call_status" && e["call_status"] === "ringing");
      await receiver.waitForEvent((e) => e["id"] === callId && e["event"] === "call_status" && e["call_status"] === "accepted");
      const pickup = await receiver.waitForEvent((e) => e["id"] === callId && e["event"] === "media_update");
      const pickupSession = pickup["session"] as { version: number; sdp_renegotiation: { sdp_type: string; sdp: string } };
      expect(pickupSession.version).toBe(1);
      expect(bundleMids(parseSdp(pickupSession.sdp_renegotiation.sdp))).toEqual(["0", "1"]);
      await gateway.answerLocally(pickupSession.sdp_renegotiation.sdp);

      gateway.speak(1000);
      await call.waitForState("media", 10_000);
      await new Promise((r) => setTimeout(r, 1500));
      expect(Math.abs(call.consumer.detectTone(1).hz - 1000)).toBeLessThan(5);
      expect(Math.abs(gateway.heardOn("1").hz - 440)).toBeLessThan(5);

      // The business re-offers: it must move from Meta's version 1 to 2.
      await gateway.pc.setLocalDescription(await gateway.pc.createOffer());
      const reoffer = gateway.pc.localDescription?.sdp ?? "";
      const stale = await graphPost(
        callsUrl(),
        { call_id: callId, action: "media_update", from_version: 0, to_version: 1, session: { sdp_type: "offer", sdp: reoffer } },
        TOKEN,
      );
      expect((stale.body["error"] as { message: string }).message).toMatch(/Conflicting media status/);
      const update = await graphPost(
        callsUrl(),
        {
          call_id: callId,
          action: "media_update",
          from_version: 1,
          to_version: 2,
          tracks: [{ msid: "gw", label: "default_audio", status: "enabled" }],
          session: { sdp_type: "offer", sdp: reoffer },
        },
        TOKEN,
      );
      expect(update.status).toBe(200);
      const updateAnswer = (update.body["session"] as { sdp_response: { sdp_type: string; sdp: string } }).sdp_response;
      expect(updateAnswer.sdp).toContain("a=setup:passive");
      await gateway.pc.setRemoteDescription({ type: "answer", sdp: updateAnswer.sdp });
      expect(call.mediaVersion).toBe(2);

      // The consumer's side re-offers (e.g. mute/unmute): version 3 by webhook.
      expect(await call.sendMediaUpdate()).toBe(200);
      const third = await receiver.waitForEvent((e) => e["id"] === callId && e["event"] === "media_update" && (e["session"] as { version: number }).version === 3);
      await gateway.answerLocally((third["session"] as { sdp_renegotiation: { sdp: string } }).sdp_renegotiation.sdp);

      const before = call.consumer.stats.packetsReceived;
      await new Promise((r) => setTimeout(r, 500));
      expect(call.consumer.stats.packetsReceived).toBeGreaterThan(before + 10);
      expect(Math.abs(gateway.heardOn("1").hz - 440)).toBeLessThan(5);

      expect(await call.hangup()).toBe(200);
      const ended = await receiver.waitForEvent((e) => e["id"] === callId && e["event"] === "terminate");
      expect(ended).toMatchObject({ status: "Completed" });
    } finally {
      await gateway.close();
    }
  });

  it("leaves no sockets or timers behind after stop", async () => {
    await sim.stop();
    await receiver.close();
    // Closed UDP handles leave the active list a few loop turns later.
    for (let i = 0; i < 50 && JSON.stringify(socketHandleCounts()) !== JSON.stringify(resourcesBefore); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(socketHandleCounts()).toEqual(resourcesBefore);
  });
});
