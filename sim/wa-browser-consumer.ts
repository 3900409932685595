import { detectTone, type ToneDetection } from "../transcode/tone.js";
import { PageScript, type Chromium } from "./chromium.js";
import { ConsumerClosedError, SimStateError } from "./errors.js";
import type { WaConsumerStats } from "./wa-audio.js";
import { chromiumAnswerFromWhatsApp, whatsAppAnswerFromChromium, whatsAppOfferFromChromium } from "./wa-browser-sdp.js";
import type { WaConsumerState, WhatsAppConsumer } from "./wa-consumer-base.js";
import { PacketWaiters } from "./packet-waiters.js";

/**
 * The WhatsApp user played by a real browser WebRTC stack: one headless Chromium page per call.
 * - User calls: Chromium offers one sendrecv audio m-line (Opus and telephone-event/8000 only), which
 *   wa-browser-sdp.ts puts in the shape of Meta's offer; the business's answer is mapped back and
 *   applied at pre_accept (or accept), so ICE and DTLS complete while the business's phone rings.
 * - Business calls: Chromium answers the business's offer (`a=setup:active`, so the business is DTLS
 *   server, as Meta answers), shaped the same way for the connect webhook.
 * - Its voice is a WebAudio oscillator at `toneHz`, put on the sender only when the call is accepted
 *   (accept, or pickup): before that Chromium sends no RTP. Key presses go out with RTCDTMFSender,
 *   which uses the only telephone-event negotiated, 126/8000.
 * - What it hears is what Chromium decodes and plays out: recorded as 48 kHz PCM (WebAudio) for
 *   detectTone/receivedPcm. Counters come from getStats(), polled (`pollIntervalMs`), so `stats` and
 *   packet waits lag the wire by up to one poll. Browsers do not expose received RFC 4733 events:
 *   `stats.telephoneEvents` stays empty (use the werift consumer to check the business's DTMF).
 */

export interface BrowserWhatsAppConsumerOptions {
  toneHz?: number;
  toneAmplitude?: number;
  /** How much received audio to keep, in seconds (default 60). */
  keepSeconds?: number;
  /** How often getStats() and the recorded audio are fetched from the page (default 100 ms). */
  pollIntervalMs?: number;
}

/** The sample rate of the page's audio graph, and so of receivedPcm(). */
const SAMPLE_RATE = 48_000;

type Method = "init" | "offer" | "applyAnswer" | "answer" | "speak" | "dtmf" | "poll" | "close";

interface PagePoll {
  connectionState: string;
  packetsReceived: number;
  bytesReceived: number;
  rtcpReceived: number;
  packetsSent: number;
  payloadTypes: number[];
  ssrcs: number[];
  /** Base64 of little-endian 16-bit PCM recorded since the last poll. */
  pcm: string;
  failures: string[];
}

const PAGE_SCRIPT = String.raw`
(() => {
  const s = { pc: null, transceiver: null, voice: null, voiceStream: null, voiceContext: null, failures: [], ears: null };
  const whatsAppCodecs = () => RTCRtpReceiver.getCapabilities("audio").codecs.filter((c) => {
    const mime = c.mimeType.toLowerCase();
    return mime === "audio/opus" || (mime === "audio/telephone-event" && c.clockRate === 8000);
  });
  globalThis.simWhatsApp = {
    init(o) {
      s.ears = simPage.ears({ failures: s.failures, sampleRate: ${SAMPLE_RATE}, record: true });
      // The user's voice: a steady tone, so the business side can decode it as one frequency.
      s.voiceContext = new AudioContext({ sampleRate: ${SAMPLE_RATE} });
      const osc = s.voiceContext.createOscillator();
      osc.frequency.value = o.toneHz;
      const gain = s.voiceContext.createGain();
      gain.gain.value = o.amplitude;
      const dest = s.voiceContext.createMediaStreamDestination();
      osc.connect(gain).connect(dest);
      osc.start();
      s.voiceStream = dest.stream;
      s.voice = dest.stream.getAudioTracks()[0];
      s.pc = simPage.peer(s.ears, s.failures);
      return s.voiceContext.state;
    },
    async offer() {
      s.transceiver = s.pc.addTransceiver("audio", { direction: "sendrecv", streams: [s.voiceStream] });
      s.transceiver.setCodecPreferences(whatsAppCodecs());
      await s.pc.setLocalDescription(await s.pc.createOffer());
      return simPage.localSdp(s.pc);
    },
    async applyAnswer(sdp) {
      await s.pc.setRemoteDescription({ type: "answer", sdp });
    },
    async answer(sdp) {
      await s.pc.setRemoteDescription({ type: "offer", sdp });
      s.transceiver = s.pc.getTransceivers().find((t) => t.receiver.track.kind === "audio");
      if (!s.transceiver) throw new Error("the offer has no audio m-line");
      s.transceiver.direction = "sendrecv";
      s.transceiver.sender.setStreams(s.voiceStream);
      s.transceiver.setCodecPreferences(whatsAppCodecs());
      await s.pc.setLocalDescription(await s.pc.createAnswer());
      return simPage.localSdp(s.pc);
    },
    async speak() {
      if (s.voiceContext.state !== "running") await s.voiceContext.resume();
      await s.transceiver.sender.replaceTrack(s.voice);
    },
    dtmf(o) {
      const sender = s.transceiver && s.transceiver.sender.dtmf;
      if (!sender || !sender.canInsertDTMF) throw new Error("Chromium cannot send DTMF now");
      return new Promise((resolve) => {
        sender.addEventListener("tonechange", (e) => { if (e.tone === "") resolve(true); });
        sender.insertDTMF(o.digit, o.durationMs, 50);
      });
    },
    async poll() {
      const out = { connectionState: s.pc.connectionState, packetsReceived: 0, bytesReceived: 0, rtcpReceived: 0, packetsSent: 0, payloadTypes: [], ssrcs: [], pcm: "", failures: [...s.failures] };
      const reports = new Map();
      (await s.pc.getStats()).forEach((r) => reports.set(r.id, r));
      for (const r of reports.values()) {
        if (r.type === "inbound-rtp" && r.kind === "audio") {
          out.packetsReceived += r.packetsReceived || 0;
          out.bytesReceived += r.bytesReceived || 0;
          if ((r.packetsReceived || 0) > 0) out.ssrcs.push(r.ssrc);
          const codec = reports.get(r.codecId);
          if (codec && (r.packetsReceived || 0) > 0) out.payloadTypes.push(codec.payloadType);
        } else if (r.type === "remote-outbound-rtp" && r.kind === "audio") {
          out.rtcpReceived += r.reportsSent || 0;
        } else if (r.type === "outbound-rtp" && r.kind === "audio") {
          out.packetsSent += r.packetsSent || 0;
        }
      }
      out.pcm = s.ears.drain();
      return out;
    },
    close() {
      s.ears.close();
      if (s.voice) s.voice.stop();
      if (s.voiceContext) s.voiceContext.close();
      if (s.pc) s.pc.close();
    },
  };
})();
`;

export class BrowserWhatsAppConsumer implements WhatsAppConsumer {
  readonly keyExchange = "DTLS" as const;
  private currentState: WaConsumerState = "idle";
  private chromiumMid: string | undefined;
  private mediaWanted = false;
  private speaking = false;
  private latest: PagePoll | undefined;
  private firstPacketAt: number | undefined;
  private lastActivityAt: number | undefined;
  private readonly pcm: Int16Array[] = [];
  private pcmSamples = 0;
  private readonly maxSamples: number;
  private readonly pollIntervalMs: number;
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new PacketWaiters();
  /** Problems seen on the page (playout refused, connection failed, voice not started). */
  readonly failures: string[] = [];

  private constructor(
    private readonly page: PageScript<Method>,
    options: BrowserWhatsAppConsumerOptions,
    private readonly forget: () => void,
  ) {
    this.maxSamples = Math.round((options.keepSeconds ?? 60) * SAMPLE_RATE);
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
  }

  /** A new consumer page on `chromium`, its voice ready and its peer connection fresh. */
  static async open(chromium: Chromium, options: BrowserWhatsAppConsumerOptions = {}): Promise<BrowserWhatsAppConsumer> {
    const page = new PageScript<Method>(await chromium.openPage("whatsapp-consumer", PAGE_SCRIPT), "simWhatsApp");
    let forget: () => void = () => undefined;
    const consumer = new BrowserWhatsAppConsumer(page, options, () => forget());
    forget = chromium.track(consumer);
    try {
      await page.call("init", { toneHz: options.toneHz ?? 440, amplitude: options.toneAmplitude ?? 0.3 });
    } catch (error) {
      await consumer.close();
      throw error;
    }
    consumer.schedulePoll();
    return consumer;
  }

  get state(): WaConsumerState {
    return this.currentState;
  }

  get stats(): WaConsumerStats & { state: WaConsumerState } {
    const p = this.latest;
    return {
      packetsReceived: p?.packetsReceived ?? 0,
      bytesReceived: p?.bytesReceived ?? 0,
      rtcpReceived: p?.rtcpReceived ?? 0,
      firstPacketAt: this.firstPacketAt,
      lastActivityAt: this.lastActivityAt,
      payloadTypes: p?.payloadTypes ?? [],
      ssrcs: p?.ssrcs ?? [],
      decodeErrors: 0,
      unprotectErrors: 0,
      packetsSent: p?.packetsSent ?? 0,
      telephoneEvents: [],
      state: this.currentState,
    };
  }

  createOffer(): Promise<string> {
    return this.page.serialized(async () => {
      if (this.currentState !== "idle") throw new SimStateError("the consumer already negotiated");
      const offer = whatsAppOfferFromChromium((await this.page.call("offer")) as string);
      this.chromiumMid = offer.chromiumMid;
      this.currentState = "negotiating";
      return offer.sdp;
    });
  }

  applyAnswer(sdp: string): Promise<void> {
    return this.page.serialized(async () => {
      if (this.chromiumMid === undefined) throw new SimStateError("no offer of the consumer's is waiting for an answer");
      await this.page.call("applyAnswer", chromiumAnswerFromWhatsApp(sdp, this.chromiumMid));
      this.chromiumMid = undefined;
    });
  }

  answerOffer(sdp: string): Promise<string> {
    return this.page.serialized(async () => {
      if (this.currentState !== "idle") throw new SimStateError("the consumer already negotiated");
      const answer = whatsAppAnswerFromChromium((await this.page.call("answer", sdp)) as string);
      this.currentState = "negotiating";
      return answer;
    });
  }

  startMedia(): void {
    this.mediaWanted = true;
    this.speakIfReady();
  }

  async sendDtmf(digit: string, durationMs = 500): Promise<void> {
    if (!/^[0-9*#A-D]$/i.test(digit)) throw new SimStateError(`"${digit}" is not a DTMF key`);
    if (!this.speaking) throw new SimStateError("the consumer is not sending media");
    // RTCDTMFSender takes 40 to 6000 ms per tone.
    await this.page.call("dtmf", { digit: digit.toUpperCase(), durationMs: Math.max(40, Math.min(6000, durationMs)) });
  }

  detectTone(seconds = 1): ToneDetection {
    return detectTone(this.receivedPcm(seconds), SAMPLE_RATE);
  }

  /** What Chromium played out, 48 kHz mono; the last `seconds` of it, or all that is kept. */
  receivedPcm(seconds?: number): Int16Array {
    const want = seconds === undefined ? this.pcmSamples : Math.min(this.pcmSamples, Math.round(seconds * SAMPLE_RATE));
    const out = new Int16Array(want);
    let at = want;
    for (let i = this.pcm.length - 1; i >= 0 && at > 0; i--) {
      const chunk = this.pcm[i]!;
      const take = Math.min(at, chunk.length);
      out.set(chunk.subarray(chunk.length - take), at - take);
      at -= take;
    }
    return out;
  }

  waitForPackets(count: number, timeoutMs: number): Promise<void> {
    if (this.currentState === "closed") return Promise.reject(new ConsumerClosedError("consumer closed"));
    return this.waiters.waitFor(() => this.latest?.packetsReceived ?? 0, count, timeoutMs, {
      describe: (n, of) => `Chromium received ${n}/${of} audio packets (connection ${this.latest?.connectionState ?? "new"})`,
    });
  }

  async close(): Promise<void> {
    if (this.currentState === "closed") return;
    this.currentState = "closed";
    clearTimeout(this.pollTimer);
    this.waiters.close(new ConsumerClosedError("consumer closed"));
    this.forget();
    await this.page.close();
  }

  private speakIfReady(): void {
    if (!this.mediaWanted || this.speaking || this.currentState !== "connected") return;
    this.speaking = true;
    this.page.call("speak").catch((error: unknown) => {
      if (this.currentState !== "closed") this.failures.push(`voice did not start: ${error instanceof Error ? error.message : String(error)}`);
    });
  }

  private schedulePoll(): void {
    this.pollTimer = setTimeout(() => void this.poll(), this.pollIntervalMs);
  }

  private async poll(): Promise<void> {
    if (this.closed()) return;
    let result: PagePoll;
    try {
      result = (await this.page.call("poll")) as PagePoll;
    } catch (error) {
      if (this.closed()) return;
      this.failures.push(`poll failed: ${error instanceof Error ? error.message : String(error)}`);
      if (this.page.isClosed) {
        this.currentState = "failed";
        return;
      }
      this.schedulePoll();
      return;
    }
    if (this.closed()) return;
    this.take(result);
    this.schedulePoll();
  }

  private take(result: PagePoll): void {
    const now = Date.now();
    const before = this.latest;
    if (result.packetsReceived > (before?.packetsReceived ?? 0) || result.rtcpReceived > (before?.rtcpReceived ?? 0)) this.lastActivityAt = now;
    if (result.packetsReceived > 0) this.firstPacketAt ??= now;
    this.latest = result;
    for (const failure of result.failures.slice(before?.failures.length ?? 0)) this.failures.push(failure);
    if (result.pcm.length > 0) this.keepPcm(Buffer.from(result.pcm, "base64"));
    if (result.connectionState === "connected" && this.currentState === "negotiating") {
      this.currentState = "connected";
      this.speakIfReady();
    } else if (result.connectionState === "failed" && this.currentState !== "closed") {
      this.currentState = "failed";
    }
    this.waiters.update(result.packetsReceived);
  }

  /** A method, so TypeScript does not narrow the state across the awaits around it. */
  private closed(): boolean {
    return this.currentState === "closed";
  }

  private keepPcm(bytes: Buffer): void {
    const samples = new Int16Array(bytes.length >> 1);
    for (let i = 0; i < samples.length; i++) samples[i] = bytes.readInt16LE(i * 2);
    this.pcm.push(samples);
    this.pcmSamples += samples.length;
    while (this.pcm.length > 1 && this.pcmSamples - this.pcm[0]!.length >= this.maxSamples) this.pcmSamples -= this.pcm.shift()!.length;
  }
}
