/** Everything the Graph client does; also the keys of its stats. */
export type GraphAction = "pre_accept" | "accept" | "connect" | "media_update" | "reject" | "terminate" | "call_permissions" | "permission_request" | "call_metrics";

export const GRAPH_ACTIONS: readonly GraphAction[] = [
  "pre_accept",
  "accept",
  "connect",
  "media_update",
  "reject",
  "terminate",
  "call_permissions",
  "permission_request",
  "call_metrics",
];

/**
 * How a request failed: `graph` (Graph answered with an error envelope), `timeout`
 * (no answer in time: the request may or may not have taken effect), `network`
 * (connection failed), `bad-response` (an answer we cannot use).
 */
export type GraphFailureKind = "graph" | "timeout" | "network" | "bad-response";

/** What the caller should do about an error: retry, fix credentials, clean the call up, fix the SDP... */
export type GraphErrorClass = "transient" | "auth" | "call-gone" | "invalid-sdp" | "permission" | "rate-limit" | "other";

/** Messenger calling errors (§1.5); the docs do not say whether they come back as code or subcode. */
const MESSENGER_CALLING_CLASSES: ReadonlyMap<number, GraphErrorClass> = new Map([
  [2018389, "permission"], // Page not allowlisted for calling
  [2018390, "call-gone"], // invalid call id
  [2018391, "invalid-sdp"], // invalid connection parameter
  [2018392, "invalid-sdp"], // invalid SDP parameter
  [2018393, "call-gone"], // Page is not a participant of this call
  [2018394, "permission"], // insufficient permission to join the call
  [2018395, "call-gone"], // cannot join a failed call
  [2018396, "call-gone"], // cannot join an ended call
  [1893056, "permission"], // call settings not enabled (audio_enabled missing on the Page)
  [2494010, "invalid-sdp"], // fingerprint other than sha-256
  [2534040, "rate-limit"], // Messenger rate limit subcode
]);

/** WhatsApp calling errors (§2.5): 138xxx and 131xxx codes, never shared with Messenger's. */
const WHATSAPP_CALLING_CLASSES: ReadonlyMap<number, GraphErrorClass> = new Map([
  [138000, "permission"], // calling not enabled on the number
  [138001, "other"], // receiver uncallable
  [138002, "rate-limit"], // 1000 concurrent calls on the number
  [138003, "call-gone"], // a call with this user is already ongoing
  [138004, "transient"], // connection error
  [138005, "rate-limit"], // call rate limit
  [138006, "permission"], // no approved call permission
  [138007, "call-gone"], // connect timeout: the call is over
  [138009, "rate-limit"], // permission-request limit
  [138012, "rate-limit"], // business-initiated daily limit
  [138013, "permission"], // business-initiated calling not available
  [138014, "permission"], // calling temporarily disabled
  [131030, "permission"], // recipient not in the allowed list (test numbers)
  [131055, "permission"], // Graph calling refused: the number is set to SIP
]);

const RATE_LIMIT_CODES = new Set([4, 17, 32, 613]);
const TRANSIENT_CODES = new Set([1, 2, 341, 368]);
const AUTH_CODES = new Set([190, 102]);

export function classifyGraphError(
  code: number | undefined,
  subcode: number | undefined,
  httpStatus: number | undefined,
  isTransientFlag: boolean | undefined,
): GraphErrorClass {
  // The subcode is the more specific of the two, so it wins when both are known.
  for (const n of [subcode, code]) {
    const known = n === undefined ? undefined : (MESSENGER_CALLING_CLASSES.get(n) ?? WHATSAPP_CALLING_CLASSES.get(n));
    if (known !== undefined) return known;
  }
  if (code !== undefined) {
    if (AUTH_CODES.has(code)) return "auth";
    if (code === 10 || (code >= 200 && code <= 299)) return "permission";
    if (RATE_LIMIT_CODES.has(code)) return "rate-limit";
    if (TRANSIENT_CODES.has(code)) return "transient";
  }
  if (httpStatus === 429) return "rate-limit";
  if (isTransientFlag === true) return "transient";
  if (httpStatus !== undefined && httpStatus >= 500) return "transient";
  return "other";
}

export interface GraphApiErrorInit {
  kind: GraphFailureKind;
  action: GraphAction;
  message: string;
  callId?: string;
  httpStatus?: number;
  code?: number;
  subcode?: number;
  fbtraceId?: string;
  type?: string;
  isTransientFlag?: boolean;
  cause?: unknown;
}

export class GraphApiError extends Error {
  override readonly name = "GraphApiError";
  readonly kind: GraphFailureKind;
  readonly action: GraphAction;
  readonly callId?: string;
  readonly httpStatus?: number;
  readonly code?: number;
  readonly subcode?: number;
  readonly fbtraceId?: string;
  /** Graph's error `type`, e.g. `OAuthException`. */
  readonly type?: string;
  readonly errorClass: GraphErrorClass;
  /**
   * The condition may clear by itself (Graph said so, a 5xx, a rate limit, or no answer at all).
   * It says nothing about whether the request took effect: after a `timeout` that is unknown.
   */
  readonly isTransient: boolean;

  constructor(init: GraphApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = init.kind;
    this.action = init.action;
    this.callId = init.callId;
    this.httpStatus = init.httpStatus;
    this.code = init.code;
    this.subcode = init.subcode;
    this.fbtraceId = init.fbtraceId;
    this.type = init.type;
    this.errorClass =
      init.kind === "timeout" || init.kind === "network"
        ? "transient"
        : classifyGraphError(init.code, init.subcode, init.httpStatus, init.isTransientFlag);
    this.isTransient = this.errorClass === "transient" || this.errorClass === "rate-limit";
  }
}
