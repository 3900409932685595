import { createCipheriv, createHmac, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtcpTransportLayerFeedback,
  RtpHeader,
  RtpPacket,
  SrtpSession,
  ntpTime,
  TransportWideCC,
  useNACK,
  usePLI,
  useTransportWideCC,
  useTWCC,
  type RTCRtpSender,
  type RtcpPacket,
} from "werift";
import pino from "pino";
import { MetaLeg } from "../../gateway/webrtc/meta-leg.js";
import { TRANSPORT_CC_URI, TransportFeedbackRecorder, transportSequenceNumber } from "../../gateway/webrtc/transport-cc.js";
import { loopbackIceConfig } from "../../sim/loopback-ice.js";
import { waitFor } from "../support/harness.js";

/**
 * patches/werift+0.25.2.patch: werift's sender keeps every packet it sends for 128 sequence numbers
 * (2.56 s of audio) so it can answer NACKs, even when NACK was never negotiated. At hundreds of
 * calls that history is promoted to the old generation and collected in long pauses. The patch keeps
 * it only for codecs with `nack` feedback. It also builds SRTP's AES-CM keystream from one AES-ECB
 * object per session key instead of an AES-CTR object per packet, and DTLS's X25519 key exchange in
 * OpenSSL instead of tweetnacl. And it adds the peer option `sendTransportCcFeedback: false`, which
 * keeps transport-cc negotiated but stops werift's own (malformed) transport-cc feedback, so that
 * ours (gateway/webrtc/transport-cc.ts) is the only one. On every packet, it reads RTP header bit
 * fields with shifts instead of string round trips, and takes RFC 3550 NTP timestamps
 * arithmetically (with a binary fraction, not decimal digits). Within `icePortRange`, a port search
 * goes round the range instead of scanning it from its first port (one probe per call instead of
 * one per port in use), and a certificate's fingerprint is hashed once. These tests fail when
 * `npm ci` did not apply it, or when the keystream or the key exchange is wrong.
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

/** werift's AES-CM cipher (not exported), taken from a session's context. */
interface AesCmCipher {
  encryptRtp(header: RtpHeader, payload: Buffer, rolloverCounter: number): Buffer;
  decryptRtp(packet: Buffer, rolloverCounter: number): [Buffer, RtpHeader];
  encryptRTCP(packet: Buffer, index: number): Buffer;
  decryptRTCP(packet: Buffer): [Buffer, unknown];
}
type AesCmCipherClass = new (srtpKey: Buffer, srtpSalt: Buffer, srtcpKey: Buffer, srtcpSalt: Buffer, srtpAuth: Buffer, srtcpAuth: Buffer) => AesCmCipher;
const AES_CM_HMAC_SHA1_80 = 1;

function aesCmCipherClass(): AesCmCipherClass {
  const session = new SrtpSession({
    keys: { localMasterKey: randomBytes(16), localMasterSalt: randomBytes(14), remoteMasterKey: randomBytes(16), remoteMasterSalt: randomBytes(14) },
    profile: AES_CM_HMAC_SHA1_80,
  });
  const cipher = (session.localContext as unknown as { cipher: object }).cipher;
  return cipher.constructor as AesCmCipherClass;
}

/** RFC 3711 4.1.1: IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16), index = ROC << 16 | SEQ. */
function rfcIv(salt: Buffer, ssrc: number, roc: number, seq: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(ssrc, 4);
  iv.writeUInt32BE(roc, 8);
  iv.writeUInt16BE(seq, 12);
  for (let i = 0; i < 14; i++) iv[i]! ^= salt[i]!;
  return iv;
}

describe("werift SRTP AES-CM, as patched", () => {
  const Cipher = aesCmCipherClass();

  it("produces RFC 3711's AES-CM keystream test vector (B.2)", () => {
    const key = Buffer.from("2B7E151628AED2A6ABF7158809CF4F3C", "hex");
    const salt = Buffer.from("F0F1F2F3F4F5F6F7F8F9FAFBFCFD", "hex");
    const cipher = new Cipher(key, salt, key, salt, randomBytes(20), randomBytes(20));
    const packet = cipher.encryptRtp(new RtpHeader({ sequenceNumber: 0, ssrc: 0, payloadType: 0 }), Buffer.alloc(48), 0);
    expect(packet.subarray(12, 60).toString("hex")).toBe(
      "e03ead0935c95e80e166b16dd92b4eb4" + "d23513162b02d0f72a43a2fe4a5f97ab" + "41e95b3bb0a2e8dd477901e4fca894c0",
    );
  });

  it("matches AES-128-CTR and HMAC-SHA1 over RFC 3711's IV for any length, and decrypts its own packets", () => {
    const key = randomBytes(16);
    const salt = randomBytes(14);
    const auth = randomBytes(20);
    const cipher = new Cipher(key, salt, key, salt, auth, auth);
    for (const length of [1, 15, 16, 17, 160, 161, 1200]) {
      const seq = (length * 7919) & 0xffff;
      const ssrc = (length * 2654435761) >>> 0;
      const roc = length;
      const payload = randomBytes(length);
      const header = new RtpHeader({ sequenceNumber: seq, ssrc, payloadType: 111, timestamp: length * 960 });
      const packet = cipher.encryptRtp(header, payload, roc);
      const expected = createCipheriv("aes-128-ctr", key, rfcIv(salt, ssrc, roc, seq)).update(payload);
      expect(packet.subarray(12, 12 + length).equals(expected), `payload of ${length} bytes`).toBe(true);
      const rocBytes = Buffer.alloc(4);
      rocBytes.writeUInt32BE(roc);
      const tag = createHmac("sha1", auth).update(packet.subarray(0, 12 + length)).update(rocBytes).digest().subarray(0, 10);
      expect(packet.subarray(12 + length).equals(tag)).toBe(true);
      const [plain] = cipher.decryptRtp(packet, roc);
      expect(plain.subarray(12).equals(payload)).toBe(true);
    }
  });

  it("encrypts and decrypts SRTCP with the SRTCP key", () => {
    const cipher = new Cipher(randomBytes(16), randomBytes(14), randomBytes(16), randomBytes(14), randomBytes(20), randomBytes(20));
    const rtcp = Buffer.concat([Buffer.from([0x80, 200, 0, 6]), randomBytes(24)]);
    const encrypted = cipher.encryptRTCP(rtcp, 77);
    expect(encrypted.subarray(8, rtcp.length).equals(rtcp.subarray(8))).toBe(false);
    const [plain] = cipher.decryptRTCP(encrypted);
    expect(plain.equals(rtcp)).toBe(true);
  });
});

describe("werift DTLS X25519, as patched", () => {
  // The ECMAScript bundle the gateway loads keeps these private; the CommonJS build has the same code.
  const require = createRequire(import.meta.url);
  const dir = require.resolve("werift").replace(/webrtc[\\/]src[\\/]index\.js$/, "dtls/src/cipher/");
  const ec = require(`${dir}ec.js`) as {
    x25519Keypair: () => { privateKey: Buffer; publicKey: Buffer };
    x25519PreMasterSecret: (publicKey: Buffer, privateKey: Buffer) => Buffer;
  };

  it("makes raw 32-byte keys and the same shared secret as the reference implementation", () => {
    for (let i = 0; i < 20; i++) {
      const ours = ec.x25519Keypair();
      expect(ours.privateKey).toHaveLength(32);
      expect(Buffer.from(nacl.scalarMult.base(ours.privateKey)).equals(ours.publicKey)).toBe(true);
      const theirs = nacl.box.keyPair();
      const secret = ec.x25519PreMasterSecret(Buffer.from(theirs.publicKey), ours.privateKey);
      expect(secret.equals(Buffer.from(nacl.scalarMult(theirs.secretKey, ours.publicKey)))).toBe(true);
    }
  });

  it("matches RFC 7748's Diffie-Hellman test vector (6.1)", () => {
    const alicePrivate = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
    const bobPublic = Buffer.from("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", "hex");
    expect(ec.x25519PreMasterSecret(bobPublic, alicePrivate).toString("hex")).toBe("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  });
});

describe("werift transport-cc feedback, as patched", () => {
  const peers: RTCPeerConnection[] = [];
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((pc) => pc.close()));
  });

  const OPUS_TWCC = () => new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2, rtcpFeedback: [useTWCC()] });
  const twccPeer = (sendTransportCcFeedback?: boolean): RTCPeerConnection =>
    new RTCPeerConnection({
      ...loopbackIceConfig("stun:127.0.0.1:9"),
      bundlePolicy: "max-bundle",
      codecs: { audio: [OPUS_TWCC()] },
      headerExtensions: { audio: [useTransportWideCC()] },
      sendTransportCcFeedback,
    });

  /**
   * A peer sends 40 audio packets to `b`. Returns b's transceiver, the transport-cc feedback werift
   * builds at b (seen where b's DTLS transport sends RTCP), and what the sender parsed.
   */
  async function call(b: RTCPeerConnection, onRtp: (packet: RtpPacket, arrivalMs: number) => void) {
    const a = twccPeer();
    peers.push(a, b);
    const audio = a.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendonly" });
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription!);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription!);
    await waitFor(() => a.connectionState === "connected" && b.connectionState === "connected", 10_000, "the peers to connect");
    // werift negotiates transport-cc both ways, whoever sends the feedback.
    for (const sdp of [a.localDescription!.sdp, b.localDescription!.sdp]) {
      expect(sdp).toMatch(/^a=rtcp-fb:\d+ transport-cc\r?$/m);
      expect(sdp).toContain(TRANSPORT_CC_URI);
    }
    const feedback: TransportWideCC[] = [];
    audio.dtlsTransport!.onRtcp.subscribe((rtcp: RtcpPacket) => {
      if (rtcp instanceof RtcpTransportLayerFeedback && rtcp.feedback instanceof TransportWideCC) feedback.push(rtcp.feedback);
    });
    const receiving = b.getTransceivers()[0]!;
    // werift's own feedback often fails to parse at the sender, so it is counted where it leaves.
    const werifts: TransportWideCC[] = [];
    const dtls = receiving.dtlsTransport!;
    const sendRtcp = dtls.sendRtcp.bind(dtls);
    dtls.sendRtcp = (rtcp: RtcpPacket[]) => {
      for (const p of rtcp) if (p instanceof RtcpTransportLayerFeedback && p.feedback instanceof TransportWideCC) werifts.push(p.feedback);
      return sendRtcp(rtcp);
    };
    let received = 0;
    for (const track of receiving.receiver.tracks) {
      track.onReceiveRtp.subscribe((packet) => {
        received++;
        onRtp(packet, performance.now());
      });
    }
    for (let seq = 0; seq < 40; seq++) {
      await audio.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 0, sequenceNumber: seq, timestamp: seq * 960 }), Buffer.alloc(60, 1)));
    }
    await waitFor(() => received === 40, 5000, "every packet at the receiver");
    return { receiving, feedback, werifts };
  }

  const receiverTwcc = (t: { receiver: object }): unknown => (t.receiver as { receiverTWCC?: unknown }).receiverTWCC;

  it("negotiates transport-cc without sending werift's feedback, and carries ours over SRTCP", async () => {
    const b = twccPeer(false);
    const recorder = new TransportFeedbackRecorder();
    let mediaSsrc = 0;
    let id: number | undefined;
    const { receiving, feedback, werifts } = await call(b, (packet, arrivalMs) => {
      id ??= b.getTransceivers()[0]!.headerExtensions.find((e) => e.uri === TRANSPORT_CC_URI)?.id;
      const seq = id === undefined ? undefined : transportSequenceNumber(packet.header.extensions, id);
      if (seq !== undefined) recorder.record(seq, arrivalMs);
      mediaSsrc = packet.header.ssrc;
    });
    expect(id).toBeDefined();
    expect(receiverTwcc(receiving)).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(werifts).toHaveLength(0);
    expect(feedback).toHaveLength(0);

    // Ours, as raw bytes: werift's sendRtcp only calls serialize() on each packet, concatenates
    // the results and protects them as one SRTCP packet.
    const packets = recorder.build(receiving.sender.ssrc, mediaSsrc);
    expect(packets).toHaveLength(1);
    const raw = new RtcpTransportLayerFeedback();
    raw.serialize = () => packets[0]!;
    await receiving.dtlsTransport!.sendRtcp([raw]);
    await waitFor(() => feedback.length === 1, 5000, "our feedback at the sender");
    // werift's sender numbers transport-wide from 1.
    expect(feedback[0]).toMatchObject({ senderSsrc: receiving.sender.ssrc, mediaSourceSsrc: mediaSsrc, baseSequenceNumber: 1, packetStatusCount: 40, fbPktCount: 0 });
  });

  it("still sends werift's own feedback without the option (so the test above can tell)", async () => {
    const { receiving, werifts } = await call(twccPeer(), () => undefined);
    expect(receiverTwcc(receiving)).toBeDefined();
    // ReceiverTWCC sends once more than 10 packets wait: 40 packets make 3.
    await waitFor(() => werifts.length >= 3, 5000, "werift's own feedback");
  });
});

describe("RTP header extensions are read within the datagram (patch)", () => {
  it("a one-byte-header extension whose declared length runs past the datagram is read up to its end", () => {
    // The shape fuzzing found: X bit, profile 0xBEDE, a declared length of 0xffff words, then 1368
    // bytes. Unpatched, werift walks 262,140 positions past the end, copying its extension array at
    // each (quadratic): minutes of a blocked event loop, before any SRTP authentication.
    const datagram = Buffer.concat([Buffer.from("90884c7d0000000000000000bedeffff", "hex"), Buffer.alloc(1368, 0x8b)]);
    const header = RtpHeader.deSerialize(datagram);
    expect(header.extensionProfile).toBe(0xbede);
    expect(header.extensions.length).toBeLessThanOrEqual(datagram.length);
    for (const e of header.extensions) expect(e.payload.byteOffset + e.payload.length).toBeLessThanOrEqual(datagram.byteOffset + datagram.length);
  }, 10_000);

  it("the same bound for the two-byte-header form", () => {
    const datagram = Buffer.concat([Buffer.from("90884c7d00000000000000001000ffff", "hex"), Buffer.alloc(1368, 0x02)]);
    const header = RtpHeader.deSerialize(datagram);
    expect(header.extensions.length).toBeLessThanOrEqual(datagram.length);
  }, 10_000);
});

describe("werift per-packet header work, as patched", () => {
  it("reads every bit field of the first two octets of an RTP header", () => {
    // V=2 P=1 X=0 CC=3, M=1 PT=111: every field a different width and offset.
    const datagram = Buffer.concat([Buffer.from("a3ef0001000000020000000300000004000000050000000600000007", "hex"), Buffer.from([0xaa, 0xbb, 0x02])]);
    const header = RtpHeader.deSerialize(datagram);
    expect([header.version, header.padding, header.extension, header.csrcLength, header.marker, header.payloadType]).toEqual([2, true, false, 3, true, 111]);
    expect(header.csrc).toEqual([4, 5, 6]);
  });

  it("takes an RFC 3550 NTP timestamp for SRs and abs-send-time: seconds since 1900 and a binary fraction", () => {
    const before = Date.now();
    const ntp = ntpTime();
    const after = Date.now();
    const ms = Number(ntp >> 32n) * 1000 + (Number(ntp & 0xffffffffn) / 2 ** 32) * 1000 + Date.UTC(1900, 0, 1);
    // performance.timeOrigin + now() and Date.now() differ by the clock drift since start: allow 50 ms.
    expect(ms).toBeGreaterThan(before - 50);
    expect(ms).toBeLessThan(after + 50);
  });
});

describe("werift ICE ports in a range, as patched", () => {
  const quiet = pino({ level: "silent" });
  const legs: MetaLeg[] = [];
  afterEach(async () => {
    await Promise.all(legs.splice(0).map((l) => l.close()));
  });

  // A range of its own, so that no other search has moved its cursor.
  const min = 41000 + Math.floor(Math.random() * 2000) * 4;
  const range: [number, number] = [min, min + 59];
  async function offeredPort(): Promise<number> {
    const leg = new MetaLeg(`c${legs.length}`, { portRange: range, publicIp: "127.0.0.1", bindIp: "127.0.0.1", stunUrls: [] }, quiet);
    legs.push(leg);
    const sdp = await leg.createOffer();
    const port = /a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host/.exec(sdp)?.[1];
    expect(port, sdp).toBeDefined();
    return Number(port);
  }

  it("hands the range out round-robin: a port just released is not taken again at once", async () => {
    const a = await offeredPort();
    const b = await offeredPort();
    const c = await offeredPort();
    expect(b).toBeGreaterThan(a);
    expect(c).toBeGreaterThan(b);
    // Unpatched, the search starts at the range's first port and finds the one just freed.
    await legs[0]!.close();
    const next = await offeredPort();
    expect(next).toBeGreaterThan(c);
    for (const p of [a, b, c, next]) {
      expect(p).toBeGreaterThanOrEqual(range[0]);
      expect(p).toBeLessThanOrEqual(range[1]);
    }
  }, 20_000);

  it("gives calls set up at the same time different ports", async () => {
    const ports = await Promise.all(Array.from({ length: 12 }, () => offeredPort()));
    expect(new Set(ports).size).toBe(12);
  }, 20_000);

  it("hashes the certificate's fingerprint once", async () => {
    await offeredPort();
    const { RTCDtlsTransport } = await import("werift");
    const cert = (RTCDtlsTransport as unknown as { localCertificate: { getFingerprints(): unknown[] } }).localCertificate;
    expect(cert.getFingerprints()).toBe(cert.getFingerprints());
  }, 20_000);
});
