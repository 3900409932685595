import { waErrors } from "./wa-errors.js";
import { MAX_SDP_LENGTH } from "./wa-sdp.js";

export const WA_CALL_ACTIONS = ["pre_accept", "accept", "reject", "terminate", "connect"] as const;
export type WhatsAppCallAction = (typeof WA_CALL_ACTIONS)[number];

/** `biz_opaque_callback_data` is limited to 512 characters (§2.2). */
export const MAX_BIZ_OPAQUE_LENGTH = 512;
const MAX_ID_LENGTH = 256;

export interface WaSession {
  sdpType: "offer" | "answer";
  sdp: string;
}

export type WhatsAppCallsRequest =
  | { action: "pre_accept" | "accept"; callId: string; session: WaSession; bizOpaque: string | undefined }
  | { action: "reject" | "terminate"; callId: string }
  | { action: "connect"; to: string | undefined; recipient: string | undefined; session: WaSession; bizOpaque: string | undefined };

/** Who a permission lookup or request names: a phone number (`user_wa_id`/`to`) or a BSUID (`recipient`). */
export type WaUserRef = { kind: "phone"; value: string } | { kind: "bsuid"; value: string };

export interface PermissionRequestMessage {
  user: WaUserRef;
  bodyText: string | undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function requireWhatsApp(body: Record<string, unknown>): void {
  const product = body["messaging_product"];
  if (product !== "whatsapp") {
    const got = product === undefined ? "nothing" : JSON.stringify(product)?.slice(0, 40);
    throw waErrors.invalidParameter(`Param messaging_product must be "whatsapp", got ${got}`);
  }
}

function boundedString(body: Record<string, unknown>, key: string, max: number): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || value.trim().length === 0) throw waErrors.invalidParameter(`Param ${key} must be a non-empty string`);
  if (value.length > max) throw waErrors.invalidParameter(`Param ${key} must be at most ${max} characters`);
  return value;
}

function phone(value: string, key: string): string {
  const digits = value.replace(/^\+/, "");
  if (!/^\d{5,20}$/.test(digits)) throw waErrors.invalidParameter(`Param ${key} must be a phone number`);
  return digits;
}

function session(body: Record<string, unknown>, allowed: readonly ("offer" | "answer")[]): WaSession {
  let value = body["session"];
  if (value === undefined || value === null || value === "") throw waErrors.invalidParameter("Param session is required");
  // Graph decodes JSON given as a string parameter.
  if (typeof value === "string") {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      throw waErrors.invalidParameter("Param session must be a JSON object");
    }
  }
  if (!isRecord(value)) throw waErrors.invalidParameter("Param session must be an object");
  const type = value["sdp_type"];
  if (type !== "offer" && type !== "answer") throw waErrors.invalidParameter('Param session.sdp_type must be "offer" or "answer"');
  if (!allowed.includes(type)) throw waErrors.invalidParameter(`Param session.sdp_type must be "${allowed.join('" or "')}" for this action`);
  const sdp = value["sdp"];
  if (typeof sdp !== "string" || sdp.trim().length === 0) throw waErrors.invalidParameter("Param session.sdp must be a non-empty string");
  if (sdp.length > MAX_SDP_LENGTH) throw waErrors.invalidSdp(`SDP longer than ${MAX_SDP_LENGTH} characters`);
  return { sdpType: type, sdp };
}

/**
 * Validates a WhatsApp `/calls` body's structure (not the SDP content or the call's state) and returns a
 * typed request, or throws the WhatsApp error Meta would answer with. pre_accept and accept take either
 * sdp_type here: the reference tables say "offer", the samples and working clients "answer" (§2.2), and
 * the simulator decides what an "offer" does with the call.
 */
export function parseWhatsAppCallsBody(body: unknown): WhatsAppCallsRequest {
  if (!isRecord(body)) throw waErrors.invalidParameter("The request body must be a JSON object");
  requireWhatsApp(body);
  const action = body["action"];
  if (typeof action !== "string" || !(WA_CALL_ACTIONS as readonly string[]).includes(action)) {
    throw waErrors.invalidParameter(`Param action must be one of {${WA_CALL_ACTIONS.join(", ")}}`);
  }
  const bizOpaque = boundedString(body, "biz_opaque_callback_data", MAX_BIZ_OPAQUE_LENGTH);
  if (action === "connect") {
    const to = boundedString(body, "to", 32);
    const recipient = boundedString(body, "recipient", 128);
    if (to === undefined && recipient === undefined) throw waErrors.invalidParameter("Param to or recipient is required for action connect");
    return { action, to: to === undefined ? undefined : phone(to, "to"), recipient, session: session(body, ["offer"]), bizOpaque };
  }
  const callId = boundedString(body, "call_id", MAX_ID_LENGTH);
  if (callId === undefined) throw waErrors.invalidParameter(`Param call_id is required for action ${action}`);
  if (action === "pre_accept" || action === "accept") return { action, callId, session: session(body, ["answer", "offer"]), bizOpaque };
  return { action: action === "reject" ? "reject" : "terminate", callId };
}

/** The action of a body, if it names a known one: used to match injected failures before validation. */
export function whatsAppActionOf(body: unknown): WhatsAppCallAction | undefined {
  if (!isRecord(body)) return undefined;
  const action = body["action"];
  return typeof action === "string" && (WA_CALL_ACTIONS as readonly string[]).includes(action) ? (action as WhatsAppCallAction) : undefined;
}

/** `GET /{phone-number-id}/call_permissions?user_wa_id=…` or `?recipient=<BSUID>`. */
export function parsePermissionsQuery(query: URLSearchParams): WaUserRef {
  const waId = query.get("user_wa_id");
  const recipient = query.get("recipient");
  if (waId) return { kind: "phone", value: phone(waId.slice(0, 40), "user_wa_id") };
  if (recipient) {
    if (recipient.length > 128) throw waErrors.invalidParameter("Param recipient must be at most 128 characters");
    return { kind: "bsuid", value: recipient };
  }
  throw waErrors.invalidParameter("Param user_wa_id or recipient is required");
}

/**
 * `POST /{phone-number-id}/messages`: only the interactive `call_permission_request` is simulated. It names
 * the user by `to` (phone) or `recipient` (BSUID).
 */
export function parsePermissionRequestMessage(body: unknown): PermissionRequestMessage {
  if (!isRecord(body)) throw waErrors.invalidParameter("The request body must be a JSON object");
  requireWhatsApp(body);
  const to = boundedString(body, "to", 32);
  const recipient = boundedString(body, "recipient", 128);
  const interactive = body["interactive"];
  if (body["type"] !== "interactive" || !isRecord(interactive) || interactive["type"] !== "call_permission_request") {
    throw waErrors.invalidParameter("Only interactive messages of type call_permission_request are simulated");
  }
  const action = interactive["action"];
  if (!isRecord(action) || action["name"] !== "call_permission_request") {
    throw waErrors.invalidParameter('Param interactive.action.name must be "call_permission_request"');
  }
  const bodyPart = interactive["body"];
  const text = isRecord(bodyPart) && typeof bodyPart["text"] === "string" ? bodyPart["text"].slice(0, 1024) : undefined;
  if (to !== undefined) return { user: { kind: "phone", value: phone(to, "to") }, bodyText: text };
  if (recipient !== undefined) return { user: { kind: "bsuid", value: recipient }, bodyText: text };
  throw waErrors.invalidParameter("Param to or recipient is required");
}
