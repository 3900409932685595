import { buildOffer, readRemoteMedia } from "../../sip/sdp.js";
import { NgClient } from "../rtpengine/ng-client.js";
import type { BenchCall } from "./bench-call.js";
import type { CallDriver } from "./driver.js";

/**
 * The same calls through rtpengine: the phone's plain PCMU offer goes in with flags that turn the
 * other side into WebRTC (ICE, DTLS-SRTP, rtcp-mux) offering Opus only, the consumer answers it,
 * and the answer goes back as plain RTP/AVP. rtpengine then transcodes PCMU⇄Opus in userspace.
 */
export class RtpengineDriver implements CallDriver {
  private ng: NgClient | undefined;
  private readonly fromTag = "pbx";
  private readonly toTag = "consumer";

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  async start(): Promise<void> {
    this.ng = await NgClient.connect(this.host, this.port);
    await this.ng.request("ping");
  }

  async place(call: BenchCall): Promise<void> {
    const ng = this.ng;
    if (!ng) throw new Error("NG client not started");
    try {
      const phone = await call.createPhone();
      const plainOffer = buildOffer({
        mediaAddress: "127.0.0.1",
        audioPort: phone.port,
        rtcpPort: phone.port,
        audioCodecs: ["PCMU"],
        telephoneEventPayloadType: false,
      });
      const offer = await ng.request("offer", {
        "call-id": call.id,
        "from-tag": this.fromTag,
        sdp: plainOffer,
        "transport-protocol": "UDP/TLS/RTP/SAVPF",
        ICE: "force",
        "rtcp-mux": ["offer", "require"],
        SDES: ["off"],
        flags: ["generate-mid"],
        // 20 kbit/s as the gateway encodes; rtpengine keeps its own encoder defaults otherwise.
        codec: { transcode: ["opus/48000/2/20000"], mask: ["PCMU"] },
      });
      // werift reads a=rtcp only in its "port IN IP4 address" form; with rtcp-mux it says nothing anyway.
      const webrtcOffer = String(offer.sdp).replace(/^a=rtcp:\d+\r?\n/gm, "");
      // The consumer is DTLS server, as Meta's edge is toward the gateway. (With werift as client,
      // rtpengine 10.5 left about one handshake in ten hanging after the client's second flight.)
      const consumer = call.createConsumer("server");
      const consumerAnswer = await consumer.answerOffer(webrtcOffer);
      const answer = await ng.request("answer", {
        "call-id": call.id,
        "from-tag": this.fromTag,
        "to-tag": this.toTag,
        sdp: consumerAnswer,
        "transport-protocol": "RTP/AVP",
        ICE: "remove",
        "rtcp-mux": ["demux"],
      });
      const remote = readRemoteMedia(String(answer.sdp));
      phone.setRemote(remote.audio.address, remote.audio.port);
      call.startPhone();
    } catch (err) {
      call.fail(`rtpengine setup: ${(err as Error).message}`);
      await this.delete(call.id);
    }
  }

  async hangup(call: BenchCall): Promise<void> {
    if (call.state !== "ended" && call.state !== "failed") call.state = "ending";
    call.closeConsumer();
    call.closePhone();
    await this.delete(call.id);
  }

  async close(): Promise<void> {
    this.ng?.close();
  }

  private async delete(callId: string): Promise<void> {
    await this.ng?.request("delete", { "call-id": callId, "from-tag": this.fromTag }).catch(() => undefined);
  }
}
