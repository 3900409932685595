/**
 * WhatsApp webhook payloads as Meta documents them (meta-calling-api.md §2.3): `object:
 * "whatsapp_business_account"`, `entry[].id` = WABA id, `entry[].changes[]` with `field` and a `value`
 * carrying `messaging_product`, `metadata`, optional `contacts[]` and one of `calls[]`, `statuses[]`,
 * `messages[]`, plus `errors[]` on failures. Timestamps are strings of Unix seconds.
 */

export type WaDirection = "USER_INITIATED" | "BUSINESS_INITIATED";
export type WaTerminateStatus = "COMPLETED" | "FAILED";
export type WaCallStatus = "RINGING" | "ACCEPTED" | "REJECTED";

/** The business number a webhook is about. */
export interface WaNumberRef {
  wabaId: string;
  phoneNumberId: string;
  displayPhoneNumber: string;
}

/** The consumer: a BSUID always, a phone number unless they hide it behind a username. */
export interface WaUserIdentity {
  userId: string;
  waId: string | undefined;
  name: string | undefined;
  username: string | undefined;
}

export interface WaContact {
  profile: { name?: string; username?: string };
  wa_id?: string;
  user_id: string;
}

export interface WaWebhookError {
  code: number;
  message: string;
  href: string;
  error_data: { details: string };
}

export interface WaSdpSession {
  sdp_type: "offer" | "answer";
  sdp: string;
}

export interface WaConnectEvent {
  id: string;
  to?: string;
  to_user_id?: string;
  from?: string;
  from_user_id?: string;
  event: "connect";
  timestamp: string;
  direction: WaDirection;
  biz_opaque_callback_data?: string;
  session: WaSdpSession;
  /** Legacy duplicate of the answer on business-initiated connects. */
  connection?: { webrtc: { sdp: string } };
}

export interface WaTerminateEvent {
  id: string;
  to?: string;
  to_user_id?: string;
  from?: string;
  from_user_id?: string;
  event: "terminate";
  direction: WaDirection;
  biz_opaque_callback_data?: string;
  timestamp: string;
  status: WaTerminateStatus;
  start_time?: string;
  end_time?: string;
  duration?: number;
}

export type WaCallEvent = WaConnectEvent | WaTerminateEvent;

export interface WaStatusEvent {
  id: string;
  timestamp: string;
  type: "call";
  status: WaCallStatus;
  recipient_id?: string;
  recipient_user_id: string;
  biz_opaque_callback_data?: string;
}

export interface WaPermissionReplyMessage {
  from?: string;
  from_user_id: string;
  id: string;
  timestamp: string;
  type: "interactive";
  context?: { from: string; id: string };
  interactive: {
    type: "call_permission_reply";
    call_permission_reply: {
      response: "accept" | "reject";
      is_permanent: boolean;
      expiration_timestamp?: string;
      response_source: "user_action" | "automatic";
    };
  };
}

/** One update of a webhook, before it is put in an envelope (alone or batched with others). */
export type WaUpdate =
  | { number: WaNumberRef; field: "calls"; contacts: WaContact[] | undefined; calls: WaCallEvent[]; errors: WaWebhookError[] | undefined }
  | { number: WaNumberRef; field: "calls"; contacts: WaContact[] | undefined; statuses: WaStatusEvent[]; errors: WaWebhookError[] | undefined }
  | { number: WaNumberRef; field: "messages"; contacts: WaContact[] | undefined; messages: WaPermissionReplyMessage[] };

export interface WaChangeValue {
  messaging_product: "whatsapp";
  metadata: { display_phone_number: string; phone_number_id: string };
  contacts?: WaContact[];
  calls?: WaCallEvent[];
  statuses?: WaStatusEvent[];
  messages?: WaPermissionReplyMessage[];
  errors?: WaWebhookError[];
}

export interface WaWebhookPayload {
  object: "whatsapp_business_account";
  entry: Array<{ id: string; changes: Array<{ field: "calls" | "messages"; value: WaChangeValue }> }>;
}

/**
 * How several updates share one POST: each its own `changes[]` item (grouped into one entry per WABA), or
 * merged into one value per number and kind (`calls[]`/`statuses[]`/`messages[]` holding several items).
 */
export type WaBatchLayout = "change-per-update" | "merged";

/** Meta batches at most 1000 updates per POST (§3.3). */
export const MAX_UPDATES_PER_POST = 1000;

export function waTimestamp(epochMs: number): string {
  return String(Math.floor(epochMs / 1000));
}

export function contactOf(user: WaUserIdentity): WaContact {
  const profile: WaContact["profile"] = {};
  if (user.name !== undefined) profile.name = user.name;
  if (user.username !== undefined) profile.username = user.username;
  return { profile, ...(user.waId !== undefined ? { wa_id: user.waId } : {}), user_id: user.userId };
}

/** A user-initiated connect: the consumer's offer. `from` is left out when the user has no visible number. */
export function userConnectEvent(args: { callId: string; number: WaNumberRef; user: WaUserIdentity; offer: string; at: number }): WaConnectEvent {
  return {
    id: args.callId,
    to: args.number.displayPhoneNumber,
    ...(args.user.waId !== undefined ? { from: args.user.waId } : {}),
    from_user_id: args.user.userId,
    event: "connect",
    timestamp: waTimestamp(args.at),
    direction: "USER_INITIATED",
    session: { sdp_type: "offer", sdp: args.offer },
  };
}

/** The consumer's answer to a business connect, with the legacy `connection.webrtc.sdp` duplicate. */
export function businessConnectEvent(args: {
  callId: string;
  number: WaNumberRef;
  user: WaUserIdentity;
  answer: string;
  bizOpaque: string | undefined;
  at: number;
}): WaConnectEvent {
  return {
    id: args.callId,
    ...(args.user.waId !== undefined ? { to: args.user.waId } : {}),
    to_user_id: args.user.userId,
    from: args.number.displayPhoneNumber,
    event: "connect",
    timestamp: waTimestamp(args.at),
    direction: "BUSINESS_INITIATED",
    ...(args.bizOpaque !== undefined ? { biz_opaque_callback_data: args.bizOpaque } : {}),
    session: { sdp_type: "answer", sdp: args.answer },
    connection: { webrtc: { sdp: args.answer } },
  };
}

export function statusEvent(args: { callId: string; user: WaUserIdentity; status: WaCallStatus; bizOpaque: string | undefined; at: number }): WaStatusEvent {
  return {
    id: args.callId,
    timestamp: waTimestamp(args.at),
    type: "call",
    status: args.status,
    ...(args.user.waId !== undefined ? { recipient_id: args.user.waId } : {}),
    recipient_user_id: args.user.userId,
    ...(args.bizOpaque !== undefined ? { biz_opaque_callback_data: args.bizOpaque } : {}),
  };
}

/** Start, end and duration only when the call was picked up (§2.3). */
export function waTerminateEvent(args: {
  callId: string;
  number: WaNumberRef;
  user: WaUserIdentity;
  direction: WaDirection;
  status: WaTerminateStatus;
  bizOpaque: string | undefined;
  connectedAt: number | undefined;
  endedAt: number;
}): WaTerminateEvent {
  const consumerSide = args.direction === "USER_INITIATED";
  const userPhone = args.user.waId;
  const event: WaTerminateEvent = {
    id: args.callId,
    ...(consumerSide
      ? { to: args.number.displayPhoneNumber, ...(userPhone !== undefined ? { from: userPhone } : {}), from_user_id: args.user.userId }
      : { ...(userPhone !== undefined ? { to: userPhone } : {}), to_user_id: args.user.userId, from: args.number.displayPhoneNumber }),
    event: "terminate",
    direction: args.direction,
    ...(args.bizOpaque !== undefined ? { biz_opaque_callback_data: args.bizOpaque } : {}),
    timestamp: waTimestamp(args.endedAt),
    status: args.status,
  };
  if (args.connectedAt !== undefined) {
    event.start_time = waTimestamp(args.connectedAt);
    event.end_time = waTimestamp(args.endedAt);
    event.duration = Math.max(0, Math.round((args.endedAt - args.connectedAt) / 1000));
  }
  return event;
}

export function webhookError(code: number, message: string, details: string, href: string): WaWebhookError {
  return { code, message, href, error_data: { details } };
}

export function permissionReplyMessage(args: {
  user: WaUserIdentity;
  number: WaNumberRef;
  requestId: string;
  response: "accept" | "reject";
  permanent: boolean;
  expiresAt: number | undefined;
  id: string;
  at: number;
}): WaPermissionReplyMessage {
  return {
    ...(args.user.waId !== undefined ? { from: args.user.waId } : {}),
    from_user_id: args.user.userId,
    id: args.id,
    timestamp: waTimestamp(args.at),
    type: "interactive",
    context: { from: args.number.displayPhoneNumber, id: args.requestId },
    interactive: {
      type: "call_permission_reply",
      call_permission_reply: {
        response: args.response,
        is_permanent: args.permanent,
        ...(args.expiresAt !== undefined ? { expiration_timestamp: waTimestamp(args.expiresAt) } : {}),
        response_source: "user_action",
      },
    },
  };
}

function valueOf(update: WaUpdate): WaChangeValue {
  const value: WaChangeValue = {
    messaging_product: "whatsapp",
    metadata: { display_phone_number: update.number.displayPhoneNumber, phone_number_id: update.number.phoneNumberId },
  };
  if (update.contacts !== undefined) value.contacts = [...update.contacts];
  if ("calls" in update) value.calls = [...update.calls];
  if ("statuses" in update) value.statuses = [...update.statuses];
  if ("messages" in update) value.messages = [...update.messages];
  if ("errors" in update && update.errors !== undefined) value.errors = [...update.errors];
  return value;
}

function kindOf(update: WaUpdate): string {
  return "calls" in update ? "calls" : "statuses" in update ? "statuses" : "messages";
}

function mergeInto(target: WaChangeValue, update: WaUpdate): void {
  const value = valueOf(update);
  for (const contact of value.contacts ?? []) {
    target.contacts ??= [];
    if (!target.contacts.some((c) => c.user_id === contact.user_id)) target.contacts.push(contact);
  }
  if (value.calls) target.calls = [...(target.calls ?? []), ...value.calls];
  if (value.statuses) target.statuses = [...(target.statuses ?? []), ...value.statuses];
  if (value.messages) target.messages = [...(target.messages ?? []), ...value.messages];
  if (value.errors) target.errors = [...(target.errors ?? []), ...value.errors];
}

/** One POST body holding `updates` (at most MAX_UPDATES_PER_POST), one entry per WABA in first-seen order. */
export function whatsAppPayload(updates: readonly WaUpdate[], layout: WaBatchLayout = "change-per-update"): WaWebhookPayload {
  if (updates.length > MAX_UPDATES_PER_POST) throw new RangeError(`at most ${MAX_UPDATES_PER_POST} updates per POST`);
  const entries = new Map<string, WaWebhookPayload["entry"][number]>();
  const merged = new Map<string, WaChangeValue>();
  for (const update of updates) {
    let entry = entries.get(update.number.wabaId);
    if (!entry) {
      entry = { id: update.number.wabaId, changes: [] };
      entries.set(update.number.wabaId, entry);
    }
    // Errors belong to one call's update, so an update carrying errors is never merged with others.
    const mergeKey = `${update.number.phoneNumberId}|${kindOf(update)}`;
    const target = layout === "merged" && !("errors" in update && update.errors) ? merged.get(mergeKey) : undefined;
    if (target) {
      mergeInto(target, update);
      continue;
    }
    const value = valueOf(update);
    if (layout === "merged" && !("errors" in update && update.errors)) merged.set(mergeKey, value);
    entry.changes.push({ field: update.field, value });
  }
  return { object: "whatsapp_business_account", entry: [...entries.values()] };
}

/** Splits updates into POST-sized batches. */
export function batchesOf<T>(items: readonly T[], size: number = MAX_UPDATES_PER_POST): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
