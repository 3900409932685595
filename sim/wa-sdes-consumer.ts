import { randomBytes, randomInt } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { ProtectionProfileAes128CmHmacSha1_80, RtpHeader, RtpPacket, SrtcpSession, SrtpSession } from "werift";
import { ConsumerNegotiationError, SimStateError } from "./errors.js";
import { LOOPBACK_HOST } from "./loopback-ice.js";
import { mediaMid, parseSdp } from "./sdp-text.js";
import type { OutgoingRtp } from "./wa-audio.js";
import { BaseWhatsAppConsumer, type WaConsumerOptions } from "./wa-consumer-base.js";
import {
  audioPayloadTypes,
  liveAudio,
  parseCryptoLines,
  sdesSdp,
  WA_AUDIO_MID,
  WA_OPUS_PAYLOAD_TYPE,
  WA_SDES_SUITE,
  WA_TELEPHONE_EVENT_PAYLOAD_TYPE,
  type SdesCrypto,
} from "./wa-sdp.js";

const KEY_LENGTH = 16;
const SALT_LENGTH = 14;

/**
 * SDES mode (`srtp_key_exchange_protocol: SDES`): no ICE, no DTLS; one UDP socket on loopback, keys in
 * `a=crypto` (AES_CM_128_HMAC_SHA1_80) and werift's SRTP/SRTCP sessions. As WhatsApp's edge, the consumer
 * sends nothing until the business's first SRTP packet has arrived, then sends to that packet's source
 * (Meta "still expects the business side to send the first SRTP packet", §2.1).
 */
export class SdesWhatsAppConsumer extends BaseWhatsAppConsumer {
  readonly keyExchange = "SDES" as const;
  private socket: Socket | undefined;
  private readonly localKeySalt = randomBytes(KEY_LENGTH + SALT_LENGTH);
  private readonly ssrc = randomInt(1, 2 ** 32);
  private srtp: SrtpSession | undefined;
  private srtcp: SrtcpSession | undefined;
  private remote: { address: string; port: number } | undefined;
  private offered = false;
  private readonly offerTag = 1;

  constructor(options: WaConsumerOptions = {}) {
    super(options);
  }

  /** Where the business's first packet came from (where the consumer sends), once known. */
  get remoteAddress(): { address: string; port: number } | undefined {
    return this.remote;
  }

  async createOffer(): Promise<string> {
    this.assertOpen();
    if (this.offered) throw new SimStateError("the consumer already made its offer");
    const port = await this.bind();
    this.offered = true;
    this.currentState = "negotiating";
    return sdesSdp({ port, crypto: this.localCrypto(this.offerTag), ssrc: this.ssrc, mid: WA_AUDIO_MID });
  }

  async applyAnswer(sdp: string): Promise<void> {
    this.assertOpen();
    if (!this.offered || this.srtp) throw new SimStateError("no offer of the consumer's is waiting for an answer");
    this.startSession(sdp, this.offerTag);
  }

  async answerOffer(sdp: string): Promise<string> {
    this.assertOpen();
    if (this.offered || this.srtp) throw new SimStateError("the consumer already negotiated");
    const port = await this.bind();
    const remote = this.startSession(sdp, undefined);
    this.offered = true;
    const audio = liveAudio(parseSdp(sdp));
    const mid = (audio ? mediaMid(audio) : undefined) ?? WA_AUDIO_MID;
    return sdesSdp({ port, crypto: this.localCrypto(remote.tag), ssrc: this.ssrc, mid });
  }

  protected async release(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private localCrypto(tag: number): SdesCrypto {
    return { tag, suite: WA_SDES_SUITE, keySalt: this.localKeySalt };
  }

  /** Takes the business's key from its SDP and sets up the SRTP sessions; returns the crypto line chosen. */
  private startSession(sdp: string, wantedTag: number | undefined): SdesCrypto {
    const audio = liveAudio(parseSdp(sdp));
    if (!audio) throw new ConsumerNegotiationError("the business's SDP has no audio");
    const crypto = parseCryptoLines(audio).find(
      (c) => c.suite === WA_SDES_SUITE && c.keySalt.length === KEY_LENGTH + SALT_LENGTH && (wantedTag === undefined || c.tag === wantedTag),
    );
    if (!crypto) throw new ConsumerNegotiationError(`no usable ${WA_SDES_SUITE} a=crypto line`);
    const types = audioPayloadTypes(sdp);
    this.sink.setPayloadTypes(types.opus, types.telephoneEvent);
    const keys = {
      localMasterKey: this.localKeySalt.subarray(0, KEY_LENGTH),
      localMasterSalt: this.localKeySalt.subarray(KEY_LENGTH),
      remoteMasterKey: crypto.keySalt.subarray(0, KEY_LENGTH),
      remoteMasterSalt: crypto.keySalt.subarray(KEY_LENGTH),
    };
    const config = { keys, profile: ProtectionProfileAes128CmHmacSha1_80 };
    this.srtp = new SrtpSession(config);
    this.srtcp = new SrtcpSession(config);
    this.source.setPayloadTypes({
      opus: types.opus[0] ?? WA_OPUS_PAYLOAD_TYPE,
      telephoneEvent: types.telephoneEvent[0] ?? WA_TELEPHONE_EVENT_PAYLOAD_TYPE,
    });
    return crypto;
  }

  private async bind(): Promise<number> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, LOOPBACK_HOST, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    socket.on("error", () => undefined);
    socket.on("message", (msg, rinfo) => this.onDatagram(msg, rinfo));
    this.socket = socket;
    return socket.address().port;
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (!this.srtp || !this.srtcp || msg.length < 12 || rinfo.address !== LOOPBACK_HOST) return;
    const second = msg[1] ?? 0;
    // RFC 5761: RTCP packet types 192-223 occupy the second byte where RTP has marker+payload type.
    const isRtcp = second >= 192 && second <= 223;
    try {
      if (isRtcp) {
        this.srtcp.decrypt(msg);
        this.sink.onRtcp();
      } else {
        const packet = RtpPacket.deSerialize(this.srtp.decrypt(msg));
        this.sink.onRtp(packet.header.payloadType, packet.header.ssrc, packet.header.timestamp, packet.payload);
      }
    } catch {
      this.sink.counters.unprotectErrors++;
      return;
    }
    if (!this.remote) {
      this.remote = { address: rinfo.address, port: rinfo.port };
      this.currentState = "connected";
      this.startIfReady();
    }
  }

  protected startIfReady(): void {
    if (this.mediaWanted && this.remote && !this.source.running && this.currentState !== "closed") this.source.start();
  }

  protected emit(packet: OutgoingRtp): void {
    const socket = this.socket;
    const remote = this.remote;
    if (!socket || !remote || !this.srtp) return;
    const header = new RtpHeader({
      payloadType: packet.payloadType,
      sequenceNumber: packet.sequenceNumber,
      timestamp: packet.timestamp,
      marker: packet.marker,
      ssrc: this.ssrc,
    });
    socket.send(this.srtp.encrypt(packet.payload, header), remote.port, remote.address);
  }
}
