import { randomInt } from "node:crypto";
import {
  MediaStream,
  MediaStreamTrack,
  ProtectionProfileAeadAes128Gcm,
  ProtectionProfileAes128CmHmacSha1_80,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  useSdesMid,
  type RTCDtlsTransport,
  type RTCRtpTransceiver,
} from "werift";
import { loopbackIceConfig } from "../../sim/loopback-ice.js";
import { META_OPUS_FMTP } from "../../sim/sdp-meta-style.js";

/** One RTP packet as the consumer received it (SRTP removed). */
export interface ReceivedRtp {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  payload: Buffer;
}

/** The DTLS-SRTP protection profile the consumer (as DTLS server) picks. */
export type SrtpProfileName = "AES_CM_128_HMAC_SHA1_80" | "AEAD_AES_128_GCM";

export interface ConsumerPeerOptions {
  /** `server` is what Meta's edge does (a=setup:passive); `client` answers active. */
  dtlsRole: "server" | "client";
  /**
   * libwebrtc offers GCM only when an application turns it on, so browsers and apps built on it
   * end up on AES_CM_128_HMAC_SHA1_80; werift alone would settle on GCM. Only honoured as DTLS server.
   */
  srtpProfile: SrtpProfileName;
  onRtp: (packet: ReceivedRtp, arrivalMs: number) => void;
}

const OPUS_PT = 111;
const CONNECT_TIMEOUT_MS = 20_000;

/**
 * A consumer's WebRTC peer for load: ice-lite werift that answers an offer, then sends and
 * receives raw RTP at the DTLS transport. Going below the RTP sender and receiver skips the
 * per-packet clone, header-extension and routing work the simulator's consumer pays for, so one
 * load-generator process carries many more calls; the wire format is the same (SRTP, the SSRC
 * the SDP announced, the negotiated payload type).
 */
export class ConsumerPeer {
  private readonly pc: RTCPeerConnection;
  private sendTransceiver: RTCRtpTransceiver | undefined;
  private dtls: RTCDtlsTransport | undefined;
  private closed = false;
  private readonly connected: Promise<void>;
  private opusPayloadType = OPUS_PT;
  private unsubscribeRtp: (() => void) | undefined;

  constructor(private readonly options: ConsumerPeerOptions) {
    this.pc = new RTCPeerConnection({
      ...loopbackIceConfig("stun:127.0.0.1:3478"),
      iceLite: true,
      bundlePolicy: "max-bundle",
      codecs: {
        audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2, payloadType: OPUS_PT, parameters: META_OPUS_FMTP })],
        video: [],
      },
      headerExtensions: { audio: [useSdesMid()], video: [] },
    });
    this.connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("consumer: DTLS not connected in time")), CONNECT_TIMEOUT_MS);
      this.pc.connectionStateChange.subscribe((state) => {
        if (state === "connected") {
          clearTimeout(timer);
          resolve();
        } else if (state === "failed" || state === "closed") {
          clearTimeout(timer);
          reject(new Error(`consumer: connection ${state}`));
        }
      });
    });
    this.connected.catch(() => undefined);
  }

  /** Answers the far end's offer. Returns werift's answer SDP. */
  async answerOffer(offerSdp: string): Promise<string> {
    this.opusPayloadType = opusPayloadTypeOf(offerSdp) ?? OPUS_PT;
    await this.pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
    const profile = this.options.srtpProfile === "AEAD_AES_128_GCM" ? ProtectionProfileAeadAes128Gcm : ProtectionProfileAes128CmHmacSha1_80;
    for (const t of this.pc.getTransceivers()) {
      t.setDirection("sendrecv");
      if (this.options.dtlsRole === "server") {
        t.dtlsTransport.role = "server";
        // Read when the handshake starts; the server's list decides the profile.
        (t.dtlsTransport as unknown as { srtpProfiles: number[] }).srtpProfiles = [profile];
      }
    }
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.attach(this.pc.getTransceivers()[0]);
    return this.pc.localDescription!.sdp;
  }

  /**
   * Meta's re-offer after accept: mid 0 turns recvonly and a new sendonly m-line carries the
   * consumer's voice. The business never answers it, so it stays a local offer.
   */
  async createSplitReoffer(): Promise<string> {
    for (const t of this.pc.getTransceivers()) t.setDirection("recvonly");
    const track = new MediaStreamTrack({ kind: "audio" });
    const stream = new MediaStream({ id: `meta-${randomInt(1, 2 ** 31)}`, tracks: [track] });
    const transceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.sendTransceiver = transceiver;
    return this.pc.localDescription!.sdp;
  }

  waitConnected(): Promise<void> {
    return this.connected;
  }

  get payloadType(): number {
    return this.opusPayloadType;
  }

  /** Sends one RTP packet on the consumer's own SSRC; false until DTLS is up. */
  send(sequenceNumber: number, timestamp: number, payload: Buffer, marker: boolean): boolean {
    const dtls = this.dtls;
    const transceiver = this.sendTransceiver ?? this.pc.getTransceivers()[0];
    if (this.closed || !dtls || dtls.state !== "connected" || !transceiver) return false;
    const header = new RtpHeader({ payloadType: this.opusPayloadType, sequenceNumber, timestamp, ssrc: transceiver.sender.ssrc, marker });
    void dtls.sendRtp(payload, header);
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribeRtp?.();
    try {
      await this.pc.close();
    } catch {
      // A transport that already failed has nothing left to free.
    }
  }

  private attach(transceiver: RTCRtpTransceiver | undefined): void {
    if (this.dtls || !transceiver) return;
    const dtls = transceiver.dtlsTransport;
    this.dtls = dtls;
    const { unSubscribe } = dtls.onRtp.subscribe((rtp) => {
      const arrival = performance.now();
      const h = rtp.header;
      this.options.onRtp({ payloadType: h.payloadType, sequenceNumber: h.sequenceNumber, timestamp: h.timestamp, payload: rtp.payload }, arrival);
    });
    this.unsubscribeRtp = unSubscribe;
  }
}

function opusPayloadTypeOf(sdp: string): number | undefined {
  const m = /^a=rtpmap:(\d+) opus\/48000/im.exec(sdp);
  return m ? Number(m[1]) : undefined;
}
