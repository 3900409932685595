import type { ToneDetection } from "../transcode/tone.js";
import { ConsumerClosedError } from "./errors.js";
import { WaAudioSink, WaAudioSource, type OutgoingRtp, type WaConsumerStats } from "./wa-audio.js";
import { WA_OPUS_PAYLOAD_TYPE, WA_TELEPHONE_EVENT_PAYLOAD_TYPE, type SrtpKeyExchange } from "./wa-sdp.js";

export type WaConsumerState = "idle" | "negotiating" | "connected" | "failed" | "closed";

export interface WaConsumerOptions {
  toneHz?: number;
  toneAmplitude?: number;
  /** How much received audio to keep, in seconds. */
  keepSeconds?: number;
  /** Loopback STUN URL; the ice-lite consumer never queries it, it only replaces werift's public default. */
  stunUrl?: string;
}

/**
 * The WhatsApp user's phone behind Meta's edge, for one call. User-initiated calls: it offers
 * (createOffer) and takes the business's answer (applyAnswer, at pre_accept or accept). Business-initiated
 * calls: it answers the business's offer (answerOffer). Its voice starts with startMedia(), when the
 * call is accepted.
 */
export interface WhatsAppConsumer {
  readonly keyExchange: SrtpKeyExchange;
  readonly state: WaConsumerState;
  readonly stats: WaConsumerStats & { state: WaConsumerState };
  createOffer(): Promise<string>;
  applyAnswer(sdp: string): Promise<void>;
  answerOffer(sdp: string): Promise<string>;
  /** The call is connected: the tone starts as soon as the transport can carry it. */
  startMedia(): void;
  /** RFC 4733 on telephone-event/8000 (500 ms by default), resolved when the last end packet is sent. */
  sendDtmf(digit: string, durationMs?: number): Promise<void>;
  detectTone(seconds?: number): ToneDetection;
  receivedPcm(seconds?: number): Int16Array;
  waitForPackets(count: number, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** What both consumers share: the voice, the ears, the state and closing; subclasses bring the transport. */
export abstract class BaseWhatsAppConsumer implements WhatsAppConsumer {
  abstract readonly keyExchange: SrtpKeyExchange;
  protected readonly sink: WaAudioSink;
  protected readonly source: WaAudioSource;
  protected currentState: WaConsumerState = "idle";
  protected mediaWanted = false;
  protected readonly closedSignal: Promise<never>;
  private rejectClosed: (error: Error) => void = () => undefined;

  constructor(options: WaConsumerOptions) {
    this.closedSignal = new Promise<never>((_resolve, reject) => {
      this.rejectClosed = reject;
    });
    // Nobody may be awaiting it when close() runs; that must not surface as an unhandled rejection.
    this.closedSignal.catch(() => undefined);
    this.sink = new WaAudioSink(options.keepSeconds ?? 60);
    this.source = new WaAudioSource(
      options.toneHz ?? 440,
      options.toneAmplitude ?? 0.3,
      { opus: WA_OPUS_PAYLOAD_TYPE, telephoneEvent: WA_TELEPHONE_EVENT_PAYLOAD_TYPE },
      (packet) => this.emit(packet),
    );
  }

  abstract createOffer(): Promise<string>;
  abstract applyAnswer(sdp: string): Promise<void>;
  abstract answerOffer(sdp: string): Promise<string>;
  /** Puts one packet of the consumer's voice on the wire (or drops it while the transport cannot carry it). */
  protected abstract emit(packet: OutgoingRtp): void;
  /** Starts the voice when the call is accepted and the transport is ready. */
  protected abstract startIfReady(): void;
  /** Frees the transport. */
  protected abstract release(): Promise<void>;

  get state(): WaConsumerState {
    return this.currentState;
  }

  get stats(): WaConsumerStats & { state: WaConsumerState } {
    return { ...this.sink.stats(this.source.packetsSent), state: this.currentState };
  }

  startMedia(): void {
    this.mediaWanted = true;
    this.startIfReady();
  }

  sendDtmf(digit: string, durationMs = 500): Promise<void> {
    this.assertOpen();
    return this.source.sendDtmf(digit, durationMs);
  }

  detectTone(seconds = 1): ToneDetection {
    return this.sink.detectTone(seconds);
  }

  receivedPcm(seconds?: number): Int16Array {
    return this.sink.pcm(seconds);
  }

  waitForPackets(count: number, timeoutMs: number): Promise<void> {
    return this.sink.waitForPackets(count, timeoutMs, this.closedSignal);
  }

  async close(): Promise<void> {
    if (this.currentState === "closed") return;
    this.currentState = "closed";
    this.source.stop();
    this.sink.clearWaiters();
    this.rejectClosed(new ConsumerClosedError("consumer closed"));
    await this.release();
  }

  protected assertOpen(): void {
    if (this.currentState === "closed") throw new ConsumerClosedError("consumer closed");
  }
}
