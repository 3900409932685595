import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { CallError } from "../errors.js";
import { GraphApiError } from "../meta/graph-errors.js";
import { MediaVersionMachine } from "../meta/media-version.js";
import { DtmfReceiver, dtmfPackets } from "../../transcode/dtmf.js";
import type { MetaLeg } from "../webrtc/meta-leg.js";
import { OutboundStream } from "./outbound-stream.js";
import { SerialQueue } from "./serial-queue.js";
import type { CallTarget, Digit, OpusFrame, TargetFailure } from "./target.js";

/** The Graph API calls a consumer-initiated call makes; the GraphClient provides them. */
export interface MetaCallControl {
  accept(callId: string, sdpOffer: string): Promise<{ answer: string; reoffer?: string }>;
  reject(callId: string): Promise<void>;
  terminate(callId: string): Promise<void>;
}

/**
 * Named states of a consumer-initiated Messenger call:
 * - `ringing`: the connect webhook arrived, our offer is built, the target is ringing;
 * - `accepting`: the target answered, `accept` with our offer is in flight;
 * - `connecting`: Meta's answer (and re-offer) applied, waiting for ICE/DTLS;
 * - `active`: media flows both ways;
 * - `ended`: both legs are down and every resource is released.
 */
export type InboundCallState = "ringing" | "accepting" | "connecting" | "active" | "ended";

/** How a call ended, for logs and metrics. */
export type CallOutcome =
  | "completed-consumer-hangup"
  | "completed-target-hangup"
  | "completed-local-hangup"
  | "target-busy"
  | "target-declined"
  | "target-unreachable"
  | "target-no-answer"
  | "target-failed"
  | "accept-failed"
  | "media-failed"
  | "media-timeout"
  | "consumer-gone"
  | "error";

export interface CallEndInfo {
  callId: string;
  outcome: CallOutcome;
  detail: string;
  durationMs: number;
  /** Whether the consumer's audio reached the target at least once. */
  mediaFlowed: boolean;
}

export interface InboundCallEvents {
  state: [InboundCallState];
  ended: [CallEndInfo];
}

export interface InboundCallOptions {
  callId: string;
  psid: string;
  leg: MetaLeg;
  target: CallTarget;
  meta: MetaCallControl;
  log: Logger;
  /** Meta gives 60 s to accept; give up (reject) before that. */
  acceptTimeoutMs: number;
  /** From accept to DTLS up. */
  connectTimeoutMs: number;
  /** Ends an active call when the consumer's RTP stops for this long. */
  mediaTimeoutMs: number;
}

const OPUS_FRAME_SAMPLES = 960;
/** At most this much target audio (20 ms frames) is held while the Meta leg connects: 1 s. */
const HOLD_FOR_CONSUMER_FRAMES = 50;

/**
 * A consumer calls the business on Messenger. The connect webhook carries no SDP: we offer, ring
 * the target at once, and `accept` with our offer when the target answers (so the consumer's
 * "connected" means someone is there). Meta answers in the HTTP response and re-offers; the
 * consumer's audio then arrives on the transceiver the re-offer added.
 */
export class InboundCall extends EventEmitter<InboundCallEvents> {
  private _state: InboundCallState = "ringing";
  private readonly queue: SerialQueue;
  private readonly startedAt = Date.now();
  private offer: string | undefined;
  private acceptTimer: NodeJS.Timeout | undefined;
  private mediaTimer: NodeJS.Timeout | undefined;
  private readonly toConsumer = new OutboundStream(OPUS_FRAME_SAMPLES);
  private mediaFlowed = false;
  private readonly mediaVersion = new MediaVersionMachine();
  /** Target audio that arrived between the answer and DTLS up, sent once the consumer can hear it. */
  private heldForConsumer: OpusFrame[] = [];
  private dtmfFromConsumer: { payloadType: number; receiver: DtmfReceiver } | undefined;
  private readonly dtmfTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: InboundCallOptions) {
    super();
    this.queue = new SerialQueue((err) => this.failFromError(err));
  }

  get callId(): string {
    return this.o.callId;
  }

  get state(): InboundCallState {
    return this._state;
  }

  /** The far end this call rings (for stats and tests). */
  get target(): CallTarget {
    return this.o.target;
  }

  get leg(): MetaLeg {
    return this.o.leg;
  }

  /** Builds our offer and rings the target. Resolves when both are under way. */
  start(): Promise<void> {
    return this.queue.push(async () => {
      const { leg, target, log } = this.o;
      this.offer = await leg.createOffer();
      target.on("answered", () => void this.queue.push(() => this.onTargetAnswered()));
      target.on("failed", (why, detail) => void this.queue.push(() => this.onTargetFailed(why, detail)));
      target.on("ended", (detail) => void this.queue.push(() => this.hangUpFromTarget(detail)));
      target.on("audio", (frame) => {
        if (this._state === "active") this.sendToConsumer(frame);
        else if (this._state === "connecting") this.holdForConsumer(frame);
      });
      target.on("dtmf", (digit, durationMs) => this.sendDtmfToConsumer(digit, durationMs));
      leg.on("rtp", (inbound) => {
        if (this._state !== "active" || inbound.kind !== "audio") return;
        const { header, payload } = inbound.packet;
        if (header.payloadType === leg.opusPayloadType()) {
          this.mediaFlowed = true;
          target.sendAudio({
            payload,
            timestamp: header.timestamp,
            sequenceNumber: header.sequenceNumber,
            ssrc: header.ssrc,
            arrivalMs: inbound.arrivalMs,
          });
          return;
        }
        this.onConsumerEventPacket(header.payloadType, payload, header.timestamp);
      });
      leg.on("state", (s) => {
        if (s === "failed") void this.queue.push(() => this.endBoth("media-failed", "ICE/DTLS toward Meta failed"));
      });
      this.acceptTimer = setTimeout(
        () => void this.queue.push(() => this.onTargetFailed("no-answer", `not answered within ${this.o.acceptTimeoutMs} ms`)),
        this.o.acceptTimeoutMs,
      );
      log.info({ target: target.kind }, "call ringing target");
      target.ring({ callId: this.o.callId, psid: this.o.psid });
    });
  }

  /** The consumer (or Meta) ended the call: terminate webhook. */
  onMetaTerminate(status: string): Promise<void> {
    return this.queue.push(async () => {
      if (this._state === "ended") return;
      const outcome: CallOutcome = this._state === "active" || status === "Completed" ? "completed-consumer-hangup" : "consumer-gone";
      await this.finish(outcome, `terminate webhook (${status})`, { tellMeta: false });
    });
  }

  /**
   * A media_update webhook: Meta's new offer, applied and answered locally under the version rules
   * (stale and duplicate versions dropped; the highest wins).
   */
  onMetaMediaUpdate(version: number, sdp: string): Promise<void> {
    return this.queue.push(async () => {
      if (this._state !== "active" && this._state !== "connecting") return;
      const decision = this.mediaVersion.onWebhook({ version, sdp });
      if (decision.kind !== "apply") {
        this.o.log.info({ version, current: this.mediaVersion.version, decision: decision.kind === "drop" ? decision.reason : "held" }, "media_update not applied");
        return;
      }
      await this.o.leg.applyOffer(decision.offer.sdp);
      this.mediaVersion.remoteApplied(decision.offer.version);
      this.o.log.info({ version }, "media_update applied");
    });
  }

  /** Ends the call from our side (operator, shutdown). */
  hangup(detail = "local hangup"): Promise<void> {
    return this.queue.push(() => this.endBoth("completed-local-hangup", detail));
  }

  /** RFC 4733 digits from the consumer (Meta sends them on the Opus clock) go to the target once each. */
  private onConsumerEventPacket(payloadType: number, payload: Buffer, timestamp: number): void {
    if (this.dtmfFromConsumer?.payloadType !== payloadType) {
      const codec = this.o.leg.inboundCodec(payloadType);
      if (codec?.name !== "telephone-event") return;
      const receiver = new DtmfReceiver(codec.clockRate, (d) => {
        this.o.log.info({ digit: d.digit, durationMs: d.durationMs }, "DTMF from consumer");
        this.o.target.sendDtmf(d.digit as Digit, d.durationMs);
      });
      this.dtmfFromConsumer = { payloadType, receiver };
    }
    try {
      this.dtmfFromConsumer.receiver.push({ payload, timestamp });
    } catch (err) {
      this.o.log.debug({ err }, "malformed telephone-event from Meta dropped");
    }
  }

  /** A digit from the target goes to the consumer as RFC 4733 events on the leg's telephone-event clock. */
  private sendDtmfToConsumer(digit: Digit, durationMs: number): void {
    if (this._state !== "active") return;
    const { leg, log } = this.o;
    const te = leg.telephoneEventPayloadType();
    if (!te) {
      log.warn({ digit }, "DTMF for the consumer dropped: Meta negotiated no telephone-event");
      return;
    }
    const start = this.toConsumer.nextEventNumbers();
    log.info({ digit, durationMs }, "DTMF to consumer");
    for (const p of dtmfPackets(digit, { clockRate: te.clockRate, timestamp: start.timestamp, durationMs })) {
      const send = (): void => {
        const { sequenceNumber } = this.toConsumer.nextEventNumbers();
        leg.sendAudio(te.payloadType, p.payload, p.timestamp, sequenceNumber, p.marker);
      };
      if (p.sendOffsetMs <= 0) send();
      else {
        const t = setTimeout(() => {
          this.dtmfTimers.delete(t);
          if (this._state === "active") send();
        }, p.sendOffsetMs);
        this.dtmfTimers.add(t);
      }
    }
  }

  private async onTargetAnswered(): Promise<void> {
    if (this._state !== "ringing") return;
    this.clearAcceptTimer();
    this.setState("accepting");
    const { leg, meta, log } = this.o;
    let answer: string;
    let reoffer: string | undefined;
    try {
      ({ answer, reoffer } = await meta.accept(this.o.callId, this.offer!));
    } catch (err) {
      await this.onAcceptFailed(err);
      return;
    }
    if (this.isEnded()) return;
    this.setState("connecting");
    await leg.applyAnswer(answer);
    if (reoffer) await leg.applyOffer(reoffer);
    else log.warn("accept response carried no sdp_renegotiation; consumer audio may not arrive");
    // Waiting for DTLS happens outside the queue: a terminate arriving meanwhile must not wait
    // behind the handshake.
    leg.waitConnected(this.o.connectTimeoutMs).then(
      () => void this.queue.push(() => this.onMediaConnected()),
      (err: unknown) => void this.queue.push(() => this.endBoth("media-failed", (err as Error).message)),
    );
  }

  private sendToConsumer(frame: OpusFrame): void {
    const { sequenceNumber, timestamp } = this.toConsumer.next(frame.timestamp);
    this.o.leg.sendAudio(this.o.leg.opusPayloadType(), frame.payload, timestamp, sequenceNumber);
  }

  /**
   * The agent usually speaks the moment the PBX answers, while ICE/DTLS toward Meta still takes a
   * few hundred ms. Dropping that audio clips the greeting; holding it and sending it as a burst
   * once DTLS is up lets the consumer's jitter buffer play it (WebRTC receivers speed up playout to
   * absorb a burst) instead of adding that delay to the whole call.
   */
  private holdForConsumer(frame: OpusFrame): void {
    this.heldForConsumer.push(frame);
    if (this.heldForConsumer.length > HOLD_FOR_CONSUMER_FRAMES) this.heldForConsumer.shift();
  }

  private onMediaConnected(): void {
    if (this._state !== "connecting") return;
    const held = this.heldForConsumer;
    this.heldForConsumer = [];
    this.setState("active");
    for (const frame of held) this.sendToConsumer(frame);
    if (held.length > 0) this.o.log.debug({ frames: held.length }, "audio held during DTLS sent to the consumer");
    this.armMediaTimer();
    this.o.log.info({ setupMs: Date.now() - this.startedAt }, "call active");
  }

  private async onAcceptFailed(err: unknown): Promise<void> {
    const { meta, log } = this.o;
    const gerr = err instanceof GraphApiError ? err : undefined;
    log.warn(
      { err: gerr ? { kind: gerr.kind, code: gerr.code, subcode: gerr.subcode, fbtraceId: gerr.fbtraceId, class: gerr.errorClass } : err },
      "accept failed",
    );
    if (gerr?.errorClass !== "call-gone") {
      // A definite refusal leaves the consumer ringing: reject. After a timeout nobody knows whether
      // the accept took, and only terminate ends both a ringing and an accepted call.
      const end = gerr?.kind === "timeout" || gerr?.kind === "network" ? meta.terminate : meta.reject;
      await end.call(meta, this.o.callId).catch((e: unknown) => log.warn({ err: e }, "could not end the call at Meta"));
    }
    await this.finish("accept-failed", gerr ? gerr.message : String(err), { tellMeta: false });
  }

  private async onTargetFailed(why: TargetFailure, detail: string): Promise<void> {
    if (this._state !== "ringing") return;
    await this.o.meta.reject(this.o.callId).catch((e: unknown) => this.o.log.warn({ err: e }, "reject failed"));
    await this.finish(`target-${why}`, detail, { tellMeta: false });
  }

  private async hangUpFromTarget(detail: string): Promise<void> {
    if (this.isEnded()) return;
    await this.endBoth("completed-target-hangup", detail);
  }

  /** Ends the call on both legs, telling Meta in the way that fits the state. */
  private async endBoth(outcome: CallOutcome, detail: string): Promise<void> {
    if (this.isEnded()) return;
    await this.finish(outcome, detail, { tellMeta: true });
  }

  private async finish(outcome: CallOutcome, detail: string, opts: { tellMeta: boolean }): Promise<void> {
    if (this.isEnded()) return;
    const wasState = this._state;
    this.setState("ended");
    this.clearAcceptTimer();
    if (this.mediaTimer) clearInterval(this.mediaTimer);
    this.mediaTimer = undefined;
    for (const t of this.dtmfTimers) clearTimeout(t);
    this.dtmfTimers.clear();
    this.heldForConsumer = [];
    const { meta, leg, target, log } = this.o;
    if (opts.tellMeta) {
      const end = wasState === "ringing" ? meta.reject : meta.terminate;
      await end.call(meta, this.o.callId).catch((e: unknown) => log.warn({ err: e }, "could not end the call at Meta"));
    }
    await Promise.allSettled([target.hangup(detail), leg.close()]);
    this.queue.close();
    const info: CallEndInfo = {
      callId: this.o.callId,
      outcome,
      detail,
      durationMs: Date.now() - this.startedAt,
      mediaFlowed: this.mediaFlowed,
    };
    log.info({ outcome, detail, durationMs: info.durationMs, leg: leg.stats() }, "call ended");
    this.emit("ended", info);
    this.removeAllListeners();
  }

  private failFromError(err: unknown): void {
    this.o.log.error({ err }, "call step failed");
    const detail = err instanceof CallError || err instanceof Error ? err.message : String(err);
    // Runs outside the queue: the failing step is over, and finishing must not wait behind it.
    void this.finish("error", detail, { tellMeta: true });
  }

  private armMediaTimer(): void {
    const check = Math.min(5_000, this.o.mediaTimeoutMs);
    this.mediaTimer = setInterval(() => {
      const last = this.o.leg.stats().lastPacketInAt ?? this.o.leg.stats().connectedAt ?? Date.now();
      if (Date.now() - last > this.o.mediaTimeoutMs) {
        void this.queue.push(() => this.endBoth("media-timeout", `no RTP from Meta for ${this.o.mediaTimeoutMs} ms`));
      }
    }, check);
    this.mediaTimer.unref();
  }

  private clearAcceptTimer(): void {
    if (this.acceptTimer) clearTimeout(this.acceptTimer);
    this.acceptTimer = undefined;
  }

  private isEnded(): boolean {
    return this._state === "ended";
  }

  private setState(s: InboundCallState): void {
    if (this._state === s) return;
    this._state = s;
    this.o.log.debug({ state: s }, "call state");
    this.emit("state", s);
  }
}
