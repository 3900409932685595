import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  MediaStream,
  MediaStreamTrack,
  ProtectionProfileAes128CmHmacSha1_80,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  SrtcpSession,
  SrtpSession,
  type RTCRtpTransceiver,
} from "werift";
import { OPUS_SAMPLE_RATE, OpusPcmRecorder, OpusToneEncoder } from "../../sim/consumer-audio.js";
import { MetaSimulator, type WhatsAppOptions } from "../../sim/index.js";
import { loopbackIceConfig } from "../../sim/loopback-ice.js";
import { detectTone, type ToneDetection } from "../../transcode/tone.js";

/** One item of a WhatsApp webhook: a calls[], statuses[] or messages[] element with the value around it. */
export interface WaItem {
  field: string;
  kind: "calls" | "statuses" | "messages";
  item: Record<string, unknown>;
  value: Record<string, unknown>;
  entryId: string;
  post: number;
}

export interface ReceivedPost {
  rawBody: string;
  headers: IncomingHttpHeaders;
  signatureValid: boolean;
  body: unknown;
}

/** The business's webhook endpoint: checks X-Hub-Signature-256 over the raw bytes, answers 200, keeps everything. */
export class WaWebhookReceiver {
  readonly posts: ReceivedPost[] = [];
  private readonly waiters = new Set<() => void>();
  /** Called for every item of a validly signed post, in order (the business reacting to webhooks). */
  onItem: ((item: WaItem) => void) | undefined;

  private constructor(
    private readonly server: Server,
    private readonly appSecret: string,
  ) {}

  static async start(appSecret: string): Promise<WaWebhookReceiver> {
    const server = createServer();
    const receiver = new WaWebhookReceiver(server, appSecret);
    server.on("request", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        const valid = receiver.verify(raw, req.headers["x-hub-signature-256"]);
        const post: ReceivedPost = { rawBody: raw.toString("utf8"), headers: req.headers, signatureValid: valid, body: valid ? (JSON.parse(raw.toString("utf8")) as unknown) : undefined };
        receiver.posts.push(post);
        res.writeHead(valid ? 200 : 403).end();
        if (valid) for (const item of itemsOf(post.body, receiver.posts.length - 1)) receiver.onItem?.(item);
        for (const w of [...receiver.waiters]) w();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/webhooks/meta`;
  }

  items(): WaItem[] {
    return this.posts.flatMap((p, i) => (p.signatureValid ? itemsOf(p.body, i) : []));
  }

  async waitFor(predicate: (item: WaItem) => boolean, timeoutMs = 5000): Promise<WaItem> {
    const found = (): WaItem | undefined => this.items().find(predicate);
    const existing = found();
    if (existing) return existing;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`webhook item not received within ${timeoutMs} ms; got ${JSON.stringify(this.items().map((i) => i.item))}`));
      }, timeoutMs);
      const check = (): void => {
        const item = found();
        if (!item) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(item);
      };
      this.waiters.add(check);
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private verify(raw: Buffer, header: string | string[] | undefined): boolean {
    if (typeof header !== "string" || !header.startsWith("sha256=")) return false;
    const expected = Buffer.from(createHmac("sha256", this.appSecret).update(raw).digest("hex"));
    const got = Buffer.from(header.slice("sha256=".length));
    return got.length === expected.length && timingSafeEqual(got, expected);
  }
}

function itemsOf(body: unknown, post: number): WaItem[] {
  const out: WaItem[] = [];
  const payload = body as { entry?: Array<{ id: string; changes?: Array<{ field: string; value: Record<string, unknown> }> }> };
  for (const entry of payload.entry ?? []) {
    for (const change of entry.changes ?? []) {
      for (const kind of ["calls", "statuses", "messages"] as const) {
        const list = change.value[kind];
        if (!Array.isArray(list)) continue;
        for (const item of list as Record<string, unknown>[]) out.push({ field: change.field, kind, item, value: change.value, entryId: entry.id, post });
      }
    }
  }
  return out;
}

export async function graphPost(url: string, body: unknown, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, connection: "close" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function graphGet(url: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, connection: "close" } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** An RFC 4733 end packet seen by the business. */
export interface BusinessDtmf {
  event: number;
  payloadType: number;
}

/**
 * The business's media leg as a bare werift peer: full ICE (controlling against the ice-lite consumer),
 * Opus 111 and telephone-event 126/8000, a tone of its own and what it hears from the consumer.
 */
export class WaTestBusiness {
  readonly pc: RTCPeerConnection;
  private transceiver: RTCRtpTransceiver | undefined;
  private readonly recorder = new OpusPcmRecorder(30);
  private timers: NodeJS.Timeout[] = [];
  private seq = 1;
  private ts = 0;
  packetsReceived = 0;
  readonly dtmf: BusinessDtmf[] = [];
  private readonly dtmfSeen = new Set<number>();

  constructor(stunUrl: string) {
    this.pc = new RTCPeerConnection({
      ...loopbackIceConfig(stunUrl),
      bundlePolicy: "max-bundle",
      codecs: {
        audio: [
          new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2, payloadType: 111, parameters: "minptime=10;useinbandfec=1" }),
          new RTCRtpCodecParameters({ mimeType: "audio/telephone-event", clockRate: 8000, payloadType: 126, parameters: "0-15" }),
        ],
      },
    });
    this.pc.ontrack = (event) => {
      event.track.onReceiveRtp.subscribe((rtp) => {
        this.packetsReceived++;
        if (rtp.header.payloadType === 111) this.recorder.push(rtp.payload);
        else if (rtp.payload.length >= 4 && (rtp.payload[1]! & 0x80) !== 0 && !this.dtmfSeen.has(rtp.header.timestamp)) {
          this.dtmfSeen.add(rtp.header.timestamp);
          this.dtmf.push({ event: rtp.payload[0]!, payloadType: rtp.header.payloadType });
        }
      });
    };
  }

  /** Answers WhatsApp's offer; the answer carries every gathered candidate (signalling is non-trickle). */
  async answer(offer: string): Promise<string> {
    await this.pc.setRemoteDescription({ type: "offer", sdp: offer });
    this.transceiver = this.pc.getTransceivers()[0];
    this.transceiver?.setDirection("sendrecv");
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    return this.pc.localDescription?.sdp ?? "";
  }

  async offer(): Promise<string> {
    const track = new MediaStreamTrack({ kind: "audio" });
    this.transceiver = this.pc.addTransceiver(track, { direction: "sendrecv", streams: [new MediaStream({ id: "biz", tracks: [track] })] });
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.pc.localDescription?.sdp ?? "";
  }

  async applyAnswer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  speak(hz: number): void {
    const encoder = new OpusToneEncoder(hz, 0.3);
    this.timers.push(
      setInterval(() => {
        const { payload, timestampOffset } = encoder.nextFrame();
        this.ts = timestampOffset;
        this.send(111, timestampOffset, payload);
      }, 20),
    );
  }

  /** One key press on 126/8000: a few event packets then three end packets. */
  pressKey(code: number): void {
    const start = this.ts;
    for (let i = 1; i <= 5; i++) {
      const payload = Buffer.from([code, 10, 0, 0]);
      payload.writeUInt16BE(i * 160, 2);
      this.send(126, start, payload);
    }
    for (let i = 0; i < 3; i++) {
      const payload = Buffer.from([code, 0x80 | 10, 0, 0]);
      payload.writeUInt16BE(800, 2);
      this.send(126, start, payload);
    }
  }

  heard(): ToneDetection {
    return detectTone(this.recorder.pcm(1), OPUS_SAMPLE_RATE);
  }

  stopSpeaking(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  async close(): Promise<void> {
    this.stopSpeaking();
    await this.pc.close();
  }

  private send(payloadType: number, timestamp: number, payload: Buffer): void {
    const transceiver = this.transceiver;
    if (!transceiver) return;
    const sender = transceiver.sender;
    const negotiated = sender.codec;
    const codec = transceiver.codecs.find((c) => c.payloadType === payloadType);
    if (codec) sender.codec = codec;
    try {
      void sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType, sequenceNumber: this.seq++ & 0xffff, timestamp }), payload)).catch(() => undefined);
    } finally {
      sender.codec = negotiated;
    }
  }
}

/** The business side of an SDES call: one UDP socket, AES_CM_128_HMAC_SHA1_80 keys, sends first. */
export class SdesTestBusiness {
  private socket: Socket | undefined;
  private readonly keySalt = randomBytes(30);
  private srtp: SrtpSession | undefined;
  private srtcp: SrtcpSession | undefined;
  private target: { address: string; port: number } | undefined;
  private readonly recorder = new OpusPcmRecorder(30);
  private timer: NodeJS.Timeout | undefined;
  packetsReceived = 0;
  authFailures = 0;

  async bind(): Promise<number> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    socket.on("message", (msg) => {
      if (!this.srtp || !this.srtcp) return;
      try {
        if (msg[1]! >= 192 && msg[1]! <= 223) this.srtcp.decrypt(msg);
        else {
          const rtp = RtpPacket.deSerialize(this.srtp.decrypt(msg));
          this.packetsReceived++;
          if (rtp.header.payloadType === 111) this.recorder.push(rtp.payload);
        }
      } catch {
        this.authFailures++;
      }
    });
    this.socket = socket;
    return socket.address().port;
  }

  /** The SDES SDP (offer or answer) for our socket and key, at `mid`. */
  sdp(port: number, mid: string, tag = 1): string {
    return [
      "v=0",
      "o=- 1 2 IN IP4 127.0.0.1",
      "s=-",
      "t=0 0",
      "m=audio " + port + " RTP/SAVP 111 126",
      "c=IN IP4 127.0.0.1",
      `a=mid:${mid}`,
      "a=sendrecv",
      "a=rtcp-mux",
      `a=crypto:${tag} AES_CM_128_HMAC_SHA1_80 inline:${this.keySalt.toString("base64")}`,
      "a=rtpmap:111 opus/48000/2",
      "a=fmtp:111 minptime=10;useinbandfec=1",
      "a=rtpmap:126 telephone-event/8000",
      "",
    ].join("\r\n");
  }

  /** Takes the peer's key and address from its SDP. */
  usePeer(sdp: string): void {
    const crypto = /a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)/.exec(sdp);
    const port = /m=audio (\d+) /.exec(sdp);
    if (!crypto?.[1] || !port?.[1]) throw new Error("peer SDP has no SDES key or port");
    const remote = Buffer.from(crypto[1], "base64");
    const keys = { localMasterKey: this.keySalt.subarray(0, 16), localMasterSalt: this.keySalt.subarray(16), remoteMasterKey: remote.subarray(0, 16), remoteMasterSalt: remote.subarray(16) };
    this.srtp = new SrtpSession({ keys, profile: ProtectionProfileAes128CmHmacSha1_80 });
    this.srtcp = new SrtcpSession({ keys, profile: ProtectionProfileAes128CmHmacSha1_80 });
    this.target = { address: "127.0.0.1", port: Number(port[1]) };
  }

  speak(hz: number): void {
    const encoder = new OpusToneEncoder(hz, 0.3);
    let seq = 1;
    this.timer = setInterval(() => {
      const { payload, timestampOffset } = encoder.nextFrame();
      if (!this.srtp || !this.target || !this.socket) return;
      const header = new RtpHeader({ payloadType: 111, sequenceNumber: seq++ & 0xffff, timestamp: timestampOffset, ssrc: 0x1234abcd });
      this.socket.send(this.srtp.encrypt(payload, header), this.target.port, this.target.address);
    }, 20);
  }

  heard(): ToneDetection {
    return detectTone(this.recorder.pcm(1), OPUS_SAMPLE_RATE);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A webhook receiver and a simulator serving `whatsapp` (beside a Page nobody calls), signed with `appSecret`. */
export async function startWhatsAppSim(appSecret: string, token: string, whatsapp: WhatsAppOptions): Promise<{ receiver: WaWebhookReceiver; sim: MetaSimulator }> {
  const receiver = await WaWebhookReceiver.start(appSecret);
  try {
    const sim = await MetaSimulator.start({ appSecret, pageId: "1234567890", pageAccessToken: token, webhookUrl: receiver.url, whatsapp });
    return { receiver, sim };
  } catch (error) {
    await receiver.close();
    throw error;
  }
}
