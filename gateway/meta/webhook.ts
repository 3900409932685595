import {
  checkIdLength,
  DEFAULT_LIMITS,
  ID_PATTERNS,
  jsonDepthExceeds,
  LimitExceededError,
  sdpOverLimit,
  type IdKind,
  type Limits,
} from "../config/limits.js";
import {
  isRecord,
  readId,
  readNonNegativeInteger,
  readNumber,
  readSdpField,
  readString,
  type JsonRecord,
} from "./wire-values.js";

export type CallDirection = "user_initiated" | "business_initiated";

/** Messenger documents no `rejected` value: a rejection arrives as a `terminate` with status `Completed`. */
export type CallStatus = "ringing" | "accepted";

/** `Completed` covers normal ends and rejections by either side; other values may appear and are passed through. */
export type TerminateStatus = "Completed" | "Failed" | (string & {});

export type PermissionResponse = "approve" | "reject";

interface CallEventBase {
  /** Messenger call id (`c_…`). */
  callId: string;
  /** `entry[].id`: the Page the call belongs to. */
  pageId: string;
  /** As sent by Meta: integer seconds on Messenger (see isStaleConnect for the unit tolerance). */
  timestamp: number;
}

/** Carries no SDP on Messenger: the business makes the offer in `accept`. */
export interface ConnectEvent extends CallEventBase {
  event: "connect";
  from: string;
  to: string;
  direction: CallDirection;
}

export interface CallStatusEvent extends CallEventBase {
  event: "call_status";
  status: CallStatus;
  recipientId: string;
}

export interface MediaUpdateEvent extends CallEventBase {
  event: "media_update";
  /** Meta's media version; only the highest one seen is worth applying. */
  version: number;
  offer: { sdpType: string; sdp: string };
}

export interface TerminateEvent extends CallEventBase {
  event: "terminate";
  status: TerminateStatus;
  startTime?: number;
  endTime?: number;
  /** Seconds from the business connecting; absent when the business never connected. */
  duration?: number;
}

export type MessengerCallEvent = ConnectEvent | CallStatusEvent | MediaUpdateEvent | TerminateEvent;

export interface PermissionReply {
  pageId: string;
  psid: string;
  response: PermissionResponse;
  timestamp?: number;
  expiresAt?: number;
}

export interface RejectedItem {
  /** Where the item sat in the payload, e.g. `entry[1].calls[0]`. */
  index: string;
  reason: string;
}

export interface ParsedWebhook {
  events: MessengerCallEvent[];
  permissionReplies: PermissionReply[];
  rejected: RejectedItem[];
}

/** The envelope itself is unusable (wrong `object`, no `entry[]`): nothing in it can be processed. */
export class WebhookFormatError extends Error {
  override readonly name = "WebhookFormatError";
}

/** The bounds a delivery is parsed within; one over them refuses the whole delivery. */
export interface WebhookParseLimits {
  maxIdLength: number;
  maxJsonDepth: number;
  sdp: Limits["sdp"];
}

const DEFAULT_PARSE_LIMITS: WebhookParseLimits = {
  maxIdLength: DEFAULT_LIMITS.maxIdLength,
  maxJsonDepth: DEFAULT_LIMITS.webhook.maxJsonDepth,
  sdp: DEFAULT_LIMITS.sdp,
};

/** Thrown inside item parsers and caught per item, so one bad item never drops its neighbours. */
class ItemRejected extends Error {}

function reject(reason: string): never {
  throw new ItemRejected(reason);
}

/**
 * Parses a Messenger `calls` / `call_permission_reply` webhook body. Every `entry[]` and
 * every `calls[]` item is examined; Meta batches deliveries, so a bad item is reported in
 * `rejected` and the rest still come through. A value over one of the bounds (an id, an SDP)
 * throws LimitExceededError for the whole delivery: Meta never sends one, so nothing in such a
 * delivery is trusted or kept.
 */
export function parseMessengerWebhook(body: unknown, limits: WebhookParseLimits = DEFAULT_PARSE_LIMITS): ParsedWebhook {
  if (!isRecord(body)) throw new WebhookFormatError("webhook body is not a JSON object");
  if (body.object !== "page") {
    throw new WebhookFormatError(`unexpected webhook object ${describe(body.object)}, expected "page"`);
  }
  if (!Array.isArray(body.entry)) throw new WebhookFormatError("webhook body has no entry[] array");

  const result: ParsedWebhook = { events: [], permissionReplies: [], rejected: [] };
  body.entry.forEach((entry: unknown, i) => parseEntry(entry, `entry[${i}]`, result, limits));
  return result;
}

/**
 * An id of the given kind: undefined when absent, LimitExceededError when too long, an item
 * rejection when it does not have the shape Meta documents for it.
 */
function readIdOf(kind: IdKind, label: string, value: unknown, limits: WebhookParseLimits): string | undefined {
  const id = readId(value);
  if (id === undefined) return undefined;
  checkIdLength(label, id, limits.maxIdLength);
  if (!ID_PATTERNS[kind].test(id)) reject(`${label} ${quote(id)} is not ${ID_SHAPES[kind]}`);
  return id;
}

export const ID_SHAPES: Record<IdKind, string> = {
  callId: "a Messenger call id (c_…)",
  psid: "a page-scoped id (digits)",
  pageId: "a Page id (digits)",
  waCallId: "a WhatsApp call id (wacid.…)",
  waBusinessId: "a WhatsApp business id (digits)",
  waPhone: "a phone number (digits)",
  waUserId: "a business-scoped user id",
};

function parseEntry(entry: unknown, index: string, out: ParsedWebhook, limits: WebhookParseLimits): void {
  if (!isRecord(entry)) {
    out.rejected.push({ index, reason: "entry is not an object" });
    return;
  }
  let pageId: string | undefined;
  try {
    pageId = readIdOf("pageId", "entry id", entry.id, limits);
  } catch (err) {
    if (!(err instanceof ItemRejected)) throw err;
    out.rejected.push({ index, reason: err.message });
    return;
  }
  const entryTime = readNumber(entry.time);

  // The reference shows the reply directly under entry[]; the permissions guide calls it a postback.
  if (entry.call_permission_reply !== undefined) {
    collect(index, out, () => out.permissionReplies.push(parsePermissionReply(entry, pageId, limits)));
  }

  if (entry.messaging !== undefined) {
    if (!Array.isArray(entry.messaging)) {
      out.rejected.push({ index: `${index}.messaging`, reason: "messaging is not an array" });
    } else {
      entry.messaging.forEach((item: unknown, j) => {
        // Other Messenger fields share this endpoint; only permission replies concern calling.
        if (!isRecord(item) || item.call_permission_reply === undefined) return;
        collect(`${index}.messaging[${j}]`, out, () => out.permissionReplies.push(parsePermissionReply(item, pageId, limits)));
      });
    }
  }

  if (entry.calls !== undefined) {
    if (!Array.isArray(entry.calls)) {
      out.rejected.push({ index: `${index}.calls`, reason: "calls is not an array" });
    } else if (pageId === undefined) {
      out.rejected.push({ index, reason: "entry has calls[] but no page id" });
    } else {
      entry.calls.forEach((item: unknown, j) => {
        collect(`${index}.calls[${j}]`, out, () => out.events.push(parseCallEvent(item, pageId, entryTime, limits)));
      });
    }
  }
}

function collect(index: string, out: ParsedWebhook, parse: () => void): void {
  try {
    parse();
  } catch (err) {
    if (!(err instanceof ItemRejected)) throw err;
    out.rejected.push({ index, reason: err.message });
  }
}

function parseCallEvent(item: unknown, pageId: string, entryTime: number | undefined, limits: WebhookParseLimits): MessengerCallEvent {
  if (!isRecord(item)) reject("call item is not an object");
  const rawEvent = readString(item.event);
  if (rawEvent === undefined) reject("call item has no event");
  const event = rawEvent.length > 40 ? `${rawEvent.slice(0, 40)}…` : rawEvent;
  const callId = readIdOf("callId", "call id", item.id, limits) ?? readIdOf("callId", "call id", item.call_id, limits) ?? reject(`${event}: missing call id`);
  // entry.time stands in so a terminate is never lost over a missing field.
  const timestamp = readNumber(item.timestamp) ?? entryTime ?? reject(`${event}: missing timestamp`);
  const base = { callId, pageId, timestamp };

  switch (rawEvent) {
    case "connect":
      return {
        ...base,
        event: rawEvent,
        // A PSID or the Page id, depending on the direction: digits either way.
        from: readIdOf("psid", "from", item.from, limits) ?? reject("connect: missing from"),
        to: readIdOf("psid", "to", item.to, limits) ?? pageId,
        direction: readDirection(item),
      };
    case "call_status":
      return {
        ...base,
        event: rawEvent,
        status: readCallStatus(item.call_status ?? item.status),
        recipientId: readIdOf("psid", "recipient_id", item.recipient_id, limits) ?? reject("call_status: missing recipient_id"),
      };
    case "media_update":
      return { ...base, event: rawEvent, ...readMediaSession(item.session, limits) };
    case "terminate":
      return withoutUndefined({
        ...base,
        event: rawEvent,
        status: readTerminateStatus(item.status, limits),
        startTime: readNumber(item.start_time),
        endTime: readNumber(item.end_time),
        duration: readNumber(item.duration),
      });
    default:
      reject(`unknown call event ${quote(rawEvent)}`);
  }
}

function readDirection(item: JsonRecord): CallDirection {
  const raw = readString(item.call_direction) ?? readString(item.direction);
  // Guessing here would answer an outbound call as if it were inbound.
  if (raw === undefined) reject("connect: missing call_direction");
  const direction = raw.toLowerCase();
  if (direction === "user_initiated" || direction === "business_initiated") return direction;
  reject(`connect: unknown call_direction ${quote(raw)}`);
}

function readCallStatus(value: unknown): CallStatus {
  const raw = readString(value) ?? reject("call_status: missing call_status");
  const status = raw.toLowerCase();
  if (status === "ringing" || status === "accepted") return status;
  reject(`call_status: unknown status ${quote(raw)}`);
}

function readTerminateStatus(value: unknown, limits: WebhookParseLimits): TerminateStatus {
  const raw = readString(value) ?? reject("terminate: missing status");
  // Passed through and part of the dedupe key, so it is bounded like an id.
  checkIdLength("terminate status", raw, limits.maxIdLength);
  const lower = raw.toLowerCase();
  if (lower === "completed") return "Completed";
  if (lower === "failed") return "Failed";
  return raw;
}

function readMediaSession(value: unknown, limits: WebhookParseLimits): Pick<MediaUpdateEvent, "version" | "offer"> {
  let session = value;
  // The media_update guide describes `session` as a JSON-serialised string.
  if (typeof session === "string") {
    if (jsonDepthExceeds(session, limits.maxJsonDepth)) {
      throw new LimitExceededError("WEBHOOK_MAX_JSON_DEPTH", limits.maxJsonDepth, "media_update session string nested too deeply");
    }
    try {
      session = JSON.parse(session);
    } catch {
      reject("media_update: session is not valid JSON");
    }
  }
  if (!isRecord(session)) reject("media_update: missing session");
  const version = readNonNegativeInteger(session.version) ?? reject("media_update: missing or invalid session.version");
  const sdp = readSdpField(session.sdp_renegotiation, limits.maxJsonDepth) ?? reject("media_update: missing session.sdp_renegotiation");
  const over = sdpOverLimit(sdp.sdp, limits.sdp);
  if (over) throw over;
  return { version, offer: { sdpType: sdp.sdpType ?? "offer", sdp: sdp.sdp } };
}

function parsePermissionReply(item: JsonRecord, entryPageId: string | undefined, limits: WebhookParseLimits): PermissionReply {
  const reply = item.call_permission_reply;
  if (!isRecord(reply)) reject("call_permission_reply is not an object");
  const psid = (isRecord(item.sender) ? readIdOf("psid", "sender.id", item.sender.id, limits) : undefined) ?? reject("call_permission_reply: missing sender.id");
  const recipient = isRecord(item.recipient) ? readIdOf("pageId", "recipient.id", item.recipient.id, limits) : undefined;
  const pageId = recipient ?? entryPageId ?? reject("call_permission_reply: missing recipient.id");
  const raw = readString(reply.response) ?? reject("call_permission_reply: missing response");
  return withoutUndefined({
    pageId,
    psid,
    response: readPermissionResponse(raw),
    timestamp: readNumber(item.timestamp),
    expiresAt: readNumber(reply.expiration_timestamp),
  });
}

function readPermissionResponse(raw: string): PermissionResponse {
  const response = raw.toLowerCase();
  // WhatsApp's equivalent says "accept"; the Messenger docs say "approve".
  if (response === "approve" || response === "accept") return "approve";
  if (response === "reject") return "reject";
  reject(`call_permission_reply: unknown response ${quote(raw)}`);
}

/** Text from outside as it may appear in a reason: quoted, and cut short. */
function quote(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/**
 * What a value is, for a reason, without serialising it: a signed body may nest thousands of
 * levels deep, and JSON.stringify would throw RangeError on it.
 */
function describe(value: unknown): string {
  if (typeof value === "string") return quote(value);
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : String(value).slice(0, 40);
}

/** Keeps optional fields truly absent so `"startTime" in event` and deep equality behave. */
function withoutUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) {
    if (value[key] === undefined) delete value[key];
  }
  return value;
}

/** Identity of one delivery of one event, for dropping Meta's retries and duplicates. */
export function dedupeKey(event: MessengerCallEvent): string {
  let discriminator: string | number;
  switch (event.event) {
    case "connect":
      discriminator = "";
      break;
    case "call_status":
      discriminator = event.status;
      break;
    case "media_update":
      discriminator = event.version;
      break;
    case "terminate":
      discriminator = event.status;
      break;
  }
  return JSON.stringify([event.callId, event.event, event.timestamp, discriminator]);
}
