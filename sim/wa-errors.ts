import { GraphApiError, type GraphErrorSpec } from "./graph-errors.js";

/** The WhatsApp calling error codes of meta-calling-api.md §2.5 the simulator answers with. */
export const WhatsAppCode = {
  invalidParameter: 100,
  permissionsRateLimit: 613,
  sipEnabled: 131055,
  callingNotEnabled: 138000,
  receiverUncallable: 138001,
  concurrentCallLimit: 138002,
  duplicateCall: 138003,
  connectionError: 138004,
  callRateLimit: 138005,
  noCallPermission: 138006,
  connectTimeout: 138007,
  permissionRequestLimit: 138009,
  dailyCallLimit: 138012,
  mediaReceiveTimeout: 138021,
} as const;

/** Where Meta's error webhooks point for an explanation of the code. */
export const WHATSAPP_ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/";

function waError(httpStatus: number, code: number, title: string, details: string, extra: Partial<GraphErrorSpec> = {}): GraphApiError {
  return new GraphApiError({
    httpStatus,
    code,
    message: code === 100 ? `(#100) ${title}` : `(#${code}) ${title}`,
    errorData: { messaging_product: "whatsapp", details },
    ...extra,
  });
}

/** Constructors for the WhatsApp envelope: `{error:{message,type,code,error_data{messaging_product,details},fbtrace_id}}`. */
export const waErrors = {
  invalidParameter: (details: string) => waError(400, WhatsAppCode.invalidParameter, "Invalid parameter", details),
  /** SDP problems are code 100 with the specific problem in `error_data.details` (§2.5). */
  invalidSdp: (details: string) => waError(400, WhatsAppCode.invalidParameter, "Invalid parameter", `SDP Validation error: ${details}`),
  invalidCallId: (callId: string) => waError(400, WhatsAppCode.invalidParameter, "Invalid parameter", `Invalid call id: ${callId.slice(0, 120)}`),
  permissionsRateLimit: () =>
    waError(429, WhatsAppCode.permissionsRateLimit, "Call permissions API rate limit hit", "Too many call_permissions requests; retry later"),
  sipEnabled: () =>
    waError(400, WhatsAppCode.sipEnabled, "Method not allowed", "Calling Graph API is not allowed when SIP is enabled for this phone number"),
  concurrentCallLimit: () =>
    waError(429, WhatsAppCode.concurrentCallLimit, "Concurrent call limit reached", "The business number already has its maximum of concurrent calls"),
  duplicateCall: () => waError(400, WhatsAppCode.duplicateCall, "Duplicate call", "There is already an ongoing call to this user"),
  noCallPermission: () =>
    waError(401, WhatsAppCode.noCallPermission, "Call permission not granted", "The user has not approved a call permission request"),
  permissionRequestLimit: (window: string) =>
    waError(400, WhatsAppCode.permissionRequestLimit, "Call permission request limit reached", `Permission request limit for ${window} reached`),
  dailyCallLimit: (nextAllowedAt: number) =>
    waError(400, WhatsAppCode.dailyCallLimit, "Business-initiated call limit reached", `Next call allowed after ${nextAllowedAt}`),
  /** The call can no longer take the action (ended, or accepted elsewhere). */
  callNotActive: (details: string) => waError(400, WhatsAppCode.invalidParameter, "Invalid parameter", details),
} as const;
