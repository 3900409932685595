import { Chromium, errorText, loopbackOnly, PageScript, type ChromiumOptions } from "./chromium.js";
import type { ConsumerPeer } from "./consumer-peer.js";
import type { VideoSendOptions } from "./consumer-video.js";
import { ConsumerNegotiationError, SimStateError, SimTimeoutError } from "./errors.js";
import { inferBusinessAnswer } from "./sdp-meta-style.js";
import type { SimVideoCodec } from "./video-codecs.js";
import { BrowserWhatsAppConsumer, type BrowserWhatsAppConsumerOptions } from "./wa-browser-consumer.js";

export { CHROMIUM_ARGS, DEFAULT_CHROMIUM_PATH, loopbackOnly } from "./chromium.js";

/**
 * A Messenger consumer played by a real browser WebRTC stack: one headless Chromium page per call,
 * driven with playwright-core, with Chromium's fake microphone and camera as the consumer's media.
 *
 * Meta's side of the signalling stays the simulator's; only the peer connection is Chromium's:
 * - accept: Chromium answers the business offer (full ICE, so it is the controlled agent) with its
 *   microphone on the business's audio m-line, and `a=setup:passive` as Meta's edge answers (the
 *   business stays DTLS client);
 * - Meta's split re-offer: Chromium turns that m-line recvonly and adds a sendonly one for its
 *   microphone (the camera too when it is already on), `createOffer`;
 * - camera on: a sendonly video transceiver with the fake camera, the codec forced with
 *   `setCodecPreferences` (VP8, VP9 profile 0, H.264 constrained baseline packetization-mode 1, AV1),
 *   `createOffer`; camera off: that transceiver goes inactive;
 * - the business's answers to these re-offers never reach Meta, so each is inferred from the
 *   business's latest offer (inferBusinessAnswer: its ICE, fingerprint, DTLS role, mirrored
 *   directions) and applied to Chromium at once;
 * - a business media_update offer is answered by Chromium.
 * Every SDP given to the business keeps only Chromium's UDP host candidates on 127.0.0.1.
 */

/** The Messenger consumer page; served by a route inside the browser, never fetched. */
const PAGE_NAME = "messenger-consumer";

/**
 * The page side: one RTCPeerConnection and primitive steps Node sequences. Plain JavaScript (the page
 * has no TypeScript); every method returns JSON-serializable values.
 */
const PAGE_SCRIPT = String.raw`
(() => {
  const s = { pc: null, mic: null, micStream: null, split: false, camera: null, cameraStream: null, cameraTransceiver: null, failures: [], ears: null };
  s.ears = simPage.ears({ failures: s.failures });
  const localSdp = () => simPage.localSdp(s.pc);
  const codecMatches = (c, want) => {
    const mime = c.mimeType.toLowerCase();
    const fmtp = (c.sdpFmtpLine || "").toLowerCase();
    if (want === "H264") return mime === "video/h264" && fmtp.includes("packetization-mode=1") && fmtp.includes("profile-level-id=42e01f");
    if (want === "VP9") return mime === "video/vp9" && (fmtp === "" || fmtp.includes("profile-id=0"));
    return mime === "video/" + want.toLowerCase();
  };
  const camera = async (o) => {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { width: { exact: o.width }, height: { exact: o.height }, frameRate: { ideal: o.fps } },
    });
    return stream;
  };
  const preferCodec = (transceiver, want) => {
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs.filter((c) => codecMatches(c, want));
    if (codecs.length === 0) throw new Error("Chromium cannot send " + want);
    transceiver.setCodecPreferences(codecs.slice(0, 1));
    return codecs[0].mimeType + (codecs[0].sdpFmtpLine ? " " + codecs[0].sdpFmtpLine : "");
  };
  globalThis.simConsumer = {
    async init() {
      s.micStream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        video: false,
      });
      s.mic = s.micStream.getAudioTracks()[0];
      s.pc = simPage.peer(s.ears, s.failures);
      return { mic: s.mic.label };
    },
    videoCodecs() {
      return RTCRtpSender.getCapabilities("video").codecs.map((c) => c.mimeType + (c.sdpFmtpLine ? " " + c.sdpFmtpLine : ""));
    },
    async answerFirstOffer(sdp) {
      await s.pc.setRemoteDescription({ type: "offer", sdp });
      const audio = s.pc.getTransceivers().find((t) => t.receiver.track.kind === "audio");
      if (!audio) throw new Error("the offer has no audio m-line");
      audio.direction = "sendrecv";
      await audio.sender.replaceTrack(s.mic);
      audio.sender.setStreams(s.micStream);
      const answer = await s.pc.createAnswer();
      return answer.sdp;
    },
    async answerOffer(sdp) {
      await s.pc.setRemoteDescription({ type: "offer", sdp });
      const answer = await s.pc.createAnswer();
      await s.pc.setLocalDescription(answer);
      return localSdp();
    },
    async setLocalAnswer(sdp) {
      await s.pc.setLocalDescription({ type: "answer", sdp });
      return localSdp();
    },
    async setRemoteAnswer(sdp) {
      await s.pc.setRemoteDescription({ type: "answer", sdp });
    },
    async offer() {
      const offer = await s.pc.createOffer();
      await s.pc.setLocalDescription(offer);
      return localSdp();
    },
    async split() {
      const first = s.pc.getTransceivers().find((t) => t.receiver.track.kind === "audio");
      first.direction = "recvonly";
      await first.sender.replaceTrack(null);
      s.pc.addTransceiver(s.mic, { direction: "sendonly", streams: [s.micStream] });
      s.split = true;
    },
    async cameraOn(o) {
      const stream = await camera(o);
      const track = stream.getVideoTracks()[0];
      if ("contentHint" in track) track.contentHint = "motion";
      if (s.cameraTransceiver) {
        await s.cameraTransceiver.sender.replaceTrack(track);
        s.cameraTransceiver.sender.setStreams(stream);
        s.cameraTransceiver.direction = "sendonly";
      } else {
        s.cameraTransceiver = s.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      }
      if (s.camera) s.camera.stop();
      s.camera = track;
      s.cameraStream = stream;
      const codec = preferCodec(s.cameraTransceiver, o.codec);
      const params = s.cameraTransceiver.sender.getParameters();
      if (params.encodings && params.encodings[0]) {
        params.encodings[0].maxFramerate = o.fps;
        params.encodings[0].maxBitrate = o.maxBitrate;
        await s.cameraTransceiver.sender.setParameters(params);
      }
      return { codec, settings: track.getSettings() };
    },
    async cameraOff() {
      if (!s.cameraTransceiver) return false;
      s.cameraTransceiver.direction = "inactive";
      await s.cameraTransceiver.sender.replaceTrack(null);
      if (s.camera) s.camera.stop();
      s.camera = null;
      return true;
    },
    async stats() {
      const reports = new Map();
      (await s.pc.getStats()).forEach((r) => reports.set(r.id, r));
      const out = {
        connectionState: s.pc.connectionState,
        iceConnectionState: s.pc.iceConnectionState,
        signalingState: s.pc.signalingState,
        audioIn: { packetsReceived: 0, bytesReceived: 0, packetsLost: 0, totalAudioEnergy: 0 },
        audioOut: { packetsSent: 0, bytesSent: 0 },
        videoOut: { packetsSent: 0, bytesSent: 0, framesEncoded: 0, keyFramesEncoded: 0, framesSent: 0, pliCount: 0, firCount: 0, nackCount: 0, codec: undefined, encoderImplementation: undefined, frameWidth: undefined, frameHeight: undefined },
        selectedPair: undefined,
        failures: [...s.failures],
      };
      const codecOf = (r) => {
        const c = reports.get(r.codecId);
        return c ? c.mimeType + (c.sdpFmtpLine ? " " + c.sdpFmtpLine : "") : undefined;
      };
      for (const r of reports.values()) {
        if (r.type === "inbound-rtp" && r.kind === "audio") {
          out.audioIn.packetsReceived += r.packetsReceived || 0;
          out.audioIn.bytesReceived += r.bytesReceived || 0;
          out.audioIn.packetsLost += r.packetsLost || 0;
          out.audioIn.totalAudioEnergy += r.totalAudioEnergy || 0;
        } else if (r.type === "outbound-rtp" && r.kind === "audio") {
          out.audioOut.packetsSent += r.packetsSent || 0;
          out.audioOut.bytesSent += r.bytesSent || 0;
        } else if (r.type === "outbound-rtp" && r.kind === "video") {
          const v = out.videoOut;
          for (const k of ["packetsSent", "bytesSent", "framesEncoded", "keyFramesEncoded", "framesSent", "pliCount", "firCount", "nackCount"]) v[k] += r[k] || 0;
          if ((r.packetsSent || 0) > 0 || v.codec === undefined) {
            v.codec = codecOf(r) ?? v.codec;
            v.encoderImplementation = r.encoderImplementation ?? v.encoderImplementation;
            v.frameWidth = r.frameWidth ?? v.frameWidth;
            v.frameHeight = r.frameHeight ?? v.frameHeight;
          }
        } else if (r.type === "transport" && r.selectedCandidatePairId) {
          const pair = reports.get(r.selectedCandidatePairId);
          const local = pair && reports.get(pair.localCandidateId);
          const remote = pair && reports.get(pair.remoteCandidateId);
          if (local && remote) {
            out.selectedPair = {
              local: (local.address ?? local.ip) + ":" + local.port + "/" + local.protocol + " " + local.candidateType,
              remote: (remote.address ?? remote.ip) + ":" + remote.port + "/" + remote.protocol + " " + remote.candidateType,
              availableOutgoingBitrate: pair.availableOutgoingBitrate,
            };
          }
        }
      }
      return out;
    },
    hear() {
      return s.ears.hear();
    },
    close() {
      s.ears.close();
      for (const t of [s.mic, s.camera]) if (t) t.stop();
      if (s.pc) s.pc.close();
    },
  };
})();
`;

export interface BrowserRtpStats {
  connectionState: string;
  iceConnectionState: string;
  signalingState: string;
  /** inbound-rtp audio: what the business sent the consumer. */
  audioIn: { packetsReceived: number; bytesReceived: number; packetsLost: number; totalAudioEnergy: number };
  /** outbound-rtp audio: the fake microphone toward the business. */
  audioOut: { packetsSent: number; bytesSent: number };
  /** outbound-rtp video: the fake camera toward the business. */
  videoOut: {
    packetsSent: number;
    bytesSent: number;
    framesEncoded: number;
    keyFramesEncoded: number;
    framesSent: number;
    pliCount: number;
    firCount: number;
    nackCount: number;
    /** e.g. `video/H264 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f`. */
    codec: string | undefined;
    encoderImplementation: string | undefined;
    frameWidth: number | undefined;
    frameHeight: number | undefined;
  };
  /** The ICE pair in use, `address:port/protocol type` on each side. */
  /** availableOutgoingBitrate: Chromium's send-side bandwidth estimate, fed by the business's feedback. */
  selectedPair: { local: string; remote: string; availableOutgoingBitrate: number | undefined } | undefined;
  /** Connection failures the page saw. */
  failures: string[];
}

export interface CameraInfo {
  /** The codec forced with setCodecPreferences, as Chromium names it. */
  codec: string;
  /** The fake camera's track settings (width, height, frameRate...). */
  settings: Record<string, unknown>;
}

export type ConsumerBrowserOptions = ChromiumOptions;

export interface BrowserConsumerOptions {
  /** Cap on the camera's bitrate, bits/s (default 1.5 Mbit/s). */
  maxVideoBitrate?: number;
}

type PageMethod =
  | "init"
  | "videoCodecs"
  | "answerFirstOffer"
  | "answerOffer"
  | "setLocalAnswer"
  | "setRemoteAnswer"
  | "offer"
  | "split"
  | "cameraOn"
  | "cameraOff"
  | "stats"
  | "hear"
  | "close";

/**
 * One headless Chromium (its own fresh profile directory), hosting one consumer page per call: Messenger
 * consumers (`newConsumer`) and WhatsApp users (`newWhatsAppConsumer`).
 * Throws when Chromium or playwright-core is missing: tests that need a real browser fail, never skip.
 */
export class ConsumerBrowser {
  private constructor(private readonly chromium: Chromium) {}

  static async launch(options: ConsumerBrowserOptions = {}): Promise<ConsumerBrowser> {
    return new ConsumerBrowser(await Chromium.launch(options));
  }

  /** Chromium's version, e.g. `156.0.8078.79`. */
  get version(): string {
    return this.chromium.version;
  }

  /** A new page with the fake microphone open and a fresh RTCPeerConnection: pass it to `placeCall({ consumer })`. */
  async newConsumer(options: BrowserConsumerOptions = {}): Promise<BrowserConsumer> {
    const page = await this.chromium.openPage(PAGE_NAME, PAGE_SCRIPT);
    const script = new PageScript<PageMethod>(page, "simConsumer");
    let forget: () => void = () => undefined;
    const consumer = new BrowserConsumer(script, options, () => forget());
    forget = this.chromium.track(consumer);
    try {
      await consumer.init();
    } catch (error) {
      await consumer.close();
      throw error;
    }
    return consumer;
  }

  /** A WhatsApp user on a new page (see wa-browser-consumer.ts); the WhatsApp simulator opens these itself. */
  newWhatsAppConsumer(options: BrowserWhatsAppConsumerOptions = {}): Promise<BrowserWhatsAppConsumer> {
    return BrowserWhatsAppConsumer.open(this.chromium, options);
  }

  /** Closes every consumer page, the browser, and removes its profile directory. */
  close(): Promise<void> {
    return this.chromium.close();
  }
}

/** The consumer on one Chromium page; see the module comment for how it plays Meta's consumer. */
export class BrowserConsumer implements ConsumerPeer {
  /** The business's latest offer, for inferring its answers. */
  private businessSdp: string | undefined;
  /** The DTLS role Chromium took in its first answer (`passive` unless Chromium refused it). */
  private ownSetup: "active" | "passive" | undefined;
  private split = false;
  private pendingCamera: VideoSendOptions | undefined;
  private cameraOn = false;
  private lastCamera: CameraInfo | undefined;
  private readonly maxVideoBitrate: number;

  /** Use ConsumerBrowser.newConsumer(). */
  constructor(
    private readonly page: PageScript<PageMethod>,
    options: BrowserConsumerOptions,
    private readonly onClosed: () => void,
  ) {
    this.maxVideoBitrate = options.maxVideoBitrate ?? 1_500_000;
  }

  /** @internal Opens the fake microphone and the peer connection. */
  async init(): Promise<void> {
    await this.call("init");
  }

  /** The fake camera as last turned on (codec and track settings), if it was. */
  get camera(): CameraInfo | undefined {
    return this.lastCamera;
  }

  /** Video codecs Chromium can send (RTCRtpSender.getCapabilities). */
  async videoCodecs(): Promise<string[]> {
    return (await this.call("videoCodecs")) as string[];
  }

  /** getStats(), summed per direction and kind. */
  async stats(): Promise<BrowserRtpStats> {
    return (await this.call("stats")) as BrowserRtpStats;
  }

  /** The dominant frequency (Hz) of the business's audio as Chromium plays it out, with its spectral level (dBFS). */
  async hear(): Promise<{ hz: number; dbfs: number }> {
    return (await this.call("hear")) as { hz: number; dbfs: number };
  }

  answerOffer(offerSdp: string): Promise<string> {
    return this.serialized(async () => {
      this.businessSdp = offerSdp;
      const answer = (await this.call("answerFirstOffer", offerSdp)) as string;
      // Meta's edge answers a=setup:passive and leaves the business DTLS client; ask Chromium to do the same.
      let local: string;
      try {
        local = (await this.call("setLocalAnswer", answer.replace(/^a=setup:active$/gm, "a=setup:passive"))) as string;
      } catch {
        local = (await this.call("setLocalAnswer", answer)) as string;
      }
      this.ownSetup = /^a=setup:passive$/m.test(local) ? "passive" : "active";
      return loopbackOnly(local);
    });
  }

  createSplitReoffer(): Promise<string> {
    return this.serialized(async () => {
      if (this.split) throw new SimStateError("the consumer already has its own send transceiver");
      if (this.pendingCamera) await this.turnCameraOn(this.pendingCamera);
      this.pendingCamera = undefined;
      await this.call("split");
      this.split = true;
      return this.offerAndInferAnswer();
    });
  }

  createReoffer(): Promise<string> {
    return this.serialized(() => this.offerAndInferAnswer());
  }

  startVideo(options: VideoSendOptions): Promise<string | undefined> {
    return this.serialized(async () => {
      if (!this.split) {
        this.pendingCamera = options;
        return undefined;
      }
      await this.turnCameraOn(options);
      return this.offerAndInferAnswer();
    });
  }

  stopVideo(): Promise<string | undefined> {
    return this.serialized(async () => {
      if (this.pendingCamera) {
        this.pendingCamera = undefined;
        return undefined;
      }
      if (!this.cameraOn) throw new SimStateError("the camera is not on");
      await this.call("cameraOff");
      this.cameraOn = false;
      return this.offerAndInferAnswer();
    });
  }

  answerBusinessReoffer(offerSdp: string): Promise<string> {
    return this.serialized(async () => {
      this.businessSdp = offerSdp;
      return loopbackOnly((await this.call("answerOffer", offerSdp)) as string);
    });
  }

  async waitForPackets(count: number, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const stats = await this.stats();
      if (stats.audioIn.packetsReceived >= count) return;
      if (Date.now() > until) {
        throw new SimTimeoutError(
          `Chromium received ${stats.audioIn.packetsReceived}/${count} audio packets in ${timeoutMs} ms (connection ${stats.connectionState})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async close(): Promise<void> {
    if (this.page.isClosed) return;
    this.onClosed();
    await this.page.close();
  }

  private async turnCameraOn(options: VideoSendOptions): Promise<void> {
    const codec = chromiumCodec(options.codec);
    const info = (await this.call("cameraOn", {
      codec,
      width: options.width ?? 640,
      height: options.height ?? 360,
      fps: options.fps ?? 30,
      maxBitrate: this.maxVideoBitrate,
    })) as CameraInfo;
    this.cameraOn = true;
    this.lastCamera = info;
  }

  /** Chromium offers; the business's answer, which Meta never receives, is inferred and applied at once. */
  private async offerAndInferAnswer(): Promise<string> {
    if (!this.businessSdp) throw new SimStateError("no business offer to infer an answer from");
    const offer = (await this.call("offer")) as string;
    const forBusiness = loopbackOnly(offer);
    let answer = inferBusinessAnswer(this.businessSdp, forBusiness);
    // inferBusinessAnswer leaves the business DTLS client (`active`), as with Meta's passive edge.
    if (this.ownSetup === "active") answer = answer.replace(/^a=setup:active$/gm, "a=setup:passive");
    // No transport-wide-cc extension is ever negotiated with the business; keep Chromium on REMB.
    answer = answer
      .split("\r\n")
      .filter((line) => !/^a=rtcp-fb:\d+ transport-cc$/.test(line))
      .join("\r\n");
    try {
      await this.call("setRemoteAnswer", answer);
    } catch (error) {
      throw new ConsumerNegotiationError(`Chromium refused the inferred business answer: ${errorText(error)}`, { cause: error });
    }
    return forBusiness;
  }

  private call(method: PageMethod, arg?: unknown): Promise<unknown> {
    return this.page.call(method, arg);
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    return this.page.serialized(work);
  }
}

function chromiumCodec(codec: SimVideoCodec): string {
  if (codec === "H265") throw new SimStateError("the browser consumer sends VP8, VP9, H264 or AV1");
  return codec;
}
