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

/** Thrown inside item parsers and caught per item, so one bad item never drops its neighbours. */
class ItemRejected extends Error {}

function reject(reason: string): never {
  throw new ItemRejected(reason);
}

/**
 * Parses a Messenger `calls` / `call_permission_reply` webhook body. Every `entry[]` and
 * every `calls[]` item is examined; Meta batches deliveries, so a bad item is reported in
 * `rejected` and the rest still come through.
 */
export function parseMessengerWebhook(body: unknown): ParsedWebhook {
  if (!isRecord(body)) throw new WebhookFormatError("webhook body is not a JSON object");
  if (body.object !== "page") {
    throw new WebhookFormatError(`unexpected webhook object ${JSON.stringify(body.object ?? null)}, expected "page"`);
  }
  if (!Array.isArray(body.entry)) throw new WebhookFormatError("webhook body has no entry[] array");

  const result: ParsedWebhook = { events: [], permissionReplies: [], rejected: [] };
  body.entry.forEach((entry: unknown, i) => parseEntry(entry, `entry[${i}]`, result));
  return result;
}

function parseEntry(entry: unknown, index: string, out: ParsedWebhook): void {
  if (!isRecord(entry)) {
    out.rejected.push({ index, reason: "entry is not an object" });
    return;
  }
  const pageId = readId(entry.id);
  const entryTime = readNumber(entry.time);

  // The reference shows the reply directly under entry[]; the permissions guide calls it a postback.
  if (entry.call_permission_reply !== undefined) {
    collect(index, out, () => out.permissionReplies.push(parsePermissionReply(entry, pageId)));
  }

  if (entry.messaging !== undefined) {
    if (!Array.isArray(entry.messaging)) {
      out.rejected.push({ index: `${index}.messaging`, reason: "messaging is not an array" });
    } else {
      entry.messaging.forEach((item: unknown, j) => {
        // Other Messenger fields share this endpoint; only permission replies concern calling.
        if (!isRecord(item) || item.call_permission_reply === undefined) return;
        collect(`${index}.messaging[${j}]`, out, () => out.permissionReplies.push(parsePermissionReply(item, pageId)));
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
        collect(`${index}.calls[${j}]`, out, () => out.events.push(parseCallEvent(item, pageId, entryTime)));
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

function parseCallEvent(item: unknown, pageId: string, entryTime: number | undefined): MessengerCallEvent {
  if (!isRecord(item)) reject("call item is not an object");
  const event = readString(item.event);
  if (event === undefined) reject("call item has no event");
  const callId = readId(item.id) ?? readId(item.call_id) ?? reject(`${event}: missing call id`);
  // entry.time stands in so a terminate is never lost over a missing field.
  const timestamp = readNumber(item.timestamp) ?? entryTime ?? reject(`${event}: missing timestamp`);
  const base = { callId, pageId, timestamp };

  switch (event) {
    case "connect":
      return {
        ...base,
        event,
        from: readId(item.from) ?? reject("connect: missing from"),
        to: readId(item.to) ?? pageId,
        direction: readDirection(item),
      };
    case "call_status":
      return {
        ...base,
        event,
        status: readCallStatus(item.call_status ?? item.status),
        recipientId: readId(item.recipient_id) ?? reject("call_status: missing recipient_id"),
      };
    case "media_update":
      return { ...base, event, ...readMediaSession(item.session) };
    case "terminate":
      return withoutUndefined({
        ...base,
        event,
        status: readTerminateStatus(item.status),
        startTime: readNumber(item.start_time),
        endTime: readNumber(item.end_time),
        duration: readNumber(item.duration),
      });
    default:
      reject(`unknown call event ${JSON.stringify(event)}`);
  }
}

function readDirection(item: JsonRecord): CallDirection {
  const raw = readString(item.call_direction) ?? readString(item.direction);
  // Guessing here would answer an outbound call as if it were inbound.
  if (raw === undefined) reject("connect: missing call_direction");
  const direction = raw.toLowerCase();
  if (direction === "user_initiated" || direction === "business_initiated") return direction;
  reject(`connect: unknown call_direction ${JSON.stringify(raw)}`);
}

function readCallStatus(value: unknown): CallStatus {
  const raw = readString(value) ?? reject("call_status: missing call_status");
  const status = raw.toLowerCase();
  if (status === "ringing" || status === "accepted") return status;
  reject(`call_status: unknown status ${JSON.stringify(raw)}`);
}

function readTerminateStatus(value: unknown): TerminateStatus {
  const raw = readString(value) ?? reject("terminate: missing status");
  const lower = raw.toLowerCase();
  if (lower === "completed") return "Completed";
  if (lower === "failed") return "Failed";
  return raw;
}

function readMediaSession(value: unknown): Pick<MediaUpdateEvent, "version" | "offer"> {
  let session = value;
  // The media_update guide describes `session` as a JSON-serialised string.
  if (typeof session === "string") {
    try {
      session = JSON.parse(session);
    } catch {
      reject("media_update: session is not valid JSON");
    }
  }
  if (!isRecord(session)) reject("media_update: missing session");
  const version = readNonNegativeInteger(session.version) ?? reject("media_update: missing or invalid session.version");
  const sdp = readSdpField(session.sdp_renegotiation) ?? reject("media_update: missing session.sdp_renegotiation");
  return { version, offer: { sdpType: sdp.sdpType ?? "offer", sdp: sdp.sdp } };
}

function parsePermissionReply(item: JsonRecord, entryPageId: string | undefined): PermissionReply {
  const reply = item.call_permission_reply;
  if (!isRecord(reply)) reject("call_permission_reply is not an object");
  const psid = (isRecord(item.sender) ? readId(item.sender.id) : undefined) ?? reject("call_permission_reply: missing sender.id");
  const recipient = isRecord(item.recipient) ? readId(item.recipient.id) : undefined;
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
  reject(`call_permission_reply: unknown response ${JSON.stringify(raw)}`);
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
