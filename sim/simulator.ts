import { forgetEnded } from "./call-lifecycle.js";
import { callIdOf, validateCallMetrics } from "./call-metrics.js";
import { CallRecord } from "./call-record.js";
import { businessActionError, mediaVersionError, tracksOnlyVersionError, type CallEndReason } from "./call-rules.js";
import type { VideoSendOptions } from "./consumer-video.js";
import type { ConsumerPeer } from "./consumer-peer.js";
import { SimConsumer, type ConsumerOptions } from "./consumer.js";
import { ConsumerClosedError, ConsumerNegotiationError, SimStateError } from "./errors.js";
import { graphErrors, GraphApiError } from "./graph-errors.js";
import type { CallAction, CallsRequest, MediaUpdateRequest, SessionOffer, TrackSpec } from "./graph-request.js";
import {
  GraphServer,
  type CallPermissionsResponse,
  type CallsSuccess,
  type GraphBackend,
  type GraphFailure,
  type GraphFailureKey,
  type GraphRequestRecord,
  type PermissionStatus,
  type SdpPayload,
} from "./graph-server.js";
import { newCallId, newFbtraceId, newPsid } from "./ids.js";
import { LOOPBACK_HOST } from "./loopback-ice.js";
import {
  collisionAnswer,
  CollisionSwitch,
  consumerChangeKind,
  type CollisionOptions,
  type CollisionRecord,
  type ConsumerChange,
} from "./media-collision.js";
import { validateBusinessOffer, type OfferRules } from "./sdp-validation.js";
import { parseSdp, type SdpDocument } from "./sdp-text.js";
import { SimCall, type AnswerOptions, type ConsumerActions } from "./sim-call.js";
import { LoopbackStunServer } from "./stun-server.js";
import {
  callStatusEvent,
  connectEvent,
  mediaUpdateEvent,
  terminateEvent,
  type CallEvent,
  type TerminateStatus,
} from "./webhook-events.js";
import { WebhookSender, type DeliveryOptions, type SignatureMode } from "./webhook-sender.js";
import type { WhatsAppCall } from "./wa-call.js";
import { WhatsAppGraph } from "./wa-graph.js";
import { WhatsAppSimulator, type PlaceWhatsAppCallOptions, type WhatsAppOptions } from "./wa-simulator.js";

export interface MetaSimulatorOptions {
  appSecret: string;
  pageId: string;
  pageAccessToken: string;
  /**
   * The gateway's webhook endpoint, e.g. http://127.0.0.1:PORT/webhooks/meta. May be left out
   * and set with setWebhookUrl() once the gateway (configured with graphUrl) is listening.
   */
  webhookUrl?: string;
  /** Where the Graph API listens; loopback only. */
  host?: string;
  port?: number;
  graphVersion?: string;
  /** Time the business has to accept a consumer call (Meta: 60 s); then a terminate Failed webhook. */
  acceptWindowMs?: number;
  /** How long an outbound call rings before it is reported as not answered. */
  ringTimeoutMs?: number;
  /** Outbound calls: the consumer picks up after this long, or only on SimCall.answer() when "manual". */
  outboundPickup?: { afterMs: number } | "manual";
  /** Pause between Meta-originated events, e.g. between our terminate and its webhook. */
  eventDelayMs?: number;
  /** Meta-style immediate re-deliveries of a webhook that did not get a 200. */
  webhookRetries?: number;
  /** Applied to every webhook the simulator sends on its own (e.g. `{ duplicates: 1 }`). */
  webhookDelivery?: DeliveryOptions;
  webhookTimeoutMs?: number;
  /** Extra delay before every Graph answer. */
  graphLatencyMs?: number;
  /** Permission of PSIDs not set with setPermission(). */
  defaultPermission?: PermissionStatus;
  /**
   * How accept returns the SDPs: objects `{sdp_type, sdp}` (OpenAPI, connect and media_update
   * guides) or bare strings (the accept guide's sample).
   */
  acceptSdpForm?: "object" | "string";
  /** Include Meta's split-transceiver re-offer in the accept response (Meta does). */
  acceptRenegotiation?: boolean;
  offerRules?: Partial<OfferRules>;
  /** Defaults for every consumer (per-call toneHz overrides). */
  consumer?: Omit<ConsumerOptions, "stunUrl">;
  /**
   * WhatsApp business numbers served beside the Page (Graph `/{phone-number-id}/…`); their webhooks go to
   * the same webhook URL, signed with the same app secret, as one app subscribed to both products.
   */
  whatsapp?: WhatsAppOptions;
}

export interface PlaceCallOptions {
  psid?: string;
  toneHz?: number;
  /** The consumer calls with the camera on: the accept's re-offer then carries video (appendix §5.5 layout). */
  video?: VideoSendOptions;
  /** Delivery switches for the connect webhook (signature, duplicates, delay...). */
  delivery?: DeliveryOptions;
  /**
   * Plays the consumer with this peer instead of a new werift SimConsumer (`toneHz` then does not
   * apply); the call owns it from here and closes it when it ends. See sim/browser-consumer.ts.
   */
  consumer?: ConsumerPeer;
}

const DEFAULTS = {
  host: LOOPBACK_HOST,
  port: 0,
  graphVersion: "v26.0",
  acceptWindowMs: 60_000,
  ringTimeoutMs: 60_000,
  eventDelayMs: 20,
  webhookRetries: 2,
  webhookTimeoutMs: 5_000,
  defaultPermission: "has_permission" as PermissionStatus,
  permissionLifetimeMs: 7 * 24 * 3600 * 1000,
};

/**
 * Meta's side of Messenger business calling on loopback: the Graph API for Page calls, signed
 * webhooks and one ice-lite WebRTC consumer per call. It follows Meta's behaviour where it is
 * awkward too: a terminate webhook after the business's own terminate/reject, a 60 s accept
 * window ending in terminate Failed, split transceivers after accept, versioned media updates.
 */
export class MetaSimulator {
  private readonly records = new Map<string, CallRecord>();
  private readonly facades = new Map<string, SimCall>();
  private readonly permissions = new Map<string, PermissionStatus>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private graph!: GraphServer;
  private stun: LoopbackStunServer | undefined;
  private stopped = false;
  private wa: WhatsAppSimulator | undefined;
  readonly webhooks: WebhookSender;
  private readonly offerRules: OfferRules;
  /** What the Graph server calls into; kept off the public surface of the simulator. */
  private readonly backend: GraphBackend = {
    handleCalls: (request) => this.handleCalls(request),
    callPermissions: (psid) => this.callPermissions(psid),
    sendMessage: (body) => this.sendMessage(body),
    callMetrics: (body) => this.callMetrics(body),
  };
  private readonly collisionSwitch = new CollisionSwitch();
  private readonly collisionLog: CollisionRecord[] = [];
  /** Call permission requests sent per PSID, with their times (Meta allows 2 per thread per day). */
  private readonly permissionRequests = new Map<string, number[]>();
  /** What SimCall calls into when a test makes the consumer act. */
  private readonly consumerActions: ConsumerActions = {
    hangup: (record, status, delivery) => this.consumerHangsUp(record, status, delivery),
    answer: (record, options) => this.consumerAnswers(record, options),
    decline: (record) => this.consumerDeclines(record),
    sendMediaUpdate: (record, delivery) => this.consumerUpdatesMedia(record, delivery),
    startVideo: (record, options, delivery) => this.consumerStartsVideo(record, options, delivery),
    stopVideo: (record, delivery) => this.consumerStopsVideo(record, delivery),
  };

  private constructor(private readonly options: MetaSimulatorOptions) {
    this.webhooks = new WebhookSender({
      url: options.webhookUrl,
      appSecret: options.appSecret,
      pageId: options.pageId,
      graphVersion: options.graphVersion ?? DEFAULTS.graphVersion,
      timeoutMs: options.webhookTimeoutMs ?? DEFAULTS.webhookTimeoutMs,
    });
    this.offerRules = { requireCandidates: true, ...options.offerRules };
  }

  static async start(options: MetaSimulatorOptions): Promise<MetaSimulator> {
    const host = options.host ?? DEFAULTS.host;
    if (host !== LOOPBACK_HOST) throw new SimStateError(`the simulator only listens on ${LOOPBACK_HOST}, not ${host}`);
    const sim = new MetaSimulator(options);
    sim.stun = await LoopbackStunServer.start(host);
    try {
      sim.graph = await GraphServer.start(
        {
          host,
          port: options.port ?? DEFAULTS.port,
          pageId: options.pageId,
          pageAccessToken: options.pageAccessToken,
          latencyMs: options.graphLatencyMs,
        },
        sim.backend,
      );
    } catch (error) {
      await sim.stun.close();
      await sim.webhooks.close();
      throw error;
    }
    if (options.whatsapp) {
      const whatsapp = options.whatsapp;
      const wa = new WhatsAppSimulator(whatsapp, {
        send: (body, delivery) => sim.sendBody(body, delivery),
        stunUrl: () => sim.stunUrl,
        eventDelayMs: options.eventDelayMs ?? DEFAULTS.eventDelayMs,
        pageAccessToken: options.pageAccessToken,
        hasWebhookUrl: () => sim.webhooks.url !== undefined,
      });
      sim.wa = wa;
      sim.graph.extend(new WhatsAppGraph(wa.backend, (key) => sim.graph.takeFailure(key), () => whatsapp.permissionsApiRatePerSecond ?? 100));
    }
    return sim;
  }

  /** The WhatsApp side (numbers, calls, permissions, webhook batching); throws when no numbers were configured. */
  get whatsapp(): WhatsAppSimulator {
    if (!this.wa) throw new SimStateError("no WhatsApp numbers configured (MetaSimulator.start({ whatsapp }))");
    return this.wa;
  }

  /** A WhatsApp user calls a business number: Meta's offer goes out in a connect webhook. */
  placeWhatsAppCall(options: PlaceWhatsAppCallOptions = {}): Promise<WhatsAppCall> {
    this.assertRunning();
    return this.whatsapp.placeCall(options);
  }

  /** Base URL of the Graph API (the gateway's META_GRAPH_URL). */
  get graphUrl(): string {
    return this.graph.url;
  }

  get graphVersion(): string {
    return this.options.graphVersion ?? DEFAULTS.graphVersion;
  }

  /** A STUN responder on loopback for full ICE agents under test. */
  get stunUrl(): string {
    return this.stun?.url ?? `stun:${LOOPBACK_HOST}:3478`;
  }

  /** Every Graph API request received, in order. */
  get requests(): readonly GraphRequestRecord[] {
    return this.graph.requests;
  }

  /** Calls that have not ended. */
  activeCalls(): SimCall[] {
    return [...this.records.values()].filter((r) => r.phase !== "ended").map((r) => this.facade(r));
  }

  /** Every call the simulator has seen, ended ones included. */
  calls(): SimCall[] {
    return [...this.records.values()].map((r) => this.facade(r));
  }

  /** Forgets ended calls (their consumers' recordings included); long runs call it to keep memory flat. */
  forgetEndedCalls(): number {
    return forgetEnded(this.records, this.facades);
  }

  getCall(callId: string): SimCall | undefined {
    const record = this.records.get(callId);
    return record ? this.facade(record) : undefined;
  }

  setWebhookUrl(url: string): void {
    this.webhooks.setUrl(url);
  }

  setPermission(psid: string, status: PermissionStatus): void {
    this.permissions.set(psid, status);
  }

  /**
   * The next Graph request with this action (or to call_metrics) gets `failure` instead of being processed.
   * `/calls` actions are shared by both products; `pre_accept`, `call_permissions` and `messages` are
   * WhatsApp's. WhatsApp requests get the failure in the WhatsApp envelope (error_data).
   */
  failNext(action: GraphFailureKey, failure: GraphFailure): void {
    this.graph.failNext(action, failure);
  }

  /** The next request with this action takes effect at Meta, but its success reply arrives as `rewrite(body)`. */
  rewriteNextSuccess(action: CallAction, rewrite: (body: unknown) => unknown): void {
    this.graph.rewriteNextSuccess(action, rewrite);
  }

  /**
   * The next business media_update with an offer (on `options.callId`, or any call) crosses a change of the
   * consumer's own: Meta makes that change first (a new version, offered by media_update webhook) and answers
   * the business with a 200 without SDP (`no-sdp`) or the conflicting media status error (`error`). The
   * business then has to apply the webhook and retry from the new version.
   */
  collideNextMediaUpdate(options: CollisionOptions): void {
    this.collisionSwitch.arm(options);
  }

  /** Collisions that happened, in order. */
  get collisions(): readonly CollisionRecord[] {
    return this.collisionLog;
  }

  /** Delivers exact bytes as a webhook, signed, wrongly signed or unsigned. Resolves with the HTTP status. */
  sendRawWebhook(body: string, options: { signature?: SignatureMode } = {}): Promise<number> {
    return this.webhooks.sendRaw(body, { signature: options.signature ?? "valid", retries: 0 });
  }

  /** A consumer calls the Page: creates the consumer and delivers a signed connect webhook. */
  async placeCall(options: PlaceCallOptions = {}): Promise<SimCall> {
    this.assertRunning();
    if (this.webhooks.url === undefined) throw new SimStateError("set a webhook URL before placing calls");
    const psid = options.psid ?? newPsid();
    const record = this.newRecord(psid, "user_initiated", options.toneHz, options.consumer);
    if (options.video) await record.consumer.startVideo(options.video);
    this.scheduleOnCall(record, this.options.acceptWindowMs ?? DEFAULTS.acceptWindowMs, () => this.acceptWindowExpired(record));
    record.connectWebhookStatus = await this.deliver(
      connectEvent({ callId: record.id, pageId: this.options.pageId, psid, direction: "user_initiated", at: record.startedAt }),
      options.delivery,
    );
    return this.facade(record);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const closing: Promise<void>[] = [];
    for (const record of this.records.values()) {
      if (record.finish({ reason: "simulator-stopped", status: "Completed", at: Date.now() })) closing.push(record.consumer.close());
    }
    await Promise.allSettled(closing);
    await this.wa?.stop();
    await this.webhooks.close();
    await Promise.allSettled([...this.inFlight]);
    await this.graph.close();
    await this.stun?.close();
  }

  // ---- Graph API ---------------------------------------------------------------------------

  private async handleCalls(request: CallsRequest): Promise<CallsSuccess> {
    this.assertRunning();
    switch (request.action) {
      case "connect":
        return this.connect(request.to, request.session);
      case "accept":
        return this.accept(this.recordFor(request.callId), request.session);
      case "reject":
        return this.businessEnds(this.recordFor(request.callId), "reject");
      case "terminate":
        return this.businessEnds(this.recordFor(request.callId), "terminate");
      case "media_update":
        return this.businessMediaUpdate(this.recordFor(request.callId), request);
    }
  }

  /** Permission requests (`calling_optin`) the business sent to a consumer in the last 24 h. */
  permissionRequestsTo(psid: string): number {
    const dayAgo = Date.now() - 24 * 3600 * 1000;
    return (this.permissionRequests.get(psid) ?? []).filter((t) => t > dayAgo).length;
  }

  private sendMessage(body: unknown): { recipient_id: string; message_id: string } {
    const b = body as { recipient?: { id?: unknown }; message?: { attachment?: { type?: unknown; payload?: { template_type?: unknown } } } };
    const psid = typeof b?.recipient?.id === "string" ? b.recipient.id : undefined;
    if (!psid) throw graphErrors.invalidParameter("recipient.id is required");
    const attachment = b.message?.attachment;
    if (attachment?.type !== "template" || attachment.payload?.template_type !== "calling_optin") {
      throw graphErrors.invalidParameter("only the calling_optin template is simulated");
    }
    if (this.permissionRequestsTo(psid) >= 2) {
      throw graphErrors.invalidParameter("Call permission request limit reached: 2 per thread per day");
    }
    const times = this.permissionRequests.get(psid) ?? [];
    times.push(Date.now());
    this.permissionRequests.set(psid, times);
    return { recipient_id: psid, message_id: `m_${newFbtraceId()}` };
  }

  private callMetrics(body: unknown): { success: true } {
    const record = this.recordFor(callIdOf(body));
    const report = validateCallMetrics(body, { startedAt: record.startedAt, endedAt: record.end?.at, alreadyReported: record.metricsReport !== undefined });
    record.metricsReport = report;
    return { success: true };
  }

  private callPermissions(psid: string): CallPermissionsResponse {
    const status = this.permissions.get(psid) ?? this.options.defaultPermission ?? DEFAULTS.defaultPermission;
    const granted = status === "has_permission";
    return {
      permission: granted
        ? { status, expiration_time: Math.floor((Date.now() + DEFAULTS.permissionLifetimeMs) / 1000) }
        : { status },
      actions: [
        {
          action_name: "send_call_permission_request",
          can_perform_action: !granted && this.permissionRequestsTo(psid) < 2,
          limits: [{ time_period: "PT24H", max_allowed_per_user: 2, current_usage: this.permissionRequestsTo(psid) }],
        },
        { action_name: "start_call", can_perform_action: granted },
      ],
    };
  }

  // ---- consumer actions --------------------------------------------------------------------

  private async consumerHangsUp(record: CallRecord, status: TerminateStatus, delivery: DeliveryOptions): Promise<number> {
    const reason: CallEndReason = status === "Failed" ? "failed" : "consumer-hung-up";
    if (!(await this.endCall(record, reason, status))) return 0;
    return this.deliver(this.terminateFor(record), delivery);
  }

  private async consumerAnswers(record: CallRecord, options: AnswerOptions = {}): Promise<void> {
    if (record.direction !== "business_initiated") throw new SimStateError("only outbound calls are answered by the consumer");
    if (record.phase !== "ringing") throw new SimStateError(`call ${record.id} is ${record.phase}, not ringing`);
    record.moveTo("accepted");
    await this.deliver(callStatusEvent({ callId: record.id, psid: record.psid, status: "accepted" }));
    if (record.hasEnded || options.pickupReoffer === false) return;
    // Pickup brings Meta's split-transceiver re-offer as the call's first media update.
    const reoffer = await record.consumer.createSplitReoffer();
    if (record.hasEnded) return;
    record.mediaVersion += 1;
    record.logMediaUpdate("meta", "pickup");
    await this.deliver(mediaUpdateEvent({ callId: record.id, version: record.mediaVersion, sdp: reoffer }));
  }

  private async consumerDeclines(record: CallRecord): Promise<number> {
    if (record.direction !== "business_initiated") throw new SimStateError("only outbound calls can be declined");
    if (!(await this.endCall(record, "consumer-declined", "Completed"))) return 0;
    return this.deliver(this.terminateFor(record));
  }

  private async consumerUpdatesMedia(record: CallRecord, delivery: DeliveryOptions): Promise<number> {
    if (record.phase !== "accepted") throw new SimStateError(`call ${record.id} is ${record.phase}, not accepted`);
    const reoffer = await record.consumer.createReoffer();
    record.mediaVersion += 1;
    record.logMediaUpdate("meta", "reoffer");
    return this.deliver(mediaUpdateEvent({ callId: record.id, version: record.mediaVersion, sdp: reoffer }), delivery);
  }

  /** Camera on: a media_update webhook once the call has had Meta's first re-offer, else that re-offer carries it (0). */
  private async consumerStartsVideo(record: CallRecord, options: VideoSendOptions, delivery: DeliveryOptions): Promise<number> {
    if (record.hasEnded) throw new SimStateError(`call ${record.id} has ended`);
    const reoffer = await record.consumer.startVideo(options);
    if (reoffer === undefined || record.hasEnded) return 0;
    record.mediaVersion += 1;
    record.logMediaUpdate("meta", "video-on");
    return this.deliver(mediaUpdateEvent({ callId: record.id, version: record.mediaVersion, sdp: reoffer }), delivery);
  }

  /** Camera off: the video m-lines go inactive in a media_update webhook (nothing is sent before Meta's first re-offer). */
  private async consumerStopsVideo(record: CallRecord, delivery: DeliveryOptions): Promise<number> {
    if (record.hasEnded) throw new SimStateError(`call ${record.id} has ended`);
    const reoffer = await record.consumer.stopVideo();
    if (reoffer === undefined || record.hasEnded) return 0;
    record.mediaVersion += 1;
    record.logMediaUpdate("meta", "video-off");
    return this.deliver(mediaUpdateEvent({ callId: record.id, version: record.mediaVersion, sdp: reoffer }), delivery);
  }

  // ---- business actions --------------------------------------------------------------------

  private async accept(record: CallRecord, session: SessionOffer): Promise<CallsSuccess> {
    throwIf(businessActionError(record, "accept"));
    validateBusinessOffer(session.sdp, this.offerRules);
    record.moveTo("accepting");
    let answer: string;
    let reoffer: string | undefined;
    try {
      answer = await record.consumer.answerOffer(session.sdp);
      if (this.options.acceptRenegotiation ?? true) reoffer = await record.consumer.createSplitReoffer();
    } catch (error) {
      if (record.hasEnded || error instanceof ConsumerClosedError) throw graphErrors.endedCall();
      record.moveTo("ringing");
      if (error instanceof ConsumerNegotiationError) throw graphErrors.invalidSdp(error.message);
      throw error;
    }
    if (record.hasEnded) throw graphErrors.endedCall();
    record.businessSdp = session.sdp;
    record.moveTo("accepted");
    const form = this.options.acceptSdpForm ?? "object";
    const shape = (type: SdpPayload["sdp_type"], sdp: string): SdpPayload | string =>
      form === "string" ? sdp : { sdp_type: type, sdp };
    const result: CallsSuccess = { success: true, session: { sdp_response: shape("answer", answer) } };
    if (reoffer !== undefined && result.session) result.session.sdp_renegotiation = shape("offer", reoffer);
    return result;
  }

  private async connect(psid: string, session: SessionOffer): Promise<CallsSuccess> {
    const permission = this.permissions.get(psid) ?? this.options.defaultPermission ?? DEFAULTS.defaultPermission;
    if (permission !== "has_permission") throw graphErrors.noCallPermission(psid);
    validateBusinessOffer(session.sdp, this.offerRules);
    const record = this.newRecord(psid, "business_initiated");
    let answer: string;
    try {
      answer = await record.consumer.answerOffer(session.sdp);
    } catch (error) {
      await this.endCall(record, "failed", "Failed");
      if (error instanceof ConsumerNegotiationError) throw graphErrors.invalidSdp(error.message);
      throw error;
    }
    record.businessSdp = session.sdp;
    // Meta's webhooks follow the HTTP answer: connect, ringing, then (on pickup) accepted + media_update.
    this.later(() => void this.announceOutboundCall(record));
    this.scheduleOnCall(record, this.options.ringTimeoutMs ?? DEFAULTS.ringTimeoutMs, () => {
      if (record.phase !== "ringing") return;
      void this.endAndReport(record, "not-answered", "Completed");
    });
    return { success: true, id: record.id, session: { sdp_response: { sdp_type: "answer", sdp: answer } } };
  }

  /** Webhooks after a connect request: connect, ringing, then the consumer picks up (unless manual). */
  private async announceOutboundCall(record: CallRecord): Promise<void> {
    const psid = record.psid;
    await this.deliver(connectEvent({ callId: record.id, pageId: this.options.pageId, psid, direction: "business_initiated", at: record.startedAt }));
    if (record.hasEnded) return;
    await this.deliver(callStatusEvent({ callId: record.id, psid, status: "ringing" }));
    const pickup = this.options.outboundPickup ?? { afterMs: 300 };
    if (pickup !== "manual") record.after(pickup.afterMs, () => void this.consumerAnswers(record).catch(() => undefined));
  }

  /** The business's terminate/reject: `{success:true}` now, and Meta's terminate webhook right after. */
  private async businessEnds(record: CallRecord, action: "reject" | "terminate"): Promise<CallsSuccess> {
    throwIf(businessActionError(record, action));
    await this.endCall(record, action === "reject" ? "business-rejected" : "business-terminated", "Completed");
    this.later(() => void this.deliver(this.terminateFor(record)));
    return { success: true };
  }

  private async businessMediaUpdate(record: CallRecord, request: MediaUpdateRequest): Promise<CallsSuccess> {
    throwIf(businessActionError(record, "media_update"));
    if (request.session === undefined) return this.businessTracksUpdate(record, request.tracks, request.fromVersion);
    throwIf(mediaVersionError(record.mediaVersion, request.fromVersion, request.toVersion));
    const doc = validateBusinessOffer(request.session.sdp, this.offerRules);
    checkTrackMsids(doc, request.tracks);
    // Only a request that would have succeeded can lose a race; anything else keeps its own error.
    const collision = this.collisionSwitch.take(record.id);
    if (collision) return this.collide(record, request, collision);
    let answer: string;
    try {
      answer = await record.consumer.answerBusinessReoffer(request.session.sdp);
    } catch (error) {
      throw this.negotiationFailure(record, error);
    }
    record.mediaVersion = request.toVersion;
    record.businessSdp = request.session.sdp;
    for (const track of request.tracks) record.businessTracks.set(track.msid, track);
    record.logMediaUpdate("business", "business-offer");
    return { success: true, session: { sdp_response: { sdp_type: "answer", sdp: answer } } };
  }

  /** `tracks` without a session: statuses change, nothing is renegotiated and the version stays. */
  private businessTracksUpdate(record: CallRecord, tracks: readonly TrackSpec[], fromVersion: number | undefined): CallsSuccess {
    throwIf(tracksOnlyVersionError(record.mediaVersion, fromVersion));
    if (!record.businessSdp) throw graphErrors.invalidParameter("The call has no media to update yet");
    checkTrackMsids(parseSdp(record.businessSdp), tracks);
    for (const track of tracks) record.businessTracks.set(track.msid, track);
    record.logMediaUpdate("business", "business-tracks");
    return { success: true };
  }

  /** The consumer's own change wins: Meta offers it by webhook and the business's request gets no answer SDP. */
  private async collide(record: CallRecord, request: { fromVersion: number; toVersion: number }, options: CollisionOptions): Promise<CallsSuccess> {
    const change = options.consumerChange ?? "reoffer";
    let reoffer: string;
    try {
      reoffer = await this.consumerChangeOffer(record, change);
    } catch (error) {
      throw this.negotiationFailure(record, error);
    }
    if (record.hasEnded) throw graphErrors.endedCall();
    record.mediaVersion += 1;
    record.logMediaUpdate("meta", "collision");
    const order = options.order ?? "answer-first";
    const entry: CollisionRecord = {
      callId: record.id,
      mode: options.mode,
      order,
      consumerChange: consumerChangeKind(change),
      businessFromVersion: request.fromVersion,
      businessToVersion: request.toVersion,
      metaVersion: record.mediaVersion,
      at: Date.now(),
      webhookStatus: undefined,
    };
    this.collisionLog.push(entry);
    const event = mediaUpdateEvent({ callId: record.id, version: record.mediaVersion, sdp: reoffer });
    const send = async (): Promise<void> => {
      entry.webhookStatus = await this.deliver(event);
    };
    if (order === "webhook-first") await send();
    else this.later(() => void send());
    return collisionAnswer(options.mode, record.mediaVersion, request.fromVersion);
  }

  private async consumerChangeOffer(record: CallRecord, change: ConsumerChange): Promise<string> {
    const consumer = record.consumer;
    if (change === "reoffer") return consumer.createReoffer();
    const offer = change === "stopVideo" ? await consumer.stopVideo() : await consumer.startVideo(change.startVideo);
    // Before Meta's first re-offer the camera change is only remembered; the race is then a plain re-offer.
    return offer ?? consumer.createReoffer();
  }

  /** The Graph error for a consumer that could not negotiate what the business sent. */
  private negotiationFailure(record: CallRecord, error: unknown): unknown {
    if (record.hasEnded || error instanceof ConsumerClosedError) return graphErrors.endedCall();
    if (error instanceof ConsumerNegotiationError) return graphErrors.invalidSdp(error.message);
    return error;
  }

  // ---- helpers -----------------------------------------------------------------------------

  private acceptWindowExpired(record: CallRecord): void {
    if (record.phase === "accepting") {
      // An accept is being negotiated right at the deadline; let it finish or fail first.
      this.scheduleOnCall(record, 50, () => this.acceptWindowExpired(record));
      return;
    }
    if (record.phase !== "ringing") return;
    void this.endAndReport(record, "not-answered", "Failed");
  }

  private newRecord(psid: string, direction: CallRecord["direction"], toneHz?: number, peer?: ConsumerPeer): CallRecord {
    let id = newCallId();
    while (this.records.has(id)) id = newCallId();
    const consumer =
      peer ??
      new SimConsumer({
        ...this.options.consumer,
        ...(toneHz !== undefined ? { toneHz } : {}),
        stunUrl: this.stunUrl,
      });
    const record = new CallRecord(id, psid, direction, consumer, Date.now());
    this.records.set(id, record);
    return record;
  }

  private recordFor(callId: string): CallRecord {
    const record = this.records.get(callId);
    if (!record) throw graphErrors.invalidCallId(callId);
    return record;
  }

  private facade(record: CallRecord): SimCall {
    let call = this.facades.get(record.id);
    if (!call) {
      call = new SimCall(record, this.consumerActions);
      this.facades.set(record.id, call);
    }
    return call;
  }

  /** Ends the call and frees its consumer; false when it had already ended. */
  private async endCall(record: CallRecord, reason: CallEndReason, status: TerminateStatus): Promise<boolean> {
    if (!record.finish({ reason, status, at: Date.now() })) return false;
    await record.consumer.close();
    return true;
  }

  /** Ends the call on Meta's own initiative and reports it with a terminate webhook. */
  private async endAndReport(record: CallRecord, reason: CallEndReason, status: TerminateStatus): Promise<void> {
    if (await this.endCall(record, reason, status)) await this.deliver(this.terminateFor(record));
  }

  private terminateFor(record: CallRecord): CallEvent {
    return terminateEvent({
      callId: record.id,
      status: record.end?.status ?? "Completed",
      startedAt: record.startedAt,
      endedAt: record.end?.at ?? Date.now(),
      connectedAt: record.connectedAt,
    });
  }

  /** Sends one Meta-originated event; never throws (a failed delivery is visible in webhooks.deliveries). */
  private deliver(event: CallEvent, delivery: DeliveryOptions = {}): Promise<number> {
    return this.track((options) => this.webhooks.sendEvent(event, options), delivery);
  }

  /** Sends one WhatsApp webhook body with the simulator's delivery defaults; never throws. */
  private sendBody(body: string, delivery: DeliveryOptions): Promise<number> {
    return this.track((options) => this.webhooks.sendRaw(body, options), delivery);
  }

  /** One delivery with the simulator's defaults, awaited by stop(); never throws (0 when nothing answered). */
  private track(send: (options: DeliveryOptions) => Promise<number>, delivery: DeliveryOptions): Promise<number> {
    if (this.stopped) return Promise.resolve(0);
    const sending = send({ retries: this.options.webhookRetries ?? DEFAULTS.webhookRetries, ...this.options.webhookDelivery, ...delivery }).catch(() => 0);
    this.inFlight.add(sending);
    void sending.finally(() => this.inFlight.delete(sending));
    return sending;
  }

  private later(work: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) work();
    }, this.options.eventDelayMs ?? DEFAULTS.eventDelayMs);
    this.timers.add(timer);
  }

  private scheduleOnCall(record: CallRecord, ms: number, work: () => void): void {
    record.after(ms, () => {
      if (!this.stopped) work();
    });
  }

  private assertRunning(): void {
    if (this.stopped) throw new SimStateError("simulator stopped");
  }
}

function throwIf(error: GraphApiError | undefined): void {
  if (error) throw error;
}

/** Every track must name an msid of the offer: a=msid or a=ssrc … msid:, stream or track id. */
function checkTrackMsids(doc: SdpDocument, tracks: readonly TrackSpec[]): void {
  const tokens = new Set(
    doc.media
      .flatMap((m) => m.lines)
      .filter((line) => line.startsWith("a=msid:") || /^a=ssrc:\d+ msid:/.test(line))
      .flatMap((line) => line.slice(line.indexOf("msid:") + "msid:".length).split(" ")),
  );
  for (const track of tracks) {
    if (!tokens.has(track.msid)) throw graphErrors.invalidTrackMsid(track.msid);
  }
}
