import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { buildAnswer, buildOffer, readRemoteMedia, type RemoteMedia } from "../../sip/sdp.js";
import type { OutgoingSipCall, SipFailureKind, SipSignaling } from "../../sip/signaling.js";
import type { PortAllocator } from "../../sip/rtp/port-allocator.js";
import { RtpEndpoint } from "../../sip/rtp/rtp-endpoint.js";
import type { RtpPacket } from "../../sip/rtp/rtp-packet.js";
import { MetaToPbxAudio, PbxToMetaAudio } from "../../transcode/audio-pipeline.js";
import { DtmfReceiver, dtmfPackets, isDtmfDigit } from "../../transcode/dtmf.js";
import { LatencyRecorder, type LatencySnapshot } from "./latency.js";
import type { MediaTicker } from "./media-ticker.js";
import type { CallTarget, CallTargetEvents, Digit, OpusFrame, TargetFailure } from "./target.js";

export interface SipTargetOptions {
  signaling: SipSignaling;
  allocator: PortAllocator;
  ticker: MediaTicker;
  /** SIP URI consumer calls ring. */
  uri: string;
  auth: { username: string; password: string } | undefined;
  /** Address written in our SDP (public address, or the bind address). */
  mediaAddress: string;
  /** Ringing longer than this is given up (CANCEL) and reported as no answer. */
  ringTimeoutMs: number;
  pageId: string;
  log: Logger;
}

export interface SipTargetStats {
  state: SipTargetState;
  sipCallId: string | undefined;
  codec: string | undefined;
  rtp: ReturnType<RtpEndpoint["stats"]> | undefined;
  toPbx: ReturnType<MetaToPbxAudio["stats"]> | undefined;
  toMeta: ReturnType<PbxToMetaAudio["stats"]> | undefined;
  comfortFrames: number;
  /** Arrival from Meta to departure toward the PBX, and the reverse, in ms. */
  latencyToPbx: LatencySnapshot;
  latencyToMeta: LatencySnapshot;
}

/**
 * Named states: `idle` → `ringing` (INVITE sent) → `answered` (media bridged) → `ended`;
 * a call that never answers goes `ringing` → `ended` through `failed`.
 */
export type SipTargetState = "idle" | "ringing" | "answered" | "ended";

const TELEPHONE_EVENT_PT = 101;
/** Toward Meta a frame is due every 20 ms; after this long with nothing from the PBX, comfort audio fills in. */
const PBX_SILENCE_MS = 60;
const FRAME_MS = 20;

/**
 * Rings the PBX over SIP and bridges the call's audio: Opus from the consumer is jitter-buffered,
 * decoded straight to 8 kHz and sent as G.711 in 20 ms packets; G.711 from the PBX is encoded to
 * Opus for Meta, with comfort audio whenever the PBX sends nothing, so the Meta leg is never silent.
 * DTMF crosses as RFC 4733 events both ways (and SIP INFO from the PBX).
 */
export class SipTarget extends EventEmitter<CallTargetEvents> implements CallTarget {
  readonly kind = "sip";
  private _state: SipTargetState = "idle";
  private rtp: RtpEndpoint | undefined;
  private sip: OutgoingSipCall | undefined;
  private remote: RemoteMedia | undefined;
  private toPbx: MetaToPbxAudio | undefined;
  private toMeta: PbxToMetaAudio | undefined;
  private untick: (() => void) | undefined;
  private lastPbxAudioAt = 0;
  private nextComfortAt = 0;
  private comfortFrames = 0;
  private readonly latencyToPbx = new LatencyRecorder();
  private readonly latencyToMeta = new LatencyRecorder();
  private pbxTimestamp = 0;
  private dtmfFromPbx: DtmfReceiver | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private sessionVersion = 1;
  private readonly sessionId = String(Math.floor(Math.random() * 1e12));

  constructor(private readonly o: SipTargetOptions) {
    super();
  }

  get state(): SipTargetState {
    return this._state;
  }

  ring(info: { callId: string; psid: string }): void {
    if (this._state !== "idle") return;
    this._state = "ringing";
    void this.startRinging(info).catch((err: unknown) => {
      this.o.log.warn({ err }, "could not ring the PBX");
      this.fail("failed", (err as Error).message);
    });
  }

  sendAudio(frame: OpusFrame): void {
    if (this._state !== "answered" || !this.toPbx) return;
    this.toPbx.push({
      payload: frame.payload,
      seq: frame.sequenceNumber ?? 0,
      timestamp: frame.timestamp,
      ssrc: frame.ssrc,
      arrivalMs: frame.arrivalMs,
    });
  }

  sendDtmf(digit: Digit, durationMs: number): void {
    if (this._state !== "answered" || !this.rtp || !this.remote) return;
    const pt = this.remote.audio.telephoneEventPayloadType;
    if (pt === undefined) {
      // The PBX takes no RFC 4733: SIP INFO is the common fallback PBXs accept.
      this.sip?.sendInfo("application/dtmf-relay", `Signal=${digit}\r\nDuration=${durationMs}\r\n`).catch((err: unknown) => {
        this.o.log.warn({ err, digit }, "DTMF INFO to the PBX failed");
      });
      return;
    }
    const rtp = this.rtp;
    for (const p of dtmfPackets(digit, { clockRate: 8000, timestamp: this.pbxTimestamp, durationMs })) {
      const send = (): void => void rtp.send({ payloadType: pt, payload: Buffer.from(p.payload), timestamp: p.timestamp, marker: p.marker });
      if (p.sendOffsetMs <= 0) send();
      else this.later(p.sendOffsetMs, send);
    }
  }

  async hangup(reason: string): Promise<void> {
    if (this._state === "ended") return;
    const wasState = this._state;
    this._state = "ended";
    this.o.log.debug({ reason, wasState }, "SIP leg ending");
    if (this.sip) {
      await this.sip.hangup().catch((err: unknown) => this.o.log.debug({ err }, "SIP hangup error"));
    }
    await this.release();
    this.removeAllListeners();
  }

  stats(): SipTargetStats {
    return {
      state: this._state,
      sipCallId: this.sip?.sipCallId,
      codec: this.remote?.audio.codec,
      rtp: this.rtp?.stats(),
      toPbx: this.toPbx?.stats(),
      toMeta: this.toMeta?.stats(),
      comfortFrames: this.comfortFrames,
      latencyToPbx: this.latencyToPbx.snapshot(),
      latencyToMeta: this.latencyToMeta.snapshot(),
    };
  }

  private async startRinging(info: { callId: string; psid: string }): Promise<void> {
    const { log } = this.o;
    this.rtp = await RtpEndpoint.open({ allocator: this.o.allocator, clockRate: 8000 });
    if (this.isEnded()) {
      await this.release();
      return;
    }
    this.rtp.on("rtp", (packet) => this.onPbxRtp(packet));
    const offer = buildOffer(this.localSdp());
    const call = this.o.signaling.placeCall({
      uri: this.o.uri,
      sdp: offer,
      callId: info.callId,
      from: { user: info.psid, displayName: "Messenger" },
      headers: { "X-Meta-PSID": info.psid, "X-Meta-Call-Id": info.callId, "X-Meta-Page-Id": this.o.pageId },
      timeoutMs: this.o.ringTimeoutMs,
      auth: this.o.auth,
    });
    this.sip = call;
    call.on("provisional", (status, reason) => log.debug({ status, reason }, "PBX provisional"));
    call.on("answered", (sdp) => this.onAnswered(sdp));
    call.on("failed", (status, reason, kind) => {
      log.info({ status, reason }, "PBX did not take the call");
      this.fail(failureOf(kind), `${status} ${reason}`);
    });
    call.on("ended", (reason) => {
      if (this._state === "ended") return;
      log.info({ reason }, "PBX leg ended");
      this._state = "ended";
      void this.release();
      this.emit("ended", reason === "remote-bye" ? "PBX hung up" : `SIP dialog ended (${reason})`);
    });
    call.on("reinvite", (offerSdp, respond) => {
      if (!offerSdp) {
        respond(buildOffer(this.localSdp(true)));
        return;
      }
      try {
        this.applyRemote(readRemoteMedia(offerSdp));
        respond(buildAnswer(offerSdp, this.localSdp(true)));
      } catch (err) {
        log.warn({ err }, "PBX re-INVITE refused");
        respond({ status: 488, reason: "Not Acceptable Here" });
      }
    });
    call.on("info", (contentType, body) => this.onPbxInfo(contentType, body));
    log.info({ uri: this.o.uri, sipCallId: call.sipCallId }, "INVITE sent to PBX");
  }

  private onAnswered(sdp: string): void {
    if (this._state !== "ringing") return;
    let remote: RemoteMedia;
    try {
      remote = readRemoteMedia(sdp);
    } catch (err) {
      this.o.log.warn({ err }, "PBX answer unusable");
      void this.sip?.hangup();
      this.fail("failed", `PBX answer unusable: ${(err as Error).message}`);
      return;
    }
    this.applyRemote(remote);
    const codec = remote.audio.codec;
    this.toPbx = this.createToPbx(codec);
    this.toMeta = new PbxToMetaAudio({
      onFrame: (f) => {
        if (f.oldestArrivalMs !== undefined) this.latencyToMeta.record(performance.now() - f.oldestArrivalMs);
        this.emit("audio", { payload: f.payload, timestamp: f.timestamp, arrivalMs: f.oldestArrivalMs ?? performance.now() });
      },
    });
    this._state = "answered";
    this.lastPbxAudioAt = performance.now();
    this.nextComfortAt = this.lastPbxAudioAt + PBX_SILENCE_MS;
    this.untick = this.o.ticker.add((now) => this.onTick(now));
    this.o.log.info({ codec, remote: `${remote.audio.address}:${remote.audio.port}` }, "PBX answered");
    this.emit("answered");
  }

  private createToPbx(codec: RemoteMedia["audio"]["codec"]): MetaToPbxAudio {
    return new MetaToPbxAudio({
      codec,
      initialTimestamp: this.pbxTimestamp,
      onFrame: (f) => {
        this.pbxTimestamp = f.timestamp;
        if (f.oldestArrivalMs !== undefined) this.latencyToPbx.record(performance.now() - f.oldestArrivalMs);
        const pt = this.remote?.audio.payloadType ?? 0;
        this.rtp?.send({ payloadType: pt, payload: Buffer.from(f.payload), timestamp: f.timestamp, marker: f.marker });
      },
    });
  }

  private applyRemote(remote: RemoteMedia): void {
    const codecChanged = this.remote !== undefined && this.remote.audio.codec !== remote.audio.codec;
    this.remote = remote;
    if (codecChanged && this.toPbx) {
      // A re-INVITE may switch G.711 law; the encoder toward the PBX follows, the timeline continues.
      this.toPbx = this.createToPbx(remote.audio.codec);
      this.o.log.info({ codec: remote.audio.codec }, "PBX changed the audio codec");
    }
    this.rtp?.setRemote({
      address: remote.audio.address,
      port: remote.audio.port,
      rtcpAddress: remote.audio.rtcpAddress,
      rtcpPort: remote.audio.rtcpPort,
    });
  }

  private onPbxRtp(packet: RtpPacket): void {
    if (this._state !== "answered" || !this.toMeta || !this.remote) return;
    const te = this.remote.audio.telephoneEventPayloadType;
    if (te !== undefined && packet.payloadType === te) {
      this.dtmfFromPbx ??= new DtmfReceiver(8000, (d) => {
        this.o.log.info({ digit: d.digit, durationMs: d.durationMs }, "DTMF from PBX");
        this.emit("dtmf", d.digit, d.durationMs);
      });
      try {
        this.dtmfFromPbx.push({ payload: packet.payload, timestamp: packet.timestamp });
      } catch (err) {
        this.o.log.debug({ err }, "malformed telephone-event from PBX dropped");
      }
      return;
    }
    const now = performance.now();
    this.lastPbxAudioAt = now;
    this.nextComfortAt = now + PBX_SILENCE_MS;
    this.toMeta.push({ payload: packet.payload, payloadType: packet.payloadType, arrivalMs: now });
  }

  private onPbxInfo(contentType: string, body: string): void {
    if (!/dtmf/i.test(contentType)) return;
    const signal = /Signal\s*=\s*([0-9*#A-Da-d])/.exec(body)?.[1]?.toUpperCase();
    const duration = Number(/Duration\s*=\s*(\d+)/.exec(body)?.[1] ?? 160);
    if (signal && isDtmfDigit(signal)) {
      this.o.log.info({ digit: signal, durationMs: duration }, "DTMF from PBX (INFO)");
      this.emit("dtmf", signal, duration);
    }
  }

  /** Jitter-buffer deadlines toward the PBX, and comfort audio toward Meta while the PBX is silent. */
  private onTick(now: number): void {
    const deadline = this.toPbx?.nextDeadlineMs();
    if (deadline !== undefined && now >= deadline) this.toPbx!.tick(now);
    if (this.toMeta && now >= this.nextComfortAt) {
      const f = this.toMeta.comfortFrame();
      this.comfortFrames++;
      this.nextComfortAt += FRAME_MS;
      // After a stall (a busy event loop) catch up to now rather than bursting frames.
      if (this.nextComfortAt < now) this.nextComfortAt = now + FRAME_MS;
      this.emit("audio", { payload: f.payload, timestamp: f.timestamp, arrivalMs: now });
    }
  }

  private localSdp(bump = false): Parameters<typeof buildOffer>[0] {
    if (bump) this.sessionVersion++;
    return {
      mediaAddress: this.o.mediaAddress,
      audioPort: this.rtp!.localRtpPort,
      rtcpPort: this.rtp!.localRtcpPort,
      telephoneEventPayloadType: TELEPHONE_EVENT_PT,
      sessionId: this.sessionId,
      sessionVersion: this.sessionVersion,
    };
  }

  private fail(kind: TargetFailure, detail: string): void {
    if (this._state === "ended") return;
    const wasRinging = this._state === "ringing" || this._state === "idle";
    this._state = "ended";
    void this.release();
    if (wasRinging) this.emit("failed", kind, detail);
    else this.emit("ended", detail);
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this._state === "answered") fn();
    }, ms);
    this.timers.add(t);
  }

  private async release(): Promise<void> {
    this.untick?.();
    this.untick = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const rtp = this.rtp;
    this.rtp = undefined;
    await rtp?.close();
  }

  private isEnded(): boolean {
    return this._state === "ended";
  }
}

function failureOf(kind: SipFailureKind): TargetFailure {
  return kind === "cancelled" ? "failed" : kind;
}
