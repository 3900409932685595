import { checkIdLength, ID_PATTERNS, sdpOverLimit, type IdKind } from "../config/limits.js";
import { MAX_BIZ_OPAQUE_LENGTH } from "./whatsapp-client.js";
import { ID_SHAPES, WebhookFormatError, type RejectedItem, type WebhookParseLimits } from "./webhook.js";
import { isRecord, readId, readNumber, readSdpField, readString, type JsonRecord } from "./wire-values.js";

export type WhatsAppDirection = "user_initiated" | "business_initiated";

/** RINGING, ACCEPTED and REJECTED are documented; other values are passed through in lower case. */
export type WhatsAppCallStatus = "ringing" | "accepted" | "rejected" | (string & {});

/** One entry of a failed call's `errors[]`. */
export interface WhatsAppError {
  code?: number;
  message?: string;
}

interface WhatsAppEventBase {
  platform: "whatsapp";
  /** `wacid.…` */
  callId: string;
  /** `metadata.phone_number_id`: the business number the call belongs to. */
  phoneNumberId: string;
  /** `entry[].id` */
  wabaId: string;
  /** Epoch seconds (sent as a string). */
  timestamp: number;
  /** Our correlation id, echoed from accept or connect. */
  bizOpaque?: string;
}

/** The consumer as the webhook names them: a phone number only when they have no username. */
export interface WhatsAppConsumer {
  phone?: string;
  userId?: string;
  name?: string;
}

export interface WhatsAppConnectEvent extends WhatsAppEventBase {
  event: "connect";
  direction: WhatsAppDirection;
  consumer: WhatsAppConsumer;
  /** The consumer's offer (user-initiated) or answer to ours (business-initiated). */
  sdp: string;
}

export interface WhatsAppStatusEvent extends WhatsAppEventBase {
  event: "status";
  status: WhatsAppCallStatus;
}

export interface WhatsAppTerminateEvent extends WhatsAppEventBase {
  event: "terminate";
  /** COMPLETED and FAILED documented, REJECTED seen; lower case here. */
  status: string;
  duration?: number;
  errors: WhatsAppError[];
}

export type WhatsAppCallEvent = WhatsAppConnectEvent | WhatsAppStatusEvent | WhatsAppTerminateEvent;

export interface WhatsAppPermissionReply {
  phoneNumberId: string;
  consumer: WhatsAppConsumer;
  response: "approve" | "reject";
  permanent: boolean;
}

export interface WhatsAppParsedWebhook {
  events: WhatsAppCallEvent[];
  permissionReplies: WhatsAppPermissionReply[];
  rejected: RejectedItem[];
}

/** Longest profile name passed on (to a SIP display name); Meta's own limit is lower. */
const MAX_NAME_LENGTH = 128;
const MAX_ERRORS = 8;

class ItemRejected extends Error {}

function reject(reason: string): never {
  throw new ItemRejected(reason);
}

/**
 * Parses a WhatsApp Business Account webhook (`object: "whatsapp_business_account"`): every
 * `entry[].changes[]` of field `calls` (its `calls[]` and `statuses[]`) and the permission replies
 * in field `messages`. Deliveries are batched (up to 1000 updates), so a bad item is reported in
 * `rejected` and the rest still come through; a value over a bound refuses the whole delivery
 * (LimitExceededError), as for Messenger.
 */
export function parseWhatsAppWebhook(body: unknown, limits: WebhookParseLimits): WhatsAppParsedWebhook {
  if (!isRecord(body)) throw new WebhookFormatError("webhook body is not a JSON object");
  if (body.object !== "whatsapp_business_account") throw new WebhookFormatError('expected object "whatsapp_business_account"');
  if (!Array.isArray(body.entry)) throw new WebhookFormatError("webhook body has no entry[] array");
  const out: WhatsAppParsedWebhook = { events: [], permissionReplies: [], rejected: [] };
  body.entry.forEach((entry: unknown, i) => collect(`entry[${i}]`, out, () => parseEntry(entry, `entry[${i}]`, out, limits)));
  return out;
}

function parseEntry(entry: unknown, index: string, out: WhatsAppParsedWebhook, limits: WebhookParseLimits): void {
  if (!isRecord(entry)) reject("entry is not an object");
  const wabaId = readIdOf("waBusinessId", "entry id", entry.id, limits) ?? reject("entry has no WABA id");
  if (!Array.isArray(entry.changes)) reject("entry has no changes[] array");
  entry.changes.forEach((change: unknown, j) => {
    const at = `${index}.changes[${j}]`;
    collect(at, out, () => {
      if (!isRecord(change)) reject("change is not an object");
      const value = change.value;
      if (!isRecord(value)) reject("change has no value");
      // Other fields (messages, statuses of messages...) share the endpoint; only calls and the
      // permission replies concern calling.
      if (change.field === "calls") parseCallsValue(value, at, wabaId, out, limits);
      else if (change.field === "messages") parsePermissionReplies(value, at, out, limits);
    });
  });
}

function parseCallsValue(value: JsonRecord, at: string, wabaId: string, out: WhatsAppParsedWebhook, limits: WebhookParseLimits): void {
  const metadata = isRecord(value.metadata) ? value.metadata : reject("calls change has no metadata");
  const phoneNumberId = readIdOf("waBusinessId", "metadata.phone_number_id", metadata.phone_number_id, limits) ?? reject("calls change has no metadata.phone_number_id");
  const names = contactNames(value.contacts, limits);
  const errors = readErrors(value.errors);
  const base = { wabaId, phoneNumberId };
  if (value.calls !== undefined) {
    if (!Array.isArray(value.calls)) reject("calls is not an array");
    value.calls.forEach((item: unknown, k) => {
      collect(`${at}.calls[${k}]`, out, () => out.events.push(parseCall(item, base, names, errors, limits)));
    });
  }
  if (value.statuses !== undefined) {
    if (!Array.isArray(value.statuses)) reject("statuses is not an array");
    value.statuses.forEach((item: unknown, k) => {
      collect(`${at}.statuses[${k}]`, out, () => {
        const status = parseStatus(item, base, limits);
        if (status) out.events.push(status);
      });
    });
  }
}

function parseCall(
  item: unknown,
  base: { wabaId: string; phoneNumberId: string },
  names: Map<string, string>,
  errors: WhatsAppError[],
  limits: WebhookParseLimits,
): WhatsAppCallEvent {
  if (!isRecord(item)) reject("call item is not an object");
  const event = readString(item.event) ?? reject("call item has no event");
  const callId = readIdOf("waCallId", "call id", item.id, limits) ?? reject(`${short(event)}: missing call id`);
  const timestamp = readNumber(item.timestamp) ?? reject(`${short(event)}: missing timestamp`);
  const common = withoutUndefined({ platform: "whatsapp" as const, callId, ...base, timestamp, bizOpaque: readOpaque(item.biz_opaque_callback_data) });
  switch (event) {
    case "connect": {
      const direction = readDirection(item.direction);
      // The consumer is `from` on their own calls and `to` on ours.
      const consumer =
        direction === "user_initiated"
          ? readConsumer(item.from, item.from_user_id, names, limits)
          : readConsumer(item.to, item.to_user_id, names, limits);
      const legacy = isRecord(item.connection) && isRecord(item.connection.webrtc) ? item.connection.webrtc.sdp : undefined;
      const session = readSdpField(item.session, limits.maxJsonDepth) ?? readSdpField(legacy, limits.maxJsonDepth) ?? reject("connect: missing session.sdp");
      const over = sdpOverLimit(session.sdp, limits.sdp);
      if (over) throw over;
      return { ...common, event: "connect", direction, consumer, sdp: session.sdp };
    }
    case "terminate":
      return withoutUndefined({
        ...common,
        event: "terminate" as const,
        status: (readString(item.status) ?? "unknown").toLowerCase().slice(0, 32),
        duration: readNumber(item.duration),
        errors,
      });
    default:
      reject(`unknown call event ${JSON.stringify(short(event))}`);
  }
}

function parseStatus(item: unknown, base: { wabaId: string; phoneNumberId: string }, limits: WebhookParseLimits): WhatsAppStatusEvent | undefined {
  if (!isRecord(item)) reject("status item is not an object");
  // Message delivery statuses share `statuses[]` under other fields; only `type: call` is ours.
  if (item.type !== undefined && item.type !== "call") return undefined;
  const callId = readIdOf("waCallId", "status id", item.id, limits) ?? reject("status: missing call id");
  const timestamp = readNumber(item.timestamp) ?? reject("status: missing timestamp");
  const status = (readString(item.status) ?? reject("status: missing status")).toLowerCase().slice(0, 32);
  return withoutUndefined({ platform: "whatsapp" as const, callId, ...base, timestamp, bizOpaque: readOpaque(item.biz_opaque_callback_data), event: "status" as const, status });
}

function parsePermissionReplies(value: JsonRecord, at: string, out: WhatsAppParsedWebhook, limits: WebhookParseLimits): void {
  if (!Array.isArray(value.messages)) return;
  const metadata = isRecord(value.metadata) ? value.metadata : undefined;
  const phoneNumberId = readIdOf("waBusinessId", "metadata.phone_number_id", metadata?.phone_number_id, limits);
  if (phoneNumberId === undefined) return;
  const names = contactNames(value.contacts, limits);
  value.messages.forEach((message: unknown, k) => {
    if (!isRecord(message) || !isRecord(message.interactive) || message.interactive.type !== "call_permission_reply") return;
    const reply = message.interactive;
    collect(`${at}.messages[${k}]`, out, () => {
      const body = isRecord(reply.call_permission_reply) ? reply.call_permission_reply : reply;
      const raw = (readString(body.response) ?? reject("call_permission_reply: missing response")).toLowerCase();
      if (raw !== "accept" && raw !== "reject" && raw !== "approve") reject(`call_permission_reply: unknown response ${JSON.stringify(short(raw))}`);
      out.permissionReplies.push({
        phoneNumberId,
        consumer: readConsumer(message.from, message.from_user_id, names, limits),
        response: raw === "reject" ? "reject" : "approve",
        permanent: body.is_permanent === true,
      });
    });
  });
}

/** `contacts[]`: profile names by phone number and by user id. */
function contactNames(contacts: unknown, limits: WebhookParseLimits): Map<string, string> {
  const names = new Map<string, string>();
  if (!Array.isArray(contacts)) return names;
  for (const c of contacts.slice(0, 1000)) {
    if (!isRecord(c) || !isRecord(c.profile)) continue;
    const name = cleanName(c.profile.name);
    if (name === undefined) continue;
    for (const key of [readId(c.wa_id), readId(c.user_id)]) {
      if (key !== undefined && key.length <= limits.maxIdLength) names.set(key, name);
    }
  }
  return names;
}

function readConsumer(phoneValue: unknown, userValue: unknown, names: Map<string, string>, limits: WebhookParseLimits): WhatsAppConsumer {
  const phone = readIdOf("waPhone", "phone number", typeof phoneValue === "string" ? phoneValue.replace(/^\+/, "") : phoneValue, limits);
  const userId = readIdOf("waUserId", "user id", userValue, limits);
  if (phone === undefined && userId === undefined) reject("no phone number or user id for the consumer");
  const name = (phone !== undefined ? names.get(phone) : undefined) ?? (userId !== undefined ? names.get(userId) : undefined);
  return withoutUndefined({ phone, userId, name });
}

function readDirection(value: unknown): WhatsAppDirection {
  const raw = readString(value) ?? reject("connect: missing direction");
  const direction = raw.toLowerCase();
  if (direction === "user_initiated" || direction === "business_initiated") return direction;
  reject(`connect: unknown direction ${JSON.stringify(short(raw))}`);
}

function readErrors(value: unknown): WhatsAppError[] {
  if (!Array.isArray(value)) return [];
  return value
    .filter(isRecord)
    .slice(0, MAX_ERRORS)
    .map((e) => withoutUndefined({ code: readNumber(e.code), message: readString(e.message)?.slice(0, 200) }));
}

function readOpaque(value: unknown): string | undefined {
  const s = readString(value);
  return s === undefined || s.length > MAX_BIZ_OPAQUE_LENGTH ? undefined : s;
}

/** A display name goes into a SIP header: printable text only, bounded. */
function cleanName(value: unknown): string | undefined {
  const s = readString(value);
  if (s === undefined) return undefined;
  const clean = s.replace(/[\u0000-\u001f\u007f"\\]/g, "").trim().slice(0, MAX_NAME_LENGTH);
  return clean.length > 0 ? clean : undefined;
}

function readIdOf(kind: IdKind, label: string, value: unknown, limits: WebhookParseLimits): string | undefined {
  const id = readId(value);
  if (id === undefined) return undefined;
  checkIdLength(label, id, limits.maxIdLength);
  if (!ID_PATTERNS[kind].test(id)) reject(`${label} ${JSON.stringify(short(id))} is not ${ID_SHAPES[kind]}`);
  return id;
}

function collect(index: string, out: WhatsAppParsedWebhook, parse: () => void): void {
  try {
    parse();
  } catch (err) {
    if (!(err instanceof ItemRejected)) throw err;
    out.rejected.push({ index, reason: err.message });
  }
}

function short(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function withoutUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) {
    if (value[key] === undefined) delete value[key];
  }
  return value;
}

/** Identity of one delivery of one event, for dropping Meta's retries and duplicates. */
export function whatsAppDedupeKey(event: WhatsAppCallEvent): string {
  const discriminator = event.event === "connect" ? event.direction : event.status;
  return JSON.stringify(["wa", event.callId, event.event, event.timestamp, discriminator]);
}
