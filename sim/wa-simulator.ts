import type { ConsumerBrowser } from "./browser-consumer.js";
import { forgetEnded } from "./call-lifecycle.js";
import type { ChromiumOptions } from "./chromium.js";
import { SimStateError } from "./errors.js";
import { newBsuid, newWaCallId, newWamid, newWaPhone } from "./ids.js";
import { WaCallRecord, type WaEndReason } from "./wa-call-record.js";
import { WhatsAppCall, type WaConsumerActions } from "./wa-call.js";
import { WebRtcWhatsAppConsumer, type WaConsumerOptions, type WhatsAppConsumer } from "./wa-consumer.js";
import { WHATSAPP_ERROR_HREF, waErrors, WhatsAppCode } from "./wa-errors.js";
import type { WaGraphBackend, WaGraphNumber } from "./wa-graph.js";
import { DEFAULT_PERMISSION_LIMITS, WhatsAppPermissions, type WaCallPermissionsResponse, type WaPermissionLimits, type WaPermissionStatus } from "./wa-permissions.js";
import type { PermissionRequestMessage, WaUserRef, WhatsAppCallsRequest } from "./wa-request.js";
import { SdesWhatsAppConsumer } from "./wa-sdes-consumer.js";
import { answerProblem, offerProblem, type SrtpKeyExchange } from "./wa-sdp.js";
import { WhatsAppWebhookQueue, type FlushOptions } from "./wa-webhook-queue.js";
import {
  businessConnectEvent,
  contactOf,
  permissionReplyMessage,
  statusEvent,
  userConnectEvent,
  waTerminateEvent,
  webhookError,
  type WaBatchLayout,
  type WaCallStatus,
  type WaNumberRef,
  type WaTerminateStatus,
  type WaUserIdentity,
} from "./wa-webhook-events.js";
import type { DeliveryOptions } from "./webhook-sender.js";
import { ConsumerClosedError, ConsumerNegotiationError } from "./errors.js";
import { GraphApiError } from "./graph-errors.js";

/** One WhatsApp business phone number the simulator serves. */
export interface WhatsAppNumberConfig {
  wabaId: string;
  phoneNumberId: string;
  /** As Meta writes it in `metadata.display_phone_number` and `to`/`from`: digits, country code first. */
  displayPhoneNumber: string;
  /** The token Graph requests for this number must carry; defaults to the simulator's pageAccessToken. */
  accessToken?: string;
  /** `calling.srtp_key_exchange_protocol` (default DTLS). */
  srtpKeyExchange?: SrtpKeyExchange;
  /** `calling.sip.status: ENABLED`: the Graph calling endpoints answer 131055 and no calling webhooks are sent. */
  sipEnabled?: boolean;
  /** Concurrent calls the number takes (Meta: 1000); past it connect is 138002 and user calls fail without a webhook. */
  maxConcurrentCalls?: number;
  /** Who plays the user on this number's calls, business calls included (default werift; see WaConsumerKind). */
  consumer?: WaConsumerKind;
}

/**
 * The user's WebRTC stack: `werift` (an ice-lite werift peer, or for SDES numbers an SRTP socket) or
 * `browser` (headless Chromium, DTLS numbers only; sim/wa-browser-consumer.ts). The browser is launched
 * on first use, shared by every call, and closed with the simulator.
 */
export type WaConsumerKind = "werift" | "browser";

export interface WhatsAppOptions {
  numbers: WhatsAppNumberConfig[];
  /** Time the business has to accept a user's call ("about 30 to 60 seconds"); then terminate FAILED with 138007. */
  acceptWindowMs?: number;
  /** No RTP from the business this long after the call connects: the user's client hangs up (20 s, §2.6). */
  mediaStartTimeoutMs?: number;
  /** No RTP or RTCP from the business this long in a connected call: the client hangs up (30 s, §2.6). */
  mediaIdleTimeoutMs?: number;
  /** A business call nobody picks up ends after this long. */
  ringTimeoutMs?: number;
  /** Business calls: the user picks up after this long, or only on WhatsAppCall.answer() when "manual". */
  outboundPickup?: { afterMs: number } | "manual";
  /** Pending webhook updates within this window share POSTs (up to 1000 updates each); 0 = one POST per update. */
  batchWindowMs?: number;
  batchLayout?: WaBatchLayout;
  /** Permission of users not set with setPermission() (default "temporary", so business calls work out of the box). */
  defaultPermission?: WaPermissionStatus;
  /** What users answer to a permission request (default accept, temporary). */
  permissionReply?: PermissionReply;
  permissionLimits?: Partial<WaPermissionLimits>;
  /** The call_permissions rate limit, per number (the docs say 5/s on one page and 100/s on another). */
  permissionsApiRatePerSecond?: number;
  /** Business calls: also put `contacts[]` in the connect webhook (Meta may leave it out there). */
  outboundContacts?: boolean;
  offerRules?: { requireCandidates?: boolean };
  /** Defaults for every consumer (per-call toneHz overrides). */
  consumer?: Omit<WaConsumerOptions, "stunUrl" | "toneHz">;
  /** How the browser for `consumer: "browser"` is launched (Chromium path, extra switches). */
  browser?: ChromiumOptions;
}

export type PermissionReply = { response: "accept"; permanent?: boolean } | { response: "reject" } | { response: "ignore" };

export interface PlaceWhatsAppCallOptions {
  /** The business number called (default the first configured). */
  phoneNumberId?: string;
  /** The user's BSUID (generated when left out). */
  userId?: string;
  /** The user's phone number in wa_id form; null for a user known only by username (no `from`/`wa_id`). */
  fromPhone?: string | null;
  name?: string;
  username?: string;
  toneHz?: number;
  /** Who plays this user (default: the number's consumer, else werift). */
  consumer?: WaConsumerKind;
  /** Delivery switches for the connect webhook. */
  delivery?: DeliveryOptions;
}

/** What the WhatsApp side needs from the simulator hosting it. */
export interface WhatsAppHost {
  send(body: string, delivery: DeliveryOptions): Promise<number>;
  stunUrl(): string;
  eventDelayMs: number;
  pageAccessToken: string;
  hasWebhookUrl(): boolean;
}

const DEFAULTS = {
  acceptWindowMs: 60_000,
  mediaStartTimeoutMs: 20_000,
  mediaIdleTimeoutMs: 30_000,
  ringTimeoutMs: 60_000,
  pickupAfterMs: 300,
  permissionsApiRatePerSecond: 100,
};

interface NumberState {
  config: WhatsAppNumberConfig;
  ref: WaNumberRef;
  sipEnabled: boolean;
  /** Changed by the settings call; applies to calls set up afterwards. */
  keyExchange: SrtpKeyExchange;
  consumerKind: WaConsumerKind;
  permissions: WhatsAppPermissions;
}

/**
 * Meta's side of WhatsApp Business Calling (Cloud API, Graph signalling) for the numbers configured: the
 * consumer offers in the connect webhook and takes pre_accept/accept answers; business calls are answered
 * by connect webhook and reported with statuses[]; permissions and their limits; terminate webhooks with
 * errors[]; the accept window and the 20 s / 30 s no-media hang-ups; DTLS or SDES keying.
 */
export class WhatsAppSimulator {
  private readonly numbers = new Map<string, NumberState>();
  private readonly records = new Map<string, WaCallRecord>();
  private readonly facades = new Map<string, WhatsAppCall>();
  private readonly users = new Map<string, WaUserIdentity>();
  private readonly userByPhone = new Map<string, string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly queue: WhatsAppWebhookQueue;
  private permissionReply: PermissionReply;
  private browser: Promise<ConsumerBrowser> | undefined;
  private stopped = false;
  /** Permission requests the business sent, in order. */
  readonly permissionRequests: Array<{ phoneNumberId: string; userId: string; messageId: string; at: number }> = [];
  readonly backend: WaGraphBackend = {
    number: (id) => this.graphNumber(id),
    handleCalls: (id, request) => this.handleCalls(this.numberState(id), request),
    callPermissions: (id, user) => this.callPermissions(this.numberState(id), user),
    sendPermissionRequest: (id, message) => this.sendPermissionRequest(this.numberState(id), message),
    settings: (id) => settingsOf(this.numberState(id)),
    updateSettings: (id, body) => this.updateSettings(this.numberState(id), body),
  };
  private readonly consumerActions: WaConsumerActions = {
    hangup: (record, delivery) => this.consumerHangsUp(record, delivery),
    answer: (record) => this.consumerAnswers(record),
    decline: (record) => this.consumerDeclines(record),
  };

  constructor(
    private readonly options: WhatsAppOptions,
    private readonly host: WhatsAppHost,
  ) {
    const limits = { ...DEFAULT_PERMISSION_LIMITS, ...options.permissionLimits };
    for (const config of options.numbers) {
      if (this.numbers.has(config.phoneNumberId)) throw new SimStateError(`phone number id ${config.phoneNumberId} configured twice`);
      if (config.consumer === "browser" && config.srtpKeyExchange === "SDES") {
        throw new SimStateError(`phone number id ${config.phoneNumberId}: the browser consumer speaks DTLS-SRTP only, not SDES`);
      }
      this.numbers.set(config.phoneNumberId, {
        config,
        ref: { wabaId: config.wabaId, phoneNumberId: config.phoneNumberId, displayPhoneNumber: config.displayPhoneNumber },
        sipEnabled: config.sipEnabled ?? false,
        keyExchange: config.srtpKeyExchange ?? "DTLS",
        consumerKind: config.consumer ?? "werift",
        permissions: new WhatsAppPermissions(options.defaultPermission ?? "temporary", limits),
      });
    }
    this.permissionReply = options.permissionReply ?? { response: "accept" };
    this.queue = new WhatsAppWebhookQueue((body, delivery) => host.send(body, delivery), {
      batchWindowMs: options.batchWindowMs ?? 0,
      layout: options.batchLayout ?? "change-per-update",
    });
  }

  /** Every webhook POST body sent for WhatsApp, with the number of updates it carried. */
  get webhookPosts(): readonly { body: string; updates: number; status: number }[] {
    return this.queue.posts;
  }

  calls(): WhatsAppCall[] {
    return [...this.records.values()].map((r) => this.facade(r));
  }

  activeCalls(): WhatsAppCall[] {
    return [...this.records.values()].filter((r) => !r.hasEnded).map((r) => this.facade(r));
  }

  /** Forgets ended calls (and their recordings); long runs call it to keep memory flat. */
  forgetEndedCalls(): number {
    return forgetEnded(this.records, this.facades);
  }

  getCall(callId: string): WhatsAppCall | undefined {
    const record = this.records.get(callId);
    return record ? this.facade(record) : undefined;
  }

  /** Sets a user's permission (by BSUID or phone) for one number, or every number when left out. */
  setPermission(user: string, status: WaPermissionStatus, phoneNumberId?: string): void {
    const userId = this.resolveUser(/^\+?\d+$/.test(user) ? { kind: "phone", value: user.replace(/^\+/, "") } : { kind: "bsuid", value: user }).userId;
    for (const state of this.numbers.values()) {
      if (phoneNumberId === undefined || state.config.phoneNumberId === phoneNumberId) state.permissions.set(userId, status, Date.now());
    }
  }

  /** What users answer to the next permission requests. */
  setPermissionReply(reply: PermissionReply): void {
    this.permissionReply = reply;
  }

  /** Who plays the user on this number's calls set up from now on, business calls included. */
  setConsumer(phoneNumberId: string, kind: WaConsumerKind): void {
    this.numberState(phoneNumberId).consumerKind = kind;
  }

  /**
   * The Chromium behind `consumer: "browser"`, launched now if it is not yet running. Throws when
   * Chromium or playwright-core is missing, so a test can fail on that before placing calls.
   */
  consumerBrowser(): Promise<ConsumerBrowser> {
    this.assertRunning();
    if (!this.browser) {
      const launching = import("./browser-consumer.js").then(({ ConsumerBrowser }) => ConsumerBrowser.launch(this.options.browser));
      // A failed launch is reported to its callers and tried again by the next.
      launching.catch(() => {
        if (this.browser === launching) this.browser = undefined;
      });
      this.browser = launching;
    }
    return this.browser;
  }

  /** Switches a number to SIP signalling (131055 on the Graph calling endpoints) or back. */
  setSipEnabled(phoneNumberId: string, enabled: boolean): void {
    this.numberState(phoneNumberId).sipEnabled = enabled;
  }

  /** Holds every later WhatsApp webhook until flushWebhooks(): how a test forces several calls' updates into one POST. */
  holdWebhooks(): void {
    this.queue.hold();
  }

  get heldWebhooks(): number {
    return this.queue.heldCount;
  }

  flushWebhooks(options: FlushOptions = {}): Promise<number[]> {
    return this.queue.flush(options);
  }

  /** A user calls a business number: Meta's offer goes out in a signed connect webhook. */
  async placeCall(options: PlaceWhatsAppCallOptions = {}): Promise<WhatsAppCall> {
    this.assertRunning();
    if (!this.host.hasWebhookUrl()) throw new SimStateError("set a webhook URL before placing calls");
    const state = options.phoneNumberId === undefined ? [...this.numbers.values()][0] : this.numbers.get(options.phoneNumberId);
    if (!state) throw new SimStateError(`no WhatsApp number ${options.phoneNumberId ?? "configured"}`);
    if (state.sipEnabled) throw new SimStateError(`number ${state.config.phoneNumberId} is set to SIP: Graph calling is off`);
    // Past the concurrent-call limit the user sees a generic failure and Meta sends no webhook.
    if (this.liveCalls(state) >= (state.config.maxConcurrentCalls ?? 1000)) throw new SimStateError(`number ${state.config.phoneNumberId} is at its concurrent-call limit`);
    const user = this.registerUser(options);
    const consumer = await this.newConsumer(state, options.consumer ?? state.consumerKind, options.toneHz);
    const record = this.newRecord(state, user, "USER_INITIATED", consumer);
    let offer: string;
    try {
      offer = await record.consumer.createOffer();
    } catch (error) {
      await this.endCall(record, { by: "meta", reason: "negotiation-failed", status: "FAILED" });
      throw error;
    }
    record.sdps.consumerOffer = offer;
    record.after(this.options.acceptWindowMs ?? DEFAULTS.acceptWindowMs, () => void this.acceptWindowExpired(record));
    record.connectWebhookStatus = await this.queue.deliver(
      { number: state.ref, field: "calls", contacts: [contactOf(user)], calls: [userConnectEvent({ callId: record.id, number: state.ref, user, offer, at: record.startedAt })], errors: undefined },
      options.delivery,
    );
    return this.facade(record);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.queue.close();
    const closing: Promise<void>[] = [];
    for (const record of this.records.values()) {
      if (record.finish({ by: "meta", reason: "simulator-stopped", status: "COMPLETED", errorCode: undefined, at: Date.now() })) {
        closing.push(record.consumer.close());
      }
    }
    await Promise.allSettled(closing);
    if (this.browser) await (await this.browser.catch(() => undefined))?.close();
  }

  // ---- Graph API ---------------------------------------------------------------------------

  private graphNumber(phoneNumberId: string): WaGraphNumber | undefined {
    const state = this.numbers.get(phoneNumberId);
    if (!state) return undefined;
    return { phoneNumberId, accessToken: state.config.accessToken ?? this.host.pageAccessToken, sipEnabled: state.sipEnabled };
  }

  private numberState(phoneNumberId: string): NumberState {
    const state = this.numbers.get(phoneNumberId);
    if (!state) throw new SimStateError(`no WhatsApp number ${phoneNumberId}`);
    return state;
  }

  private async handleCalls(state: NumberState, request: WhatsAppCallsRequest): Promise<unknown> {
    this.assertRunning();
    if (request.action === "connect") return this.connect(state, request);
    const record = this.records.get(request.callId);
    if (!record || record.number.phoneNumberId !== state.config.phoneNumberId) throw waErrors.invalidCallId(request.callId);
    const sdpType = "session" in request ? request.session.sdpType : undefined;
    try {
      switch (request.action) {
        case "pre_accept":
          await this.preAccept(record, request.session);
          break;
        case "accept":
          await this.accept(record, request.session, request.bizOpaque);
          break;
        case "reject":
        case "terminate":
          this.businessEnds(record, request.action);
          break;
      }
    } catch (error) {
      if (error instanceof GraphApiError) {
        record.logAction({ action: request.action, sdpType, outcome: "error", errorCode: error.code, details: error.errorData?.details ?? error.message });
      }
      throw error;
    }
    record.logAction({ action: request.action, sdpType, outcome: "ok", errorCode: undefined, details: undefined });
    return { messaging_product: "whatsapp", success: true };
  }

  private checkUserInitiated(record: WaCallRecord, action: string): void {
    if (record.hasEnded) throw waErrors.callNotActive(`Call ${record.id} has already ended`);
    if (record.direction !== "USER_INITIATED") throw waErrors.invalidParameter(`Action ${action} is only for user-initiated calls`);
    if (record.phase === "accepting" || record.phase === "accepted") throw waErrors.callNotActive(`Call ${record.id} has already been accepted`);
  }

  /**
   * pre_accept: the answer is applied at once, so ICE and DTLS complete while the business's own side
   * rings; the consumer's voice waits for accept. sdp_type "offer" (the reference table's wording) is taken
   * with a 200 but never applied: as implementers report, such a call never connects, and the accept window
   * ends it with 138007.
   */
  private async preAccept(record: WaCallRecord, session: { sdpType: "offer" | "answer"; sdp: string }): Promise<void> {
    await record.answering?.catch(() => undefined);
    this.checkUserInitiated(record, "pre_accept");
    if (session.sdpType === "offer") return;
    if (record.sdps.preAcceptAnswer !== undefined) {
      if (session.sdp !== record.sdps.preAcceptAnswer) throw waErrors.invalidSdp("the call was already pre-accepted with another SDP");
      return;
    }
    this.checkAnswer(record, session.sdp);
    await this.applyAnswer(record, session.sdp);
    record.sdps.preAcceptAnswer = session.sdp;
    record.moveTo("pre_accepted");
  }

  private async accept(record: WaCallRecord, session: { sdpType: "offer" | "answer"; sdp: string }, bizOpaque: string | undefined): Promise<void> {
    // A pre_accept still being applied decides what this accept is compared with.
    await record.answering?.catch(() => undefined);
    this.checkUserInitiated(record, "accept");
    if (session.sdpType === "offer") return;
    if (record.sdps.preAcceptAnswer !== undefined && session.sdp !== record.sdps.preAcceptAnswer) {
      throw waErrors.invalidSdp("the SDP in accept must be identical to the SDP sent with pre_accept");
    }
    this.checkAnswer(record, session.sdp);
    const previous = record.phase;
    record.moveTo("accepting");
    try {
      if (!record.answerApplied) await this.applyAnswer(record, session.sdp);
    } catch (error) {
      if (previous === "ringing" || previous === "pre_accepted") record.moveTo(previous);
      throw error;
    }
    if (record.hasEnded) throw waErrors.callNotActive(`Call ${record.id} has already ended`);
    record.sdps.acceptAnswer = session.sdp;
    if (bizOpaque !== undefined) record.bizOpaque = bizOpaque;
    this.connected(record);
  }

  private checkAnswer(record: WaCallRecord, sdp: string): void {
    const problem = answerProblem(sdp, record.consumer.keyExchange, { requireCandidates: this.options.offerRules?.requireCandidates ?? true });
    if (problem !== undefined) throw waErrors.invalidSdp(problem);
  }

  private async applyAnswer(record: WaCallRecord, sdp: string): Promise<void> {
    const applying = record.consumer.applyAnswer(sdp);
    record.answering = applying;
    try {
      await applying;
    } catch (error) {
      if (record.hasEnded || error instanceof ConsumerClosedError) throw waErrors.callNotActive(`Call ${record.id} has already ended`);
      if (error instanceof ConsumerNegotiationError) throw waErrors.invalidSdp(error.message);
      if (error instanceof SimStateError) throw waErrors.invalidParameter(error.message);
      throw error;
    } finally {
      if (record.answering === applying) record.answering = undefined;
    }
    record.answerApplied = true;
  }

  private businessEnds(record: WaCallRecord, action: "reject" | "terminate"): void {
    if (record.hasEnded) throw waErrors.callNotActive(`Call ${record.id} has already ended`);
    if (action === "reject") {
      if (record.direction !== "USER_INITIATED") throw waErrors.invalidParameter("Only user-initiated calls can be rejected; use terminate");
      if (record.phase === "accepting" || record.phase === "accepted") throw waErrors.callNotActive(`Call ${record.id} has already been accepted; use terminate`);
    }
    const reason: WaEndReason = action === "reject" ? "business-rejected" : "business-terminated";
    void this.endCall(record, { by: "business", reason, status: "COMPLETED" }).then((ended) => {
      if (ended) this.later(() => void this.sendTerminate(record));
    });
  }

  private async connect(state: NumberState, request: Extract<WhatsAppCallsRequest, { action: "connect" }>): Promise<unknown> {
    const user = request.recipient !== undefined ? this.resolveUser({ kind: "bsuid", value: request.recipient }) : this.resolveUser({ kind: "phone", value: request.to ?? "" });
    const now = Date.now();
    const denied = state.permissions.callError(user.userId, now);
    if (denied) throw denied;
    const admissionError = (): GraphApiError | undefined => {
      const ongoing = [...this.records.values()].some((r) => !r.hasEnded && r.user.userId === user.userId && r.number.phoneNumberId === state.config.phoneNumberId);
      if (ongoing) return waErrors.duplicateCall();
      if (this.liveCalls(state) >= (state.config.maxConcurrentCalls ?? 1000)) return waErrors.concurrentCallLimit();
      return undefined;
    };
    const refused = admissionError();
    if (refused) throw refused;
    const mode = state.keyExchange;
    const problem = offerProblem(request.session.sdp, mode, { requireCandidates: this.options.offerRules?.requireCandidates ?? true });
    if (problem !== undefined) throw waErrors.invalidSdp(problem);
    const consumer = await this.newConsumer(state, state.consumerKind, undefined);
    // Opening a browser page takes a while: another connect for the same user may have got in meanwhile.
    const late = admissionError();
    if (late) {
      await consumer.close();
      throw late;
    }
    const record = this.newRecord(state, user, "BUSINESS_INITIATED", consumer);
    record.sdps.businessOffer = request.session.sdp;
    record.bizOpaque = request.bizOpaque;
    let answer: string;
    try {
      answer = await record.consumer.answerOffer(request.session.sdp);
    } catch (error) {
      await this.endCall(record, { by: "meta", reason: "negotiation-failed", status: "FAILED" });
      record.logAction({ action: "connect", sdpType: "offer", outcome: "error", errorCode: WhatsAppCode.invalidParameter, details: String(error) });
      if (error instanceof ConsumerNegotiationError) throw waErrors.invalidSdp(error.message);
      throw error;
    }
    record.sdps.consumerAnswer = answer;
    record.logAction({ action: "connect", sdpType: "offer", outcome: "ok", errorCode: undefined, details: undefined });
    this.later(() => void this.announceBusinessCall(record, answer));
    record.after(this.options.ringTimeoutMs ?? DEFAULTS.ringTimeoutMs, () => {
      if (record.phase !== "ringing") return;
      void this.endAndReport(record, { by: "meta", reason: "not-answered", status: "COMPLETED" });
    });
    return { messaging_product: "whatsapp", calls: [{ id: record.id }] };
  }

  /** The consumer's answer by connect webhook (it may reach the business before pickup), then RINGING. */
  private async announceBusinessCall(record: WaCallRecord, answer: string): Promise<void> {
    if (record.hasEnded) return;
    const ref = record.number;
    const contacts = this.options.outboundContacts ? [contactOf(record.user)] : undefined;
    const connect = businessConnectEvent({ callId: record.id, number: ref, user: record.user, answer, bizOpaque: record.bizOpaque, at: Date.now() });
    const delivered = this.queue.deliver({ number: ref, field: "calls", contacts, calls: [connect], errors: undefined }).then((status) => {
      record.connectWebhookStatus = status;
    });
    // Sent one after the other, or queued together when webhooks are held or batched.
    if (!this.queue.deferring) await delivered;
    if (record.hasEnded) return;
    await this.sendStatus(record, "RINGING");
    const pickup = this.options.outboundPickup ?? { afterMs: DEFAULTS.pickupAfterMs };
    if (pickup !== "manual") record.after(pickup.afterMs, () => void this.consumerAnswers(record).catch(() => undefined));
  }

  private liveCalls(state: NumberState): number {
    return [...this.records.values()].filter((r) => !r.hasEnded && r.number.phoneNumberId === state.config.phoneNumberId).length;
  }

  private updateSettings(state: NumberState, body: unknown): { success: true } {
    const calling = isRecord(body) ? body["calling"] : undefined;
    if (!isRecord(calling)) throw waErrors.invalidParameter("Param calling must be an object");
    const srtp = calling["srtp_key_exchange_protocol"];
    if (srtp !== undefined && srtp !== "DTLS" && srtp !== "SDES") throw waErrors.invalidParameter('Param calling.srtp_key_exchange_protocol must be "DTLS" or "SDES"');
    const sip = calling["sip"];
    const sipStatus = isRecord(sip) ? sip["status"] : undefined;
    if (sip !== undefined && sipStatus !== "ENABLED" && sipStatus !== "DISABLED") throw waErrors.invalidParameter('Param calling.sip.status must be "ENABLED" or "DISABLED"');
    if (srtp !== undefined) state.keyExchange = srtp;
    if (sipStatus !== undefined) state.sipEnabled = sipStatus === "ENABLED";
    return { success: true };
  }

  private callPermissions(state: NumberState, ref: WaUserRef): WaCallPermissionsResponse {
    return state.permissions.response(this.resolveUser(ref).userId, Date.now());
  }

  private sendPermissionRequest(state: NumberState, message: PermissionRequestMessage): unknown {
    const user = this.resolveUser(message.user);
    const now = Date.now();
    const limited = state.permissions.requestError(user.userId, now);
    if (limited) throw limited;
    state.permissions.recordRequest(user.userId, now);
    const messageId = newWamid();
    this.permissionRequests.push({ phoneNumberId: state.config.phoneNumberId, userId: user.userId, messageId, at: now });
    const reply = this.permissionReply;
    if (reply.response !== "ignore") this.later(() => void this.replyToPermissionRequest(state, user, messageId, reply));
    return {
      messaging_product: "whatsapp",
      contacts: [{ input: message.user.value, ...(user.waId !== undefined ? { wa_id: user.waId } : {}), user_id: user.userId }],
      messages: [{ id: messageId }],
    };
  }

  private async replyToPermissionRequest(state: NumberState, user: WaUserIdentity, requestId: string, reply: PermissionReply): Promise<void> {
    if (reply.response === "ignore") return;
    const now = Date.now();
    let expiresAt: number | undefined;
    if (reply.response === "accept") {
      const permanent = reply.permanent ?? false;
      state.permissions.set(user.userId, permanent ? "permanent" : "temporary", now);
      expiresAt = state.permissions.status(user.userId, now).expiresAt;
    }
    const message = permissionReplyMessage({
      user,
      number: state.ref,
      requestId,
      response: reply.response,
      permanent: reply.response === "accept" && (reply.permanent ?? false),
      expiresAt,
      id: newWamid(),
      at: now,
    });
    await this.queue.deliver({ number: state.ref, field: "messages", contacts: [contactOf(user)], messages: [message] });
  }

  // ---- consumer actions and Meta's timers --------------------------------------------------

  /** The call is connected: the consumer's voice starts and the no-media timers run. */
  private connected(record: WaCallRecord): void {
    if (record.direction === "USER_INITIATED") record.businessPacketsBeforeAccept = record.consumer.stats.packetsReceived;
    record.moveTo("accepted");
    const state = this.numbers.get(record.number.phoneNumberId);
    state?.permissions.recordConnectedCall(record.user.userId, Date.now(), record.direction === "BUSINESS_INITIATED");
    record.consumer.startMedia();
    const startMs = this.options.mediaStartTimeoutMs ?? DEFAULTS.mediaStartTimeoutMs;
    const idleMs = this.options.mediaIdleTimeoutMs ?? DEFAULTS.mediaIdleTimeoutMs;
    record.after(startMs, () => {
      if (record.consumer.stats.packetsReceived > 0) return;
      void this.mediaTimeout(record, "media-start-timeout", `No media received from the business within ${Math.round(startMs / 1000)} s of connect`);
    });
    const check = (): void => {
      const last = record.consumer.stats.lastActivityAt;
      if (last !== undefined && Date.now() - last > idleMs) {
        void this.mediaTimeout(record, "media-idle-timeout", `No packets received from the business for ${Math.round(idleMs / 1000)} s`);
        return;
      }
      record.after(Math.max(50, Math.min(1000, idleMs / 4)), check);
    };
    record.after(Math.max(50, Math.min(1000, idleMs / 4)), check);
  }

  private mediaTimeout(record: WaCallRecord, reason: WaEndReason, details: string): Promise<void> {
    return this.endAndReport(record, { by: "consumer", reason, status: "FAILED", errorCode: WhatsAppCode.mediaReceiveTimeout }, details);
  }

  private acceptWindowExpired(record: WaCallRecord): void {
    if (record.phase === "accepting") {
      record.after(50, () => this.acceptWindowExpired(record));
      return;
    }
    if (record.phase !== "ringing" && record.phase !== "pre_accepted") return;
    void this.endAndReport(
      record,
      { by: "meta", reason: "accept-timeout", status: "FAILED", errorCode: WhatsAppCode.connectTimeout },
      "The business did not accept the call (apply the SDP) in time",
    );
  }

  private async consumerHangsUp(record: WaCallRecord, delivery: DeliveryOptions): Promise<number> {
    if (!(await this.endCall(record, { by: "consumer", reason: "consumer-hung-up", status: "COMPLETED" }))) return 0;
    return this.sendTerminate(record, undefined, delivery);
  }

  private async consumerAnswers(record: WaCallRecord): Promise<void> {
    if (record.direction !== "BUSINESS_INITIATED") throw new SimStateError("only business-initiated calls are answered by the user");
    if (record.phase !== "ringing") throw new SimStateError(`call ${record.id} is ${record.phase}, not ringing`);
    this.connected(record);
    await this.sendStatus(record, "ACCEPTED");
  }

  /** REJECTED, then the terminate webhook (COMPLETED, no duration). */
  private async consumerDeclines(record: WaCallRecord): Promise<void> {
    if (record.direction !== "BUSINESS_INITIATED") throw new SimStateError("only business-initiated calls can be declined");
    if (record.phase !== "ringing") throw new SimStateError(`call ${record.id} is ${record.phase}, not ringing`);
    if (!(await this.endCall(record, { by: "consumer", reason: "consumer-declined", status: "COMPLETED" }))) return;
    await this.sendStatus(record, "REJECTED");
    await this.sendTerminate(record);
  }

  // ---- helpers -----------------------------------------------------------------------------

  private sendStatus(record: WaCallRecord, status: WaCallStatus): Promise<number> {
    record.statuses.push(status);
    const event = statusEvent({ callId: record.id, user: record.user, status, bizOpaque: record.bizOpaque, at: Date.now() });
    const contacts = this.options.outboundContacts ? [contactOf(record.user)] : undefined;
    return this.queue.deliver({ number: record.number, field: "calls", contacts, statuses: [event], errors: undefined });
  }

  private sendTerminate(record: WaCallRecord, details?: string, delivery: DeliveryOptions = {}): Promise<number> {
    const end = record.end;
    const event = waTerminateEvent({
      callId: record.id,
      number: record.number,
      user: record.user,
      direction: record.direction,
      status: end?.status ?? "COMPLETED",
      bizOpaque: record.bizOpaque,
      connectedAt: record.connectedAt,
      endedAt: end?.at ?? Date.now(),
    });
    const code = end?.errorCode;
    const errors = code === undefined ? undefined : [webhookError(code, errorTitle(code), details ?? errorTitle(code), WHATSAPP_ERROR_HREF)];
    const contacts = record.direction === "USER_INITIATED" || this.options.outboundContacts ? [contactOf(record.user)] : undefined;
    return this.queue.deliver({ number: record.number, field: "calls", contacts, calls: [event], errors }, delivery);
  }

  private async endCall(record: WaCallRecord, end: { by: "business" | "consumer" | "meta"; reason: WaEndReason; status: WaTerminateStatus; errorCode?: number }): Promise<boolean> {
    if (!record.finish({ ...end, errorCode: end.errorCode, at: Date.now() })) return false;
    await record.consumer.close();
    return true;
  }

  private async endAndReport(
    record: WaCallRecord,
    end: { by: "business" | "consumer" | "meta"; reason: WaEndReason; status: WaTerminateStatus; errorCode?: number },
    details?: string,
  ): Promise<void> {
    if (await this.endCall(record, end)) await this.sendTerminate(record, details);
  }

  private registerUser(options: PlaceWhatsAppCallOptions): WaUserIdentity {
    const phone = options.fromPhone === null ? undefined : (options.fromPhone?.replace(/^\+/, "") ?? undefined);
    const known = options.userId !== undefined ? this.users.get(options.userId) : phone !== undefined ? this.users.get(this.userByPhone.get(phone) ?? "") : undefined;
    const user: WaUserIdentity = {
      userId: options.userId ?? known?.userId ?? newBsuid(),
      waId: options.fromPhone === null ? undefined : (phone ?? known?.waId ?? newWaPhone()),
      name: options.name ?? known?.name ?? "WhatsApp User",
      username: options.username ?? known?.username ?? (options.fromPhone === null ? "user.without.number" : undefined),
    };
    this.users.set(user.userId, user);
    if (user.waId !== undefined) this.userByPhone.set(user.waId, user.userId);
    return user;
  }

  /** The user a phone number or BSUID names; unknown ones become users Meta knows (a fresh BSUID for a phone). */
  private resolveUser(ref: WaUserRef): WaUserIdentity {
    if (ref.kind === "bsuid") {
      const known = this.users.get(ref.value);
      if (known) return known;
      const user: WaUserIdentity = { userId: ref.value, waId: undefined, name: undefined, username: undefined };
      this.users.set(user.userId, user);
      return user;
    }
    const userId = this.userByPhone.get(ref.value);
    const known = userId !== undefined ? this.users.get(userId) : undefined;
    if (known) return known;
    const user: WaUserIdentity = { userId: newBsuid(), waId: ref.value, name: undefined, username: undefined };
    this.users.set(user.userId, user);
    this.userByPhone.set(ref.value, user.userId);
    return user;
  }

  private async newConsumer(state: NumberState, kind: WaConsumerKind, toneHz: number | undefined): Promise<WhatsAppConsumer> {
    const consumerOptions: WaConsumerOptions = { ...this.options.consumer, stunUrl: this.host.stunUrl(), ...(toneHz !== undefined ? { toneHz } : {}) };
    if (kind === "browser") {
      if (state.keyExchange === "SDES") throw new SimStateError(`number ${state.config.phoneNumberId} is keyed with SDES: the browser consumer speaks DTLS-SRTP only`);
      const { stunUrl: _stunUrl, ...browserOptions } = consumerOptions;
      return (await this.consumerBrowser()).newWhatsAppConsumer(browserOptions);
    }
    return state.keyExchange === "SDES" ? new SdesWhatsAppConsumer(consumerOptions) : new WebRtcWhatsAppConsumer(consumerOptions);
  }

  private newRecord(state: NumberState, user: WaUserIdentity, direction: "USER_INITIATED" | "BUSINESS_INITIATED", consumer: WhatsAppConsumer): WaCallRecord {
    let id = newWaCallId();
    while (this.records.has(id)) id = newWaCallId();
    const record = new WaCallRecord(id, state.ref, user, direction, consumer, Date.now());
    this.records.set(id, record);
    return record;
  }

  private facade(record: WaCallRecord): WhatsAppCall {
    let call = this.facades.get(record.id);
    if (!call) {
      call = new WhatsAppCall(record, this.consumerActions);
      this.facades.set(record.id, call);
    }
    return call;
  }

  private later(work: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) work();
    }, this.host.eventDelayMs);
    this.timers.add(timer);
  }

  private assertRunning(): void {
    if (this.stopped) throw new SimStateError("simulator stopped");
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The calling part of `GET /{phone-number-id}/settings`. */
function settingsOf(state: NumberState): unknown {
  return {
    calling: {
      status: "ENABLED",
      call_icon_visibility: "DEFAULT",
      callback_permission_status: "ENABLED",
      sip: { status: state.sipEnabled ? "ENABLED" : "DISABLED" },
      srtp_key_exchange_protocol: state.keyExchange,
    },
  };
}

function errorTitle(code: number): string {
  switch (code) {
    case WhatsAppCode.connectTimeout:
      return "Connect timeout";
    case WhatsAppCode.mediaReceiveTimeout:
      return "Media receive timeout";
    default:
      return "Call failed";
  }
}
