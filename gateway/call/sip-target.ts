import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { PortAllocator } from "../../sip/rtp/port-allocator.js";
import { readRemoteMedia } from "../../sip/sdp.js";
import type { OutgoingSipCall, SipDialogId, SipFailureKind, SipSignaling } from "../../sip/signaling.js";
import type { MediaTicker } from "./media-ticker.js";
import { PbxLeg } from "./pbx-leg.js";
import { PbxMedia, type PbxMediaStats } from "./pbx-media.js";
import type { SrtpMode } from "./pbx-srtp.js";
import type { CallTarget, CallTargetEvents, RingInfo, TargetFailure } from "./target.js";
import { sipIdentity, type SipIdentity } from "./consumer-identity.js";

export interface SipTargetOptions {
  signaling: SipSignaling;
  allocator: PortAllocator;
  ticker: MediaTicker;
  /** SIP URI consumer calls ring. */
  uri: string;
  /** Headers added to the INVITE beside the consumer's (a transfer's Referred-By, Replaces). */
  extraHeaders?: Record<string, string>;
  auth: { username: string; password: string } | undefined;
  /** Address written in our SDP (public address, or the bind address). */
  mediaAddress: string;
  /** SIP_SRTP; default off. */
  srtp?: SrtpMode;
  /** Ringing longer than this is given up (CANCEL) and reported as no answer. */
  ringTimeoutMs: number;
  /** An answered PBX that sends no RTP or RTCP for this long is gone. */
  mediaTimeoutMs: number;
  /** Report a 183 with SDP as early media (the consumer is then accepted on it: ACCEPT_ON=early-media). */
  earlyMedia: boolean;
  /** The Messenger Page, for X-Meta-Page-Id; undefined on a WhatsApp-only gateway. */
  pageId: string | undefined;
  log: Logger;
}

/**
 * Named states: `idle` → `ringing` (INVITE sent) → [`early` (its early media bridged)] →
 * `answered` (media bridged) → `ended`; a call that never answers ends through `failed`.
 */
export type SipTargetState = "idle" | "ringing" | "early" | "answered" | "ended";

export interface SipTargetStats extends Partial<PbxMediaStats> {
  state: SipTargetState;
  sipCallId: string | undefined;
}

/**
 * Rings the PBX over SIP for a consumer's call; once it answers, its media is a PbxLeg. The
 * consumer's PSID and the Messenger call id travel in headers the PBX can route on.
 */
export class SipTarget extends EventEmitter<CallTargetEvents> implements CallTarget {
  readonly kind = "sip";
  private _state: SipTargetState = "idle";
  private media: PbxMedia | undefined;
  private sip: OutgoingSipCall | undefined;
  private leg: PbxLeg | undefined;

  constructor(private readonly o: SipTargetOptions) {
    super();
  }

  get state(): SipTargetState {
    return this._state;
  }

  get dialogId(): SipDialogId | undefined {
    return this.sip?.dialogId;
  }

  ring(info: RingInfo): void {
    if (this._state !== "idle") return;
    this._state = "ringing";
    void this.startRinging(info).catch((err: unknown) => {
      this.o.log.warn({ err }, "could not ring the PBX");
      this.fail("failed", (err as Error).message);
    });
  }

  async hangup(reason: string): Promise<void> {
    if (this._state === "ended") return;
    this._state = "ended";
    this.o.log.debug({ reason }, "SIP leg ending");
    // RFC 3261 §15.1.1: the session is over once the BYE is handed to its transaction. Media and the
    // call are released now; a PBX that vanished must not hold them until the BYE times out (32 s).
    this.sip?.hangup().catch((err: unknown) => this.o.log.debug({ err }, "SIP hangup error"));
    await this.release();
    this.removeAllListeners();
  }

  stats(): SipTargetStats {
    return { state: this._state, sipCallId: this.sip?.sipCallId, ...this.media?.stats() };
  }

  private async startRinging(info: RingInfo): Promise<void> {
    const { log } = this.o;
    const media = await PbxMedia.open({
      allocator: this.o.allocator,
      ticker: this.o.ticker,
      mediaAddress: this.o.mediaAddress,
      srtp: this.o.srtp,
      log,
      sendInfo: (contentType, body) => this.sip?.sendInfo(contentType, body) ?? Promise.resolve(),
    });
    this.media = media;
    if (this._state === "ended") {
      await media.close();
      return;
    }
    const call = this.o.signaling.placeCall({
      uri: this.o.uri,
      sdp: media.offer(),
      callId: info.callId,
      ...withHeaders(sipIdentity(info, this.o.pageId), this.o.extraHeaders),
      timeoutMs: this.o.ringTimeoutMs,
      auth: this.o.auth,
    });
    this.sip = call;
    call.on("provisional", (status, reason, sdp) => {
      log.debug({ status, reason, earlyMedia: sdp !== undefined }, "PBX provisional");
      this.emit("ringing", status);
      if (sdp !== undefined && this.o.earlyMedia) this.onEarlyMedia(call, media, sdp);
    });
    call.on("answered", (sdp) => this.onAnswered(call, media, sdp));
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
    log.info({ uri: this.o.uri, sipCallId: call.sipCallId }, "INVITE sent to PBX");
  }

  /** A 183 with SDP: the PBX's prompts or ringback, bridged before it answers. */
  private onEarlyMedia(call: OutgoingSipCall, media: PbxMedia, sdp: string): void {
    if (this._state !== "ringing") return;
    try {
      media.setRemote(readRemoteMedia(sdp));
    } catch (err) {
      // Not fatal: the answer may still bring usable media.
      this.o.log.warn({ err: (err as Error).message }, "PBX early media unusable; waiting for the answer");
      return;
    }
    media.start();
    this._state = "early";
    this.leg = new PbxLeg(call, media, this.o.log, this.o.mediaTimeoutMs);
    this.o.log.info({ codec: media.codec }, "PBX early media");
    this.emit("earlyMedia", this.leg);
  }

  private onAnswered(call: OutgoingSipCall, media: PbxMedia, sdp: string): void {
    if (this._state !== "ringing" && this._state !== "early") return;
    try {
      // The answer's SDP wins over the early media's (RFC 3261 §13.2.1: it may differ).
      media.setRemote(readRemoteMedia(sdp));
    } catch (err) {
      this.o.log.warn({ err }, "PBX answer unusable");
      void call.hangup();
      this.fail("failed", `PBX answer unusable: ${(err as Error).message}`);
      return;
    }
    media.start();
    this._state = "answered";
    this.leg ??= new PbxLeg(call, media, this.o.log, this.o.mediaTimeoutMs);
    this.o.log.info({ codec: media.codec }, "PBX answered");
    this.emit("answered", this.leg);
  }

  /** Frees the media, through the leg once there is one. */
  private async release(): Promise<void> {
    if (this.leg) await this.leg.close();
    else await this.media?.close();
  }

  private fail(kind: TargetFailure, detail: string): void {
    if (this._state === "ended") return;
    const wasRinging = this._state === "ringing" || this._state === "early" || this._state === "idle";
    this._state = "ended";
    void this.release();
    if (wasRinging) this.emit("failed", kind, detail);
    else this.emit("ended", detail);
  }
}

function failureOf(kind: SipFailureKind): TargetFailure {
  return kind === "cancelled" ? "failed" : kind;
}

function withHeaders(identity: SipIdentity, extra: Record<string, string> | undefined): SipIdentity {
  return extra ? { from: identity.from, headers: { ...identity.headers, ...extra } } : identity;
}
