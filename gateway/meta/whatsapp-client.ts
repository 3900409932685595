import { DEFAULT_LIMITS, ID_PATTERNS } from "../config/limits.js";
import { parseCallPermission, type CallPermission } from "./call-permission.js";
import type { GraphAction } from "./graph-errors.js";
import { requireNonEmpty, type GraphHttp, type GraphRequest } from "./graph-http.js";
import { isRecord, readId, type JsonRecord } from "./wire-values.js";

/**
 * Who a business-initiated call or a permission lookup is for: the consumer's phone number, their
 * business-scoped user id (BSUID), or both. Phone numbers may be absent for users with a username.
 */
export interface WhatsAppRecipient {
  phone?: string;
  userId?: string;
}

export interface WhatsAppClientOptions {
  http: GraphHttp;
  phoneNumberId: string;
  accessToken: string;
}

/** Meta echoes it in later webhooks; longer values are refused (§2.2). */
export const MAX_BIZ_OPAQUE_LENGTH = 512;

/**
 * WhatsApp Cloud API calling: `/{phone-number-id}/calls` (pre_accept, accept, reject, terminate,
 * connect) and call permissions. Unlike Messenger, the business answers consumer calls
 * (`sdp_type: "answer"`, which is what Meta accepts although its tables say "offer"), and connect's
 * response carries only the call id: the consumer's answer comes by webhook.
 */
export class WhatsAppGraphClient {
  constructor(private readonly o: WhatsAppClientOptions) {
    if (!ID_PATTERNS.waBusinessId.test(o.phoneNumberId)) throw new RangeError("phoneNumberId must be the numeric phone-number id");
    if (o.accessToken.length === 0) throw new RangeError("accessToken must not be empty");
  }

  get phoneNumberId(): string {
    return this.o.phoneNumberId;
  }

  /**
   * Our answer to the consumer's offer before anyone picked up, so ICE and DTLS complete while the
   * PBX rings. Never retried: the state after an ambiguous failure is read from webhooks instead.
   */
  async preAccept(callId: string, sdpAnswer: string): Promise<void> {
    requireNonEmpty("sdpAnswer", sdpAnswer);
    await this.callAction("pre_accept", callId, { session: { sdp_type: "answer", sdp: sdpAnswer } }, "never");
  }

  /** The same answer as pre_accept (Meta refuses a different one), and our correlation id. */
  async accept(callId: string, sdpAnswer: string, bizOpaque?: string): Promise<void> {
    requireNonEmpty("sdpAnswer", sdpAnswer);
    const extra: JsonRecord = { session: { sdp_type: "answer", sdp: sdpAnswer } };
    if (fitsOpaque(bizOpaque)) extra.biz_opaque_callback_data = bizOpaque;
    await this.callAction("accept", callId, extra, "never");
  }

  async reject(callId: string): Promise<void> {
    await this.callAction("reject", callId, {}, "once-if-transient");
  }

  /** Also after the media path said BYE: Meta bills by it (§2.2). */
  async terminate(callId: string): Promise<void> {
    await this.callAction("terminate", callId, {}, "once-if-transient");
  }

  /** Calls a consumer. Never retried: a duplicate would ring them twice. Returns the call id only. */
  async connect(to: WhatsAppRecipient, sdpOffer: string, bizOpaque?: string): Promise<{ callId: string }> {
    requireNonEmpty("sdpOffer", sdpOffer);
    const body: JsonRecord = { messaging_product: "whatsapp", action: "connect", ...recipientFields(to), session: { sdp_type: "offer", sdp: sdpOffer } };
    if (fitsOpaque(bizOpaque)) body.biz_opaque_callback_data = bizOpaque;
    const response = await this.o.http.execute(this.request("connect", "POST", this.callsPath(), { body, psid: describeRecipient(to), retry: "never" }));
    const calls = Array.isArray(response.calls) ? response.calls : [];
    const first: unknown = calls[0];
    const callId = isRecord(first) ? readId(first.id) : (readId(response.id) ?? readId(response.call_id));
    if (callId === undefined) throw this.o.http.badResponse("connect", undefined, "connect response has no calls[0].id");
    if (callId.length > DEFAULT_LIMITS.maxIdLength || !ID_PATTERNS.waCallId.test(callId)) {
      throw this.o.http.badResponse("connect", undefined, `connect response has an invalid call id (${callId.length} characters)`);
    }
    return { callId };
  }

  async getCallPermission(to: WhatsAppRecipient): Promise<CallPermission> {
    const query = to.phone !== undefined ? `user_wa_id=${encodeURIComponent(to.phone)}` : `recipient=${encodeURIComponent(requireUser(to))}`;
    const path = `/${this.o.phoneNumberId}/call_permissions?${query}`;
    const body = await this.o.http.execute(this.request("call_permissions", "GET", path, { psid: describeRecipient(to), retry: "never" }));
    const permission = parseCallPermission(body);
    if (permission === undefined) {
      throw this.o.http.badResponse("call_permissions", undefined, "permission response has no recognisable permission status");
    }
    return permission;
  }

  /**
   * The interactive `call_permission_request` message. Meta allows one per 24 h and two per 7 days
   * per user: never retried, each attempt counts.
   */
  async requestCallPermission(to: WhatsAppRecipient): Promise<void> {
    const body: JsonRecord = {
      messaging_product: "whatsapp",
      recipient_type: "individual",
      ...recipientFields(to),
      type: "interactive",
      interactive: {
        type: "call_permission_request",
        action: { name: "call_permission_request" },
        body: { text: "May we call you about your request?" },
      },
    };
    await this.o.http.execute(this.request("permission_request", "POST", `/${this.o.phoneNumberId}/messages`, { body, psid: describeRecipient(to), retry: "never" }));
  }

  private async callAction(action: GraphAction, callId: string, extra: JsonRecord, retry: GraphRequest["retry"]): Promise<void> {
    requireNonEmpty("callId", callId);
    const body: JsonRecord = { messaging_product: "whatsapp", call_id: callId, action, ...extra };
    await this.o.http.execute(this.request(action, "POST", this.callsPath(), { body, callId, retry }));
  }

  private request(
    action: GraphAction,
    method: "GET" | "POST",
    path: string,
    rest: { body?: JsonRecord; callId?: string; psid?: string; retry: GraphRequest["retry"] },
  ): GraphRequest {
    return { action, method, path, accessToken: this.o.accessToken, ...rest };
  }

  private callsPath(): string {
    return `/${this.o.phoneNumberId}/calls`;
  }
}

function recipientFields(to: WhatsAppRecipient): JsonRecord {
  const fields: JsonRecord = {};
  if (to.phone !== undefined) fields.to = to.phone;
  if (to.userId !== undefined) fields.recipient = to.userId;
  if (to.phone === undefined && to.userId === undefined) throw new RangeError("a WhatsApp recipient needs a phone number or a user id");
  return fields;
}

function requireUser(to: WhatsAppRecipient): string {
  if (to.userId === undefined) throw new RangeError("a WhatsApp recipient needs a phone number or a user id");
  return to.userId;
}

function describeRecipient(to: WhatsAppRecipient): string {
  return to.phone ?? to.userId ?? "";
}

/** A correlation id longer than Meta takes is left out rather than cut: a cut id names nothing. */
function fitsOpaque(value: string | undefined): value is string {
  return value !== undefined && value.length <= MAX_BIZ_OPAQUE_LENGTH;
}
