import type { Logger } from "pino";
import { LogThrottle } from "../log.js";
import type { EventDeduper } from "../meta/dedupe.js";
import { isStaleConnect } from "../meta/dedupe.js";
import { dedupeKey, type ConnectEvent, type MessengerCallEvent } from "../meta/webhook.js";
import type { MessengerDelivery, WebhookDelivery, WhatsAppDelivery } from "../meta/webhook-delivery.js";
import { whatsAppDedupeKey, type WhatsAppCallEvent, type WhatsAppConnectEvent } from "../meta/whatsapp-webhook.js";
import type { WhatsAppGraphClient } from "../meta/whatsapp-client.js";
import { MessengerInbound, WhatsAppInbound, type InboundSignalling, type MetaCallControl } from "./inbound-signalling.js";
import { MessengerOutbound, WhatsAppOutbound, type MetaOutboundControl, type OutboundSignalling } from "./outbound-signalling.js";
import { readRemoteMedia, type RemoteMedia } from "../../sip/sdp.js";
import type { IncomingSipCall } from "../../sip/signaling.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import { InboundCall } from "./inbound-call.js";
import type { MetaCall } from "./meta-call.js";
import type { CallBirth } from "../observe/call-monitor.js";
import { OutboundCall } from "./outbound-call.js";
import type { PbxMedia } from "./pbx-media.js";
import { SdesNegotiator, type SrtpMode } from "./pbx-srtp.js";
import type { CallRegistry } from "./registry.js";
import type { SipIngressPolicy } from "./sip-ingress.js";
import { AnsweredParty } from "./answered-party.js";
import { CallTransfers, type TransferCounts } from "./call-transfer.js";
import { PbxLeg } from "./pbx-leg.js";
import type { ReferPolicy } from "./refer-policy.js";
import type { CallTarget, RingInfo } from "./target.js";
import type { KeyExchange } from "../meta/platform.js";
import { READ_HEADERS } from "./read-headers.js";

/** How long a webhook for a not-yet-known call id is kept (connect's response may be slower). */
const EARLY_EVENT_MS = 10_000;

/** A WhatsApp business number the gateway answers and calls from. */
export interface WhatsAppNumber {
  phoneNumberId: string;
  client: WhatsAppGraphClient;
  /** What its consumers' calls ring; the gateway's SIP target when absent. */
  sipTarget?: string;
  /** The WhatsApp Business Account it must belong to; any when absent. */
  wabaId?: string;
  /** The number's `srtp_key_exchange_protocol` at Meta. */
  keyExchange: KeyExchange;
}

/** A Messenger Page the gateway answers and calls from. */
export interface MessengerPage {
  pageId: string;
  /** Its Graph client. */
  meta: MetaCallControl & MetaOutboundControl;
  /** What its consumers' calls ring; the gateway's SIP target when absent. */
  sipTarget?: string;
}

export interface CallManagerOptions {
  /** Messenger Pages by Page id (none on a WhatsApp-only gateway); the first also places agents' calls by default. */
  pages: ReadonlyMap<string, MessengerPage>;
  /** WhatsApp numbers by phone-number id; the first also places agents' calls by default. */
  whatsApp?: ReadonlyMap<string, WhatsAppNumber>;
  registry: CallRegistry;
  deduper: EventDeduper;
  /** The leg toward Meta: DTLS-SRTP over ICE, or SDES-keyed SRTP for WhatsApp numbers set to SDES. */
  createLeg: (callId: string, log: Logger, keyExchange?: KeyExchange) => MetaMediaLeg;
  /**
   * What a consumer's call rings (`route`: a number's own SIP target), or (`to`) a transfer's new
   * party.
   */
  createTarget: (callId: string, to?: { uri: string; headers: Record<string, string> }, route?: string) => CallTarget;
  /** Whether and where REFERs are followed. */
  transferPolicy: ReferPolicy;
  /** Host of the SIP target: where a consumer's call's REFERs may go by default. */
  targetHost: string | undefined;
  log: Logger;
  acceptTimeoutMs: number;
  connectTimeoutMs: number;
  mediaTimeoutMs: number;
  maxConcurrent: number;
  /** Agents' calls to consumers. */
  ingress: SipIngressPolicy;
  createPbxMedia: (log: Logger, sendInfo: (contentType: string, body: string) => Promise<unknown>) => Promise<PbxMedia>;
  ringTimeoutMs: number;
  requestPermission: boolean;
  /** SIP_SRTP: an agent's offer it cannot meet is refused before the consumer rings. Default off. */
  srtp?: SrtpMode;
  /** Told of every call as it is created (monitoring: live list, events, setup timings). */
  onCallCreated?: (call: MetaCall, birth: CallBirth) => void;
  /** False while new calls must be refused for a reason outside this process (a cluster without Redis). */
  admitting?: () => boolean;
}

export interface CallManagerStats {
  eventsHandled: number;
  duplicatesDropped: number;
  staleDropped: number;
  unknownCallEvents: number;
  otherPageDropped: number;
  admissionRejected: number;
  sipRefused: number;
  transfers: TransferCounts;
  /** Times a PBX put a call on hold, counted when the call ends. */
  holds: number;
  /** Session refreshes (RFC 4028) that succeeded, counted when the call ends. */
  sessionRefreshes: number;
}

/**
 * Turns Messenger webhook events into call actions: a connect starts a call, a terminate or
 * media_update goes to the call it names, in the call's own serial queue. Retries, duplicates and
 * stale deliveries stop here.
 */
export class CallManager {
  private draining = false;
  private readonly counters: CallManagerStats = {
    eventsHandled: 0,
    duplicatesDropped: 0,
    staleDropped: 0,
    unknownCallEvents: 0,
    otherPageDropped: 0,
    admissionRejected: 0,
    sipRefused: 0,
    transfers: { succeeded: 0, failed: 0, refused: 0 },
    holds: 0,
    sessionRefreshes: 0,
  };
  /**
   * Webhooks for a call id not known yet. An agent's call learns its id from connect's response,
   * and Meta's call_status may overtake that response; such events wait here briefly.
   */
  private readonly early = new Map<string, { events: (MessengerCallEvent | WhatsAppCallEvent)[]; until: number }>();
  /** Refused agent INVITEs are logged once a second per reason: a flood must not flood the log. */
  private readonly refusalLog = new LogThrottle();

  constructor(private readonly o: CallManagerOptions) {}

  /** Dispatches every event of one delivery; never throws (a bad event is logged and skipped). */
  handleWebhook(parsed: WebhookDelivery): void {
    if (parsed.platform === "whatsapp") {
      this.handleWhatsApp(parsed);
      return;
    }
    this.handleMessenger(parsed);
  }

  private handleMessenger(parsed: MessengerDelivery): void {
    for (const r of parsed.rejected) this.o.log.warn({ item: r.index, reason: r.reason }, "webhook item rejected");
    for (const event of parsed.events) {
      try {
        this.handleEvent(event);
      } catch (err) {
        this.o.log.error({ err, callId: event.callId, event: event.event }, "webhook event failed");
      }
    }
    for (const reply of parsed.permissionReplies) {
      this.o.log.info({ psid: reply.psid, response: reply.response }, "call permission reply");
    }
  }

  /** Stops taking new calls; live calls go on. */
  startDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  private get admitsNewCalls(): boolean {
    return this.o.admitting?.() ?? true;
  }

  get atCapacity(): boolean {
    return this.o.registry.size >= this.o.maxConcurrent;
  }

  /** Ends every live call on both legs and waits for them to finish. */
  async hangupAll(reason: string): Promise<void> {
    await Promise.allSettled(this.o.registry.all().map((c) => c.hangup(reason)));
  }

  stats(): CallManagerStats {
    return { ...this.counters, transfers: { ...this.counters.transfers } };
  }

  private handleEvent(event: MessengerCallEvent): void {
    const log = this.o.log;
    const page = this.o.pages.get(event.pageId);
    if (!page) {
      this.counters.otherPageDropped++;
      log.warn({ callId: event.callId, pageId: event.pageId }, "event for another Page dropped");
      return;
    }
    if (!this.o.deduper.firstSeen(dedupeKey(event))) {
      this.counters.duplicatesDropped++;
      log.debug({ callId: event.callId, event: event.event }, "duplicate webhook event dropped");
      return;
    }
    this.counters.eventsHandled++;
    switch (event.event) {
      case "connect":
        this.onConnect(event, page);
        return;
      case "terminate":
      case "media_update":
      case "call_status": {
        const call = this.o.registry.get(event.callId);
        if (!call) return this.unknown(event);
        this.deliver(call, event);
        return;
      }
    }
  }

  private handleWhatsApp(parsed: WhatsAppDelivery): void {
    for (const r of parsed.rejected) this.o.log.warn({ item: r.index, reason: r.reason, platform: "whatsapp" }, "webhook item rejected");
    for (const event of parsed.events) {
      try {
        this.handleWhatsAppEvent(event);
      } catch (err) {
        this.o.log.error({ err, callId: event.callId, event: event.event }, "webhook event failed");
      }
    }
    for (const reply of parsed.permissionReplies) {
      this.o.log.info({ phoneNumberId: reply.phoneNumberId, response: reply.response, permanent: reply.permanent }, "call permission reply");
    }
  }

  private handleWhatsAppEvent(event: WhatsAppCallEvent): void {
    const log = this.o.log;
    const number = this.o.whatsApp?.get(event.phoneNumberId);
    if (!number || (number.wabaId !== undefined && number.wabaId !== event.wabaId)) {
      this.counters.otherPageDropped++;
      // A WABA's other numbers share the webhook: their calls are logged once a second, not each.
      this.refusalLog.run("other-number", (suppressed) =>
        log.warn({ callId: event.callId, phoneNumberId: event.phoneNumberId, wabaId: event.wabaId, suppressed }, "event for a WhatsApp number not configured dropped"),
      );
      return;
    }
    if (!this.o.deduper.firstSeen(whatsAppDedupeKey(event))) {
      this.counters.duplicatesDropped++;
      log.debug({ callId: event.callId, event: event.event }, "duplicate webhook event dropped");
      return;
    }
    this.counters.eventsHandled++;
    if (event.event === "connect" && event.direction === "user_initiated") {
      this.onWhatsAppConnect(event, number);
      return;
    }
    const call = this.o.registry.get(event.callId);
    if (!call) return this.unknown(event);
    this.deliver(call, event);
  }

  private deliver(call: MetaCall, event: MessengerCallEvent | WhatsAppCallEvent): void {
    if ("platform" in event) {
      switch (event.event) {
        case "terminate":
          void call.onMetaTerminate(event.status, describeErrors(event.errors));
          return;
        case "status":
          if (isActedOnStatus(event.status)) void call.onMetaCallStatus(event.status);
          else this.o.log.info({ callId: event.callId, status: event.status }, "call status not acted on");
          return;
        case "connect":
          // Business-initiated: the consumer's answer to our connect offer.
          if (call.onMetaAnswer) void call.onMetaAnswer(event.sdp);
          return;
      }
    }
    switch (event.event) {
      case "terminate":
        void call.onMetaTerminate(event.status);
        return;
      case "media_update":
        void call.onMetaMediaUpdate(event.version, event.offer.sdp);
        return;
      case "call_status":
        void call.onMetaCallStatus(event.status);
        return;
      case "connect":
        return;
    }
  }

  /** An agent's INVITE: checked against the ingress policy before anything reaches Meta. */
  handleSipInvite(invite: IncomingSipCall): void {
    if (invite.replaces) {
      void this.onReplacingInvite(invite, invite.replaces.callId);
      return;
    }
    const log = this.o.log.child({ sipCallId: invite.sipCallId, direction: "outbound" });
    const decision = this.o.ingress.check(invite);
    if ("status" in decision) {
      if (decision.challenge) {
        log.info({ source: invite.source.address, detail: decision.detail }, "agent call challenged for credentials");
      } else {
        this.counters.sipRefused++;
        const { status, detail, limit } = decision;
        this.refusalLog.run(limit ?? String(status), (suppressed) =>
          log.warn({ source: invite.source.address, status, detail, limit, suppressed }, "agent call refused"),
        );
      }
      invite.reject(decision.status, decision.reason, decision.headers);
      return;
    }
    if (!invite.remoteSdp) {
      this.counters.sipRefused++;
      log.warn("agent call without an SDP offer refused");
      invite.reject(488, "SDP Offer Required");
      return;
    }
    // Read before anything reaches Meta: a consumer must never ring for a call that cannot carry audio.
    try {
      new SdesNegotiator(this.o.srtp ?? "off").accept(readRemoteMedia(invite.remoteSdp).audio.security);
    } catch (err) {
      this.counters.sipRefused++;
      log.warn({ err: (err as Error).message }, "agent call refused: unusable SDP offer");
      invite.reject(488, "Not Acceptable Here");
      return;
    }
    if (this.draining || this.atCapacity || !this.admitsNewCalls) {
      this.counters.admissionRejected++;
      invite.reject(503, "Service Unavailable");
      return;
    }
    const signalling = this.outboundSignalling(decision, invite);
    if (!signalling) {
      this.counters.sipRefused++;
      const missing = decision.whatsapp ? "WhatsApp number" : "Messenger Page";
      log.warn({ dialled: decision.psid }, `agent call refused: no ${missing} to call from`);
      invite.reject(404, decision.whatsapp ? "No WhatsApp Number Configured" : "No Messenger Page Configured");
      return;
    }
    void this.startOutbound(invite, decision.psid, signalling, log.child({ psid: decision.psid, platform: signalling.platform }));
  }

  /**
   * An INVITE with Replaces (RFC 3891) naming the SIP dialog of one of our calls: an attended
   * transfer completed by the PBX. The new party is answered and the consumer moved to it; the
   * replaced dialog is released. Taken only from the replaced call's own PBX or an allowed source:
   * knowing a dialog's identifiers is not enough to take a call over.
   */
  private async onReplacingInvite(invite: IncomingSipCall, replacedCallId: string): Promise<void> {
    const call = this.o.registry.all().find((c) => c.pbxDialog()?.callId === replacedCallId);
    const log = this.o.log.child({ sipCallId: invite.sipCallId, replaces: replacedCallId, ...(call ? { callId: call.callId } : {}) });
    const source = invite.source.address.replace(/^::ffff:/, "");
    if (!call) {
      log.warn("INVITE with Replaces for no call of ours refused");
      invite.reject(481, "Call/Transaction Does Not Exist");
      return;
    }
    if (!call.pbxDialog()!.hosts.includes(source) && !this.o.ingress.allowsSource(source)) {
      this.counters.sipRefused++;
      log.warn({ source }, "INVITE with Replaces from outside the call's PBX refused");
      invite.reject(403, "Forbidden");
      return;
    }
    const offer = invite.remoteSdp;
    let remote: RemoteMedia;
    try {
      remote = readRemoteMedia(offer ?? "");
    } catch (err) {
      log.warn({ err: (err as Error).message }, "INVITE with Replaces refused: unusable SDP offer");
      invite.reject(488, "Not Acceptable Here");
      return;
    }
    let media: PbxMedia;
    try {
      media = await this.o.createPbxMedia(log, (contentType, body) => invite.sendInfo(contentType, body));
    } catch (err) {
      log.error({ err }, "no media ports for a replacing INVITE");
      invite.reject(503, "No Media Ports");
      return;
    }
    media.setRemote(remote);
    const answer = media.answer(offer!);
    media.start();
    const leg = new PbxLeg(invite, media, log, this.o.mediaTimeoutMs);
    const party = new AnsweredParty(invite, leg);
    invite.accept(answer).catch((err: unknown) => log.warn({ err }, "answering the replacing INVITE failed"));
    log.info("attended transfer: the consumer moves to the replacing party");
    await call.replaceParty({ target: party, far: leg });
  }

  /**
   * Messenger for a PSID, from the Page the INVITE names in X-Meta-Page-Id when it is one of ours,
   * else the first configured; WhatsApp for a number or user id, likewise by
   * X-WhatsApp-Phone-Number-Id.
   */
  private outboundSignalling(decision: { psid: string; whatsapp?: { phone?: string; userId?: string } }, invite: IncomingSipCall): OutboundSignalling | undefined {
    if (!decision.whatsapp) {
      const page = pick(this.o.pages, invite.header(READ_HEADERS.pageId));
      return page && new MessengerOutbound(decision.psid, page.pageId, page.meta);
    }
    const number = pick(this.o.whatsApp ?? new Map<string, WhatsAppNumber>(), invite.header(READ_HEADERS.phoneNumberId));
    return number && new WhatsAppOutbound(decision.whatsapp, number.client, number.keyExchange);
  }

  private async startOutbound(invite: IncomingSipCall, psid: string, signalling: OutboundSignalling, log: Logger): Promise<void> {
    let media: PbxMedia;
    let call: OutboundCall;
    try {
      media = await this.o.createPbxMedia(log, (contentType, body) => invite.sendInfo(contentType, body));
    } catch (err) {
      log.error({ err }, "no media ports for an agent call");
      invite.reject(503, "No Media Ports");
      return;
    }
    try {
      call = new OutboundCall({
        sip: invite,
        psid,
        leg: this.o.createLeg(`sip:${invite.sipCallId}`, log, signalling.keyExchange),
        media,
        signalling,
        log,
        register: (callId, c) => {
          this.o.registry.add(c, callId);
          c.whenEnded(() => this.countAtEnd(c));
          const early = this.early.get(callId);
          this.early.delete(callId);
          for (const e of early?.events ?? []) this.deliver(c, e);
        },
        ringTimeoutMs: this.o.ringTimeoutMs,
        mediaTimeoutMs: this.o.mediaTimeoutMs,
        requestPermission: this.o.requestPermission,
        // The agent's PBX is where its INVITE came from.
        transfers: this.transfersFor(`sip:${invite.sipCallId}`, [invite.source.address]),
      });
    } catch (err) {
      // Nothing reached Meta yet: free the ports and answer the agent now, not after the INVITE timer.
      log.error({ err }, "agent call could not be set up");
      await media.close();
      invite.reject(500, "Server Internal Error");
      return;
    }
    log.info({ from: invite.from.uri }, "agent call received");
    this.o.onCallCreated?.(call, { psid, sipCallId: invite.sipCallId, sipPeer: invite.from.uri, states: (l) => call.on("state", l) });
    await call.start();
  }

  private onConnect(event: ConnectEvent, page: MessengerPage): void {
    if (event.direction !== "user_initiated") {
      // Meta announces the calls our agents place; the call itself is driven by connect's response.
      this.o.log.debug({ callId: event.callId }, "connect webhook for an agent's call");
      return;
    }
    this.startConsumerCall({
      callId: event.callId,
      timestamp: event.timestamp,
      ring: { callId: event.callId, psid: event.from, pageId: page.pageId },
      businessId: page.pageId,
      sipTarget: page.sipTarget,
      keyExchange: "DTLS",
      reject: () => page.meta.reject(event.callId),
      signalling: (log) => new MessengerInbound(event.callId, page.pageId, page.meta, log),
      log: this.o.log.child({ callId: event.callId }),
    });
  }

  /**
   * A WhatsApp consumer calls: Meta's offer is in the webhook. The call answers and pre-accepts it
   * before its target rings (InboundCall with WhatsAppInbound).
   */
  private onWhatsAppConnect(event: WhatsAppConnectEvent, number: WhatsAppNumber): void {
    const consumerId = event.consumer.phone !== undefined ? `+${event.consumer.phone}` : (event.consumer.userId ?? "");
    this.startConsumerCall({
      callId: event.callId,
      timestamp: event.timestamp,
      ring: { callId: event.callId, psid: consumerId, whatsapp: { ...event.consumer, phoneNumberId: number.phoneNumberId } },
      businessId: number.phoneNumberId,
      sipTarget: number.sipTarget,
      keyExchange: number.keyExchange,
      reject: () => number.client.reject(event.callId),
      signalling: (log) => new WhatsAppInbound(event.callId, event.sdp, number.client, log),
      log: this.o.log.child({ callId: event.callId, platform: "whatsapp" }),
    });
  }

  /**
   * A consumer's call, either platform: duplicates, stale deliveries and calls over the admission
   * limit stop here (the last refused at Meta); the rest start ringing their target.
   */
  private startConsumerCall(c: {
    callId: string;
    timestamp: number;
    ring: RingInfo;
    businessId: string;
    sipTarget: string | undefined;
    keyExchange: KeyExchange;
    reject: () => Promise<void>;
    signalling: (log: Logger) => InboundSignalling;
    log: Logger;
  }): void {
    const { log } = c;
    if (this.o.registry.knows(c.callId)) {
      this.counters.duplicatesDropped++;
      log.debug("connect for a known call dropped");
      return;
    }
    if (isStaleConnect(c, Date.now())) {
      this.counters.staleDropped++;
      log.warn({ timestamp: c.timestamp }, "stale connect dropped: the ring window has passed");
      return;
    }
    if (this.draining || this.atCapacity || !this.admitsNewCalls) {
      this.counters.admissionRejected++;
      log.warn({ draining: this.draining, active: this.o.registry.size, admitting: this.admitsNewCalls }, "call refused: not admitting calls");
      c.reject().catch((err: unknown) => log.warn({ err }, "reject failed"));
      return;
    }
    const callLog = log.child({ psid: c.ring.psid, direction: "inbound" });
    const call = new InboundCall({
      callId: c.callId,
      ring: c.ring,
      leg: this.o.createLeg(c.callId, callLog, c.keyExchange),
      target: this.o.createTarget(c.callId, undefined, c.sipTarget),
      transfers: this.transfersFor(c.callId, this.o.targetHost ? [this.o.targetHost] : []),
      signalling: c.signalling(callLog),
      log: callLog,
      acceptTimeoutMs: this.o.acceptTimeoutMs,
      connectTimeoutMs: this.o.connectTimeoutMs,
      mediaTimeoutMs: this.o.mediaTimeoutMs,
    });
    this.o.registry.add(call);
    call.whenEnded(() => this.countAtEnd(call));
    this.o.onCallCreated?.(call, { psid: c.ring.psid, businessId: c.businessId, states: (l) => call.on("state", l) });
    callLog.info("consumer call received");
    void call.start();
  }

  /** What a call's SIP side did, added to the gateway's counters once it ended. */
  private countAtEnd(call: MetaCall): void {
    const s = call.pbxMediaStats();
    this.counters.holds += s?.holds ?? 0;
    this.counters.sessionRefreshes += s?.sessionRefreshes ?? 0;
  }

  private transfersFor(callId: string, pbxHosts: string[]): CallTransfers {
    return new CallTransfers(
      { policy: this.o.transferPolicy, pbxHosts, createTarget: (uri, headers) => this.o.createTarget(callId, { uri, headers }) },
      this.counters.transfers,
    );
  }

  private unknown(event: MessengerCallEvent | WhatsAppCallEvent): void {
    const now = Date.now();
    for (const [id, e] of this.early) if (e.until < now) this.early.delete(id);
    if (this.o.registry.knows(event.callId)) {
      this.counters.unknownCallEvents++;
      this.o.log.debug({ callId: event.callId, event: event.event }, "event for an ended call");
      return;
    }
    const entry = this.early.get(event.callId) ?? { events: [], until: now + EARLY_EVENT_MS };
    if (entry.events.length < 16) entry.events.push(event);
    this.early.set(event.callId, entry);
    this.o.log.debug({ callId: event.callId, event: event.event }, "event for no live call kept briefly");
  }
}

function isActedOnStatus(status: string): status is "ringing" | "accepted" | "rejected" {
  return status === "ringing" || status === "accepted" || status === "rejected";
}

/** The entry an INVITE names in a header, when it is one of ours; else the first configured. */
function pick<T>(entries: ReadonlyMap<string, T>, named: string | undefined): T | undefined {
  const byName = named === undefined ? undefined : entries.get(named.trim());
  return byName ?? entries.values().next().value;
}

/** WhatsApp's `errors[]` of a terminate webhook, for the end record: `138021 Media receive timeout`. */
function describeErrors(errors: readonly { code?: number; message?: string }[]): string | undefined {
  if (errors.length === 0) return undefined;
  return errors.map((e) => [e.code, e.message].filter((p) => p !== undefined).join(" ")).join("; ");
}
