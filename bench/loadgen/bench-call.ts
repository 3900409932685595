import { opusIsQuiet, pcmuIsQuiet, type FrameLoop } from "../audio/frames.js";
import type { Histogram } from "../stats/histogram.js";
import { ConsumerPeer, type SrtpProfileName } from "./consumer-peer.js";
import type { MediaClock } from "./media-clock.js";
import { PbxPhone } from "./pbx-phone.js";
import { StreamReceiver } from "./stream-receiver.js";
import { StreamSender } from "./stream-sender.js";

/** What every call of one load-generator process shares. */
export interface CallEnvironment {
  clock: MediaClock;
  opus: FrameLoop;
  pcmu: FrameLoop;
  srtpProfile: SrtpProfileName;
  /** The open measurement window, if any: where latencies go. */
  window: () => { sinkFor(call: BenchCall, dir: "toPbx" | "toMeta"): Histogram | undefined } | undefined;
}

/** performance.now() of the signalling milestones the setup figures are made of. */
export interface CallTimes {
  webhookSentAt?: number;
  inviteArrivedAt?: number;
  okSentAt?: number;
  acceptArrivedAt?: number;
  mediaUpAt?: number;
}

export type BenchCallState = "placing" | "up" | "ending" | "ended" | "failed";

/**
 * One call as the load generator plays it: the consumer (WebRTC, Opus) and the PBX phone (RTP,
 * PCMU), each sending the talk pattern and mapping what the other one sent through the system
 * under test. "toPbx" is consumer → phone, "toMeta" phone → consumer.
 */
export class BenchCall {
  readonly times: CallTimes = {};
  readonly startedAt = performance.now();
  state: BenchCallState = "placing";
  failure: string | undefined;
  consumer: ConsumerPeer | undefined;
  phone: PbxPhone | undefined;
  readonly toPbxSender: StreamSender;
  readonly toMetaSender: StreamSender;
  readonly toPbx: StreamReceiver;
  readonly toMeta: StreamReceiver;
  private mediaUpWaiters: (() => void)[] = [];
  private endWaiters: (() => void)[] = [];
  private consumerDone = false;
  private consumerConnected = false;
  private phoneDone = false;

  constructor(
    readonly id: string,
    readonly psid: string,
    private readonly env: CallEnvironment,
  ) {
    this.toPbxSender = new StreamSender(env.opus, (seq, ts, payload, marker) => void this.consumer?.send(seq, ts, payload, marker));
    this.toMetaSender = new StreamSender(env.pcmu, (seq, ts, payload, marker) => this.phone?.send(seq, ts, payload, marker));
    // A window measures the calls that were up when it opened: calls set up during it (set-up
    // under load) are the load, not what is measured.
    this.toPbx = new StreamReceiver(this.toPbxSender, env.pcmu.tsStep, pcmuIsQuiet, () => env.window()?.sinkFor(this, "toPbx"));
    this.toMeta = new StreamReceiver(this.toMetaSender, env.opus.tsStep, opusIsQuiet, () => env.window()?.sinkFor(this, "toMeta"));
  }

  /** The consumer's peer; its voice starts once DTLS is up. */
  createConsumer(dtlsRole: "server" | "client"): ConsumerPeer {
    const consumer = new ConsumerPeer({
      dtlsRole,
      srtpProfile: this.env.srtpProfile,
      onRtp: (p, arrival) => {
        if (p.payloadType !== consumer.payloadType) return;
        this.toMeta.onPacket(p.sequenceNumber, p.timestamp, p.payload, arrival);
        this.checkMediaUp();
      },
    });
    this.consumer = consumer;
    consumer.waitConnected().then(
      () => {
        this.consumerConnected = true;
        if (this.state !== "placing" && this.state !== "up") return;
        this.toPbxSender.start(performance.now());
        this.env.clock.add(this.toPbxSender);
      },
      (err: unknown) => this.fail(`consumer: ${(err as Error).message}`),
    );
    return consumer;
  }

  async createPhone(): Promise<PbxPhone> {
    const phone = await PbxPhone.open((p, arrival) => {
      this.toPbx.onPacket(p.sequenceNumber, p.timestamp, p.payload, arrival);
      this.checkMediaUp();
    });
    this.phone = phone;
    return phone;
  }

  /** The phone talks from the moment it answers, as a PBX does. */
  startPhone(): void {
    if (this.toMetaSender.isRunning) return;
    this.toMetaSender.start(performance.now());
    this.env.clock.add(this.toMetaSender);
  }

  /** Resolves once both directions are mapped end to end (rejects when the call fails or times out). */
  waitMediaUp(timeoutMs: number): Promise<void> {
    if (this.state === "up") return Promise.resolve();
    if (this.state !== "placing") return Promise.reject(new Error(this.failure ?? `call ${this.state}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`media not up in ${timeoutMs} ms (${this.progress()})`)), timeoutMs);
      this.mediaUpWaiters.push(() => {
        clearTimeout(timer);
        if (this.state === "up" || this.state === "ending" || this.state === "ended") resolve();
        else reject(new Error(this.failure ?? `call ${this.state}`));
      });
    });
  }

  /** Resolves when both legs are released. */
  waitEnded(timeoutMs: number): Promise<void> {
    if (this.consumerDone && this.phoneDone) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`call ${this.id} did not end within ${timeoutMs} ms`)), timeoutMs);
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Packets received in both directions (for short churn calls, which never wait for onsets). */
  get packetsBothWays(): number {
    return Math.min(this.toPbx.counters.received, this.toMeta.counters.received);
  }

  /** Stops the consumer's voice and closes its peer. */
  closeConsumer(): void {
    this.toPbxSender.stop();
    this.env.clock.remove(this.toPbxSender);
    const consumer = this.consumer;
    this.consumer = undefined;
    void consumer?.close();
    this.consumerDone = true;
    this.checkEnded();
  }

  closePhone(): void {
    this.toMetaSender.stop();
    this.env.clock.remove(this.toMetaSender);
    this.phone?.close();
    this.phone = undefined;
    this.phoneDone = true;
    this.checkEnded();
  }

  fail(reason: string): void {
    if (this.state === "ended" || this.state === "failed") return;
    const wasEnding = this.state === "ending";
    this.failure ??= reason;
    this.state = wasEnding ? "ended" : "failed";
    this.closeConsumer();
    this.closePhone();
    this.flushMediaUp();
  }

  private checkMediaUp(): void {
    if (this.state !== "placing" || !this.toPbx.anchored || !this.toMeta.anchored) return;
    this.state = "up";
    this.times.mediaUpAt = performance.now();
    this.flushMediaUp();
  }

  private flushMediaUp(): void {
    const waiters = this.mediaUpWaiters;
    this.mediaUpWaiters = [];
    for (const w of waiters) w();
  }

  private checkEnded(): void {
    if (!this.consumerDone || !this.phoneDone) return;
    if (this.state !== "failed") this.state = "ended";
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const w of waiters) w();
  }

  /** How far the call got, for error messages. */
  private progress(): string {
    const t = this.times;
    const at = (v: number | undefined): string => (v === undefined ? "never" : `+${Math.round(v - this.startedAt)} ms`);
    const stream = (r: StreamReceiver): string => `${r.counters.received} received${r.anchored ? ", mapped" : ""}`;
    return [
      `INVITE ${at(t.inviteArrivedAt)}`,
      `accept ${at(t.acceptArrivedAt)}`,
      `consumer ${this.consumerConnected ? "connected" : "not connected"}`,
      `toPbx ${stream(this.toPbx)}`,
      `toMeta ${stream(this.toMeta)}`,
    ].join(", ");
  }
}
