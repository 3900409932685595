import { afterEach, describe, expect, it } from "vitest";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  useNACK,
  usePLI,
  type RTCRtpSender,
} from "werift";
import { loopbackIceConfig } from "../../sim/loopback-ice.js";
import { waitFor } from "../support/harness.js";

/**
 * patches/werift+0.25.2.patch: werift's sender keeps every packet it sends for 128 sequence numbers
 * (2.56 s of audio) so it can answer NACKs, even when NACK was never negotiated. At hundreds of
 * calls that history is promoted to the old generation and collected in long pauses. The patch keeps
 * it only for codecs with `nack` feedback. These tests fail when `npm ci` did not apply it.
 */

const OPUS = () => new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 });
const VP8 = () => new RTCRtpCodecParameters({ mimeType: "video/VP8", clockRate: 90000, rtcpFeedback: [useNACK(), usePLI()] });

function peer(): RTCPeerConnection {
  // A loopback STUN URL: werift queries a public server when none is given (upstream #691).
  return new RTCPeerConnection({ ...loopbackIceConfig("stun:127.0.0.1:9"), bundlePolicy: "max-bundle", codecs: { audio: [OPUS()], video: [VP8()] } });
}

function cached(sender: RTCRtpSender): number {
  return (sender as unknown as { rtpCache: unknown[] }).rtpCache.filter(Boolean).length;
}

describe("werift, as patched", () => {
  const peers: RTCPeerConnection[] = [];
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((pc) => pc.close()));
  });

  it("keeps no send history for audio without NACK, and keeps it for video with NACK", async () => {
    const a = peer();
    const b = peer();
    peers.push(a, b);
    const audio = a.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendonly" });
    const video = a.addTransceiver(new MediaStreamTrack({ kind: "video" }), { direction: "sendonly" });
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription!);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription!);
    await waitFor(() => a.connectionState === "connected" && b.connectionState === "connected", 10_000, "the peers to connect");

    const received = { audio: 0, video: 0 };
    for (const t of b.getTransceivers()) {
      for (const track of t.receiver.tracks) track.onReceiveRtp.subscribe(() => received[track.kind === "video" ? "video" : "audio"]++);
    }
    expect(audio.sender.codec?.rtcpFeedback.some((f) => f.type === "nack")).toBe(false);
    expect(video.sender.codec?.rtcpFeedback.some((f) => f.type === "nack")).toBe(true);

    for (let seq = 0; seq < 40; seq++) {
      await audio.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 0, sequenceNumber: seq, timestamp: seq * 960 }), Buffer.alloc(60, 1)));
      await video.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 0, sequenceNumber: seq, timestamp: seq * 3000 }), Buffer.alloc(600, 2)));
    }
    await waitFor(() => received.audio === 40 && received.video === 40, 5000, "every packet at the receiver");
    expect(cached(audio.sender)).toBe(0);
    expect(cached(video.sender)).toBe(40);
  });
});
