import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { readRemoteMedia } from "../../sip/sdp.js";
import type { IncomingSipCall, SipReferRequest } from "../../sip/signaling.js";
import { GraphApiError } from "../meta/graph-errors.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import { CallMedia } from "./call-media.js";
import type { OutboundSignalling } from "./outbound-signalling.js";
import { terminateDetail } from "./inbound-call.js";
import { callEndRecord, type CallEndInfo, type CallOutcome, type MetaCall, type PbxDialogInfo } from "./meta-call.js";
import type { CallTransfers, TransferredParty } from "./call-transfer.js";
import type { FarMedia } from "./far-media.js";
import { PbxLeg } from "./pbx-leg.js";
import type { CallTarget, RingInfo } from "./target.js";
import type { PbxMedia, PbxMediaStats } from "./pbx-media.js";
import { SerialQueue } from "./serial-queue.js";

/**
 * Named states of a business-initiated call (an agent calls a consumer):
 * - `checking`: the PBX's INVITE is in; the consumer's call permission is being read;
 * - `connecting`: `connect` with our offer is in flight;
 * - `ringing`: Meta took the call; waiting for the consumer (180 sent when Meta says it rings).
 *   Meta's answer is applied here: from connect's response (Messenger) or its connect webhook
 *   (WhatsApp);
 * - `answering`: the consumer picked up; our 200 OK is out, waiting for the ACK;
 * - `active`: both legs up, media both ways (on Messenger the consumer's media needs Meta's pickup
 *   re-offer);
 * - `ended`.
 */
export type OutboundCallState = "checking" | "connecting" | "ringing" | "answering" | "active" | "ended";

export interface OutboundCallOptions {
  sip: IncomingSipCall;
  /** The consumer called: a PSID, or a WhatsApp phone number or user id. */
  psid: string;
  leg: MetaMediaLeg;
  media: PbxMedia;
  /** What the platform (Messenger, WhatsApp) does at Meta. */
  signalling: OutboundSignalling;
  log: Logger;
  /** The call is registered under Meta's call id as soon as `connect` returns it. */
  register: (callId: string, call: OutboundCall) => void;
  /** Give up on a consumer who does not pick up. */
  ringTimeoutMs: number;
  mediaTimeoutMs: number;
  /** Without permission, ask the consumer for it (calling_optin, call_permission_request) when Meta allows. */
  requestPermission: boolean;
  /** How a REFER from the agent's side is followed. */
  transfers: CallTransfers;
}

/**
 * An agent on the PBX calls a consumer. Our offer goes out in `connect` (never retried: a retry
 * could ring the consumer twice); Meta's answer comes back in its response (Messenger) or by
 * webhook (WhatsApp). Status webhooks drive 180, 200 and a decline toward the PBX; on Messenger
 * the `media_update` re-offer after pickup brings the consumer's audio.
 */
export class OutboundCall extends EventEmitter<{ ended: [CallEndInfo]; state: [OutboundCallState] }> implements MetaCall {
  readonly direction = "outbound";
  private _state: OutboundCallState = "checking";
  private _callId: string;
  /** Meta's call id, once connect returned it: what terminate names. */
  private metaCallId: string | undefined;
  private readonly queue: SerialQueue;
  private readonly startedAt = Date.now();
  private readonly media: CallMedia;
  private ringTimer: NodeJS.Timeout | undefined;
  private pickedUp = false;
  /** The agent's side once the consumer picked up; until then its RTP ports wait in `o.media`. */
  private pbx: PbxLeg | undefined;
  /** Where a transfer moved the consumer; the agent's own dialog is then released. */
  private transferredTo: CallTarget | undefined;

  constructor(private readonly o: OutboundCallOptions) {
    super();
    this._callId = `sip:${o.sip.sipCallId}`;
    this.queue = new SerialQueue((err) => this.failFromError(err));
    this.media = new CallMedia({
      leg: o.leg,
      meta: o.signalling.media,
      queue: this.queue,
      log: o.log,
      callId: () => this._callId,
      mediaTimeoutMs: o.mediaTimeoutMs,
      onMediaTimeout: (detail) => void this.queue.push(() => this.endBoth("media-timeout", detail)),
      onError: (err) => this.failFromError(err),
    });
  }

  get callId(): string {
    return this._callId;
  }

  get businessId(): string {
    return this.o.signalling.businessId;
  }

  get state(): OutboundCallState {
    return this._state;
  }

  start(): Promise<void> {
    return this.queue.push(async () => {
      const { sip, leg, signalling, log } = this.o;
      sip.on("cancel", () => void this.queue.push(() => this.onPbxCancel()));
      sip.on("ended", (reason) => {
        // Our BYE after a transfer ends the agent's dialog, not the call; so does the agent's own
        // BYE while its transfer runs.
        if (this.transferredTo) return;
        if (this.o.transfers.partyLeft()) {
          this.o.log.info({ reason }, "the transferring party hung up; the consumer waits for the new party");
          return;
        }
        void this.queue.push(() => this.onPbxEnded(reason));
      });
      leg.on("state", (s) => {
        if (s === "failed") void this.queue.push(() => this.endBoth("media-failed", "ICE/DTLS toward Meta failed"));
        if (s === "connected") void this.queue.push(() => this.maybeActive());
      });

      // 1. The consumer must have granted permission; without it Meta refuses connect anyway, and
      //    asking first costs no ring.
      let permitted: boolean;
      let mayAsk = false;
      try {
        const p = await signalling.permission();
        permitted = p.status === "has_permission" && p.canStartCall;
        mayAsk = p.canRequestPermission;
      } catch (err) {
        await this.refuse(sipStatusForGraphError(err), "connect-failed", `permission check failed: ${(err as Error).message}`);
        return;
      }
      if (this.isEnded()) return;
      if (!permitted) {
        if (this.o.requestPermission && mayAsk) {
          try {
            await signalling.requestPermission();
            log.info("call permission requested from the consumer");
            await this.refuse({ status: 403, reason: "Call Permission Requested From Consumer" }, "no-permission", "permission requested");
            return;
          } catch (err) {
            log.warn({ err }, "call permission request failed");
          }
        }
        await this.refuse({ status: 403, reason: "Consumer Has Not Granted Call Permission" }, "no-permission", "no call permission");
        return;
      }

      // 2. Our offer in connect; Meta's answer in its response or by webhook.
      this.setState("connecting");
      const offer = await leg.createOffer();
      let connected: { callId: string; answer?: string };
      try {
        connected = await signalling.connect(offer, sip.sipCallId);
      } catch (err) {
        await this.refuse(sipStatusForGraphError(err), "connect-failed", (err as Error).message);
        return;
      }
      this._callId = connected.callId;
      this.metaCallId = connected.callId;
      // From here on every line of this call (both legs share the logger) carries Meta's call id.
      log.setBindings({ callId: connected.callId });
      this.o.register(connected.callId, this);
      log.info({ callId: connected.callId }, "consumer call placed");
      if (this.isEnded()) {
        // The PBX cancelled while connect was in flight: the consumer is ringing now, stop it.
        await signalling.terminate(connected.callId).catch((e: unknown) => log.warn({ err: e }, "terminate failed"));
        return;
      }
      if (connected.answer !== undefined) await leg.applyAnswer(connected.answer);
      this.setState("ringing");
      this.ringTimer = setTimeout(
        () => void this.queue.push(() => this.endBoth("consumer-no-answer", `not answered within ${this.o.ringTimeoutMs} ms`)),
        this.o.ringTimeoutMs,
      );
    });
  }

  onMetaCallStatus(status: "ringing" | "accepted" | "rejected"): Promise<void> {
    return this.queue.push(async () => {
      if (status === "ringing" && this._state === "ringing") {
        this.o.sip.ringing();
        this.o.log.info("consumer ringing");
        return;
      }
      if (status === "accepted" && this._state === "ringing") await this.onPickup();
      if (status === "rejected" && !this.pickedUp && !this.isEnded()) {
        await this.refuse({ status: 486, reason: "Consumer Declined" }, "consumer-declined", "consumer declined (status webhook)");
      }
    });
  }

  /**
   * Meta's answer to our connect offer, by webhook (WhatsApp): applied when it comes, possibly
   * before the consumer picks up, so media can connect while they ring.
   */
  onMetaAnswer(sdp: string): Promise<void> {
    return this.queue.push(async () => {
      if (this.isEnded() || this.o.leg.state !== "offered") {
        this.o.log.debug({ state: this._state, leg: this.o.leg.state }, "answer webhook not applied: the leg is past it");
        return;
      }
      try {
        await this.o.leg.applyAnswer(sdp);
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, "Meta's answer is unusable");
        await this.endBoth("connect-failed", `Meta's answer is unusable: ${(err as Error).message}`);
        return;
      }
      this.o.log.info("Meta's answer applied");
      await this.maybeActive();
    });
  }

  /** A media_update webhook (CallMedia's version rules); the first, after pickup, brings the consumer's media. */
  onMetaMediaUpdate(version: number, sdp: string): Promise<void> {
    return this.queue.push(async () => {
      if (this.isEnded() || this._state === "checking" || this._state === "connecting") return;
      if (await this.media.applyMetaOffer(version, sdp)) await this.maybeActive();
    });
  }

  onMetaTerminate(status: string, errors?: string): Promise<void> {
    return this.queue.push(async () => {
      if (this.isEnded()) return;
      if (!this.pickedUp) {
        // Messenger has no "rejected" status: a terminate before pickup is a decline or a timeout.
        const ringingFor = Date.now() - this.startedAt;
        const s = status.toLowerCase();
        const noAnswer = s !== "rejected" && (s !== "completed" || ringingFor >= this.o.ringTimeoutMs * 0.9);
        await this.refuse(
          noAnswer ? { status: 480, reason: "Consumer Did Not Answer" } : { status: 486, reason: "Consumer Declined" },
          noAnswer ? "consumer-no-answer" : "consumer-declined",
          `${terminateDetail(status, errors)} before pickup`,
          false,
        );
        return;
      }
      await this.finish("completed-consumer-hangup", terminateDetail(status, errors), { tellMeta: false });
    });
  }

  hangup(detail = "local hangup"): Promise<void> {
    return this.queue.push(() => this.endBoth("completed-local-hangup", detail));
  }

  pbxMediaStats(): PbxMediaStats | undefined {
    return this.media.farStats() ?? this.o.media.stats();
  }

  whenEnded(listener: (info: CallEndInfo) => void): void {
    this.once("ended", listener);
  }

  private async onPickup(): Promise<void> {
    this.pickedUp = true;
    this.clearRingTimer();
    this.setState("answering");
    const { sip, media, log } = this.o;
    const offer = sip.remoteSdp!;
    media.setRemote(readRemoteMedia(offer));
    const answer = media.answer(offer);
    media.start();
    this.pbx = new PbxLeg(sip, media, log, this.o.mediaTimeoutMs);
    this.media.bridge(this.pbx);
    this.watchTransfers(this.pbx);
    // Counted from pickup: a call whose consumer media never comes must not stay up silently.
    this.media.startWatchdog("since the consumer picked up (Meta's media_update after pickup never brought the consumer's media)");
    log.info("consumer picked up; answering the PBX");
    // accept() resolves on the ACK; the call goes on meanwhile (the queue is not held by it).
    sip.accept(answer).then(
      (acked) => {
        if (!acked) void this.queue.push(() => this.endBoth("error", "the PBX never acknowledged our 200 OK"));
      },
      (err: unknown) => void this.queue.push(() => this.endBoth("error", `answering the PBX failed: ${(err as Error).message}`)),
    );
    await this.maybeActive();
  }

  /** Active once the consumer picked up, DTLS is up, and (Messenger) Meta's pickup re-offer has been applied. */
  private async maybeActive(): Promise<void> {
    if (this._state !== "answering") return;
    if (this.o.leg.state !== "connected") return;
    if (this.o.signalling.mediaNeedsPickupReoffer && this.media.version === 0) return;
    this.setState("active");
    this.media.startFlowing();
    this.o.log.info({ setupMs: Date.now() - this.startedAt }, "call active");
  }

  pbxDialog(): PbxDialogInfo | undefined {
    if (this._state !== "active") return undefined;
    const id = this.transferredTo ? this.transferredTo.dialogId : this.o.sip.dialogId;
    return id === undefined ? undefined : { ...id, hosts: this.o.transfers.pbxHosts };
  }

  replaceParty(party: TransferredParty): Promise<void> {
    return this.queue.push(() => this.switchTo(party));
  }

  private watchTransfers(far: FarMedia): void {
    far.on("refer", (request) => void this.onRefer(request));
  }

  private onRefer(request: SipReferRequest): Promise<void> {
    return this.o.transfers.handle(request, {
      active: this._state === "active",
      ring: this.ringInfo(),
      log: this.o.log,
      inQueue: (step) => this.queue.push(step),
      switchTo: (party) => this.switchTo(party),
      end: (detail) => this.finish("completed-target-hangup", detail, { tellMeta: true }),
    });
  }

  private async switchTo(party: TransferredParty): Promise<void> {
    if (this.isEnded()) {
      await party.target.hangup("the call ended during the transfer");
      return;
    }
    const previous = this.transferredTo;
    this.transferredTo = party.target;
    party.target.on("ended", (detail) => {
      if (!this.o.transfers.partyLeft()) void this.queue.push(() => this.finish("completed-target-hangup", detail, { tellMeta: true }));
    });
    this.watchTransfers(party.far);
    this.media.replaceFar(party.far);
    if (previous) await previous.hangup("transferred");
    else {
      this.o.sip.hangup().catch((err: unknown) => this.o.log.debug({ err }, "SIP hangup error"));
      await this.pbx?.close();
    }
    this.o.log.info("transfer complete: the consumer is with the new party");
  }

  private async onPbxCancel(): Promise<void> {
    if (this.isEnded()) return;
    // The SIP layer already answered 200 and 487; the consumer must stop ringing.
    await this.finish("pbx-cancelled", "CANCEL from the PBX", { tellMeta: this._state !== "checking" && this._state !== "connecting" });
  }

  private async onPbxEnded(reason: string): Promise<void> {
    if (this.isEnded()) return;
    await this.finish("completed-target-hangup", `SIP dialog ended (${reason})`, { tellMeta: true });
  }

  private async endBoth(outcome: CallOutcome, detail: string): Promise<void> {
    if (this.isEnded()) return;
    if (!this.pickedUp && outcome === "consumer-no-answer") {
      await this.refuse({ status: 480, reason: "Consumer Did Not Answer" }, outcome, detail, true);
      return;
    }
    if (!this.pickedUp) {
      await this.refuse({ status: 500, reason: "Call Failed" }, outcome, detail, this._state !== "checking");
      return;
    }
    await this.finish(outcome, detail, { tellMeta: true });
  }

  /** Before pickup: a final SIP response that says why, and the call ended at Meta if it exists there. */
  private async refuse(
    response: { status: number; reason: string },
    outcome: CallOutcome,
    detail: string,
    tellMeta = false,
  ): Promise<void> {
    if (this.isEnded()) return;
    this.o.log.info({ status: response.status, reason: response.reason, detail }, "agent's call refused");
    this.o.sip.reject(response.status, response.reason);
    await this.finish(outcome, detail, { tellMeta });
  }

  private async finish(outcome: CallOutcome, detail: string, opts: { tellMeta: boolean }): Promise<void> {
    if (this.isEnded()) return;
    this.setState("ended");
    this.clearRingTimer();
    this.media.close();
    const { signalling, leg, media, sip, log } = this.o;
    if (opts.tellMeta && this.metaCallId !== undefined) {
      await signalling.terminate(this.metaCallId).catch((e: unknown) => log.warn({ err: e }, "could not end the call at Meta"));
    }
    // The BYE's transaction completes on its own (RFC 3261 §15.1.1): media is released at once.
    sip.hangup().catch((err: unknown) => log.debug({ err }, "SIP hangup error"));
    await Promise.allSettled([leg.close(), this.pbx ? this.pbx.close() : media.close(), this.transferredTo?.hangup(detail)]);
    this.queue.close();
    this.emit("ended", callEndRecord({ callId: this._callId, platform: this.o.signalling.platform, businessId: this.o.signalling.businessId, outcome, detail, startedAt: this.startedAt, mediaFlowed: this.media.mediaFlowed, leg, pbx: this.pbxMediaStats(), log }));
    this.removeAllListeners();
  }

  /** Who a transfer's new party is told the caller is. */
  private ringInfo(): RingInfo {
    return { callId: this._callId, psid: this.o.psid };
  }

  private failFromError(err: unknown): void {
    if (this.isEnded()) return;
    this.o.log.error({ err }, "call step failed");
    void this.endBoth("error", err instanceof Error ? err.message : String(err));
  }

  private clearRingTimer(): void {
    if (this.ringTimer) clearTimeout(this.ringTimer);
    this.ringTimer = undefined;
  }

  private isEnded(): boolean {
    return this._state === "ended";
  }

  private setState(s: OutboundCallState): void {
    if (this._state === s) return;
    this._state = s;
    this.o.log.debug({ state: s }, "call state");
    this.emit("state", s);
  }
}

/** A Graph API failure as the SIP final response an agent's phone can show. */
export function sipStatusForGraphError(err: unknown): { status: number; reason: string } {
  if (!(err instanceof GraphApiError)) return { status: 500, reason: "Gateway Error" };
  if (err.kind === "timeout") return { status: 504, reason: "Meta Did Not Answer" };
  if (err.kind === "network") return { status: 503, reason: "Meta Unreachable" };
  switch (err.errorClass) {
    case "permission":
      return { status: 403, reason: "Consumer Has Not Granted Call Permission" };
    case "rate-limit":
      return { status: 503, reason: "Meta Rate Limit" };
    case "invalid-sdp":
      return { status: 488, reason: "Meta Refused The Media Offer" };
    case "auth":
      return { status: 503, reason: "Page Token Refused By Meta" };
    case "call-gone":
      return { status: 480, reason: "Call No Longer Exists" };
    default:
      return { status: 502, reason: "Meta Refused The Call" };
  }
}
