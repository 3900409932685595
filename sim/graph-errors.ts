import { SimulatorError } from "./errors.js";
import { newFbtraceId } from "./ids.js";

export type GraphErrorType = "OAuthException" | "GraphMethodException";

/** The body of a Graph API error response: `{"error":{...}}`. `error_subcode` is left out when there is none, as Graph does. */
export interface GraphErrorEnvelope {
  error: {
    message: string;
    type: GraphErrorType;
    code: number;
    error_subcode?: number;
    /** WhatsApp errors: the product and the specific problem (e.g. what is wrong with an SDP). */
    error_data?: GraphErrorData;
    fbtrace_id: string;
  };
}

export interface GraphErrorData {
  messaging_product: "whatsapp";
  details: string;
}

export interface GraphErrorSpec {
  httpStatus: number;
  code: number;
  subcode?: number;
  message: string;
  type?: GraphErrorType;
  /** WhatsApp errors carry `error_data{messaging_product, details}`; Messenger errors never do. */
  errorData?: GraphErrorData;
}

/** A Graph API error the simulated server answers with; thrown by validation and call-state checks. */
export class GraphApiError extends SimulatorError {
  readonly httpStatus: number;
  readonly code: number;
  readonly subcode: number | undefined;
  readonly type: GraphErrorType;
  readonly errorData: GraphErrorData | undefined;

  constructor(spec: GraphErrorSpec) {
    super(spec.message);
    this.httpStatus = spec.httpStatus;
    this.code = spec.code;
    this.subcode = spec.subcode;
    this.type = spec.type ?? "OAuthException";
    this.errorData = spec.errorData;
  }

  toEnvelope(fbtraceId: string = newFbtraceId()): GraphErrorEnvelope {
    return {
      error: {
        message: this.message,
        type: this.type,
        code: this.code,
        ...(this.subcode !== undefined ? { error_subcode: this.subcode } : {}),
        ...(this.errorData !== undefined ? { error_data: this.errorData } : {}),
        fbtrace_id: fbtraceId,
      },
    };
  }
}

/**
 * Calling error numbers from Meta's Messenger error-code page. The page does not say whether
 * they travel as `code` or `error_subcode`; the simulator sends them as `code`.
 */
export const MessengerCallingCode = {
  pageNotAllowlisted: 2018389,
  invalidCallId: 2018390,
  invalidConnection: 2018391,
  invalidSdp: 2018392,
  pageNotParticipant: 2018393,
  insufficientPermission: 2018394,
  failedCall: 2018395,
  endedCall: 2018396,
} as const;

/** Subcode one public implementation recorded for SDP carrying a fingerprint hash other than sha-256. */
export const NON_SHA256_FINGERPRINT_SUBCODE = 2494010;

const invalidParameter = (message: string): GraphApiError =>
  new GraphApiError({ httpStatus: 400, code: 100, message: `(#100) ${message}` });

/** Constructors for every error the simulator can answer with, so messages and numbers live in one place. */
export const graphErrors = {
  missingToken: () =>
    new GraphApiError({ httpStatus: 401, code: 104, message: "An access token is required to request this resource." }),
  invalidToken: () =>
    new GraphApiError({ httpStatus: 401, code: 190, message: "Invalid OAuth access token - Cannot parse access token" }),
  unsupportedRequest: (method: string, objectId: string) =>
    new GraphApiError({
      httpStatus: 400,
      code: 100,
      subcode: 33,
      type: "GraphMethodException",
      message: `Unsupported ${method.toLowerCase()} request. Object with ID '${objectId}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.`,
    }),
  unknownPath: (path: string) =>
    new GraphApiError({ httpStatus: 400, code: 2500, message: `Unknown path components: ${path}` }),
  invalidParameter,
  invalidBody: (detail: string) => invalidParameter(`Request body is not valid JSON: ${detail}`),
  invalidCallId: (callId: string) =>
    new GraphApiError({ httpStatus: 400, code: MessengerCallingCode.invalidCallId, message: `Invalid call id: ${callId}` }),
  emptyConnection: () =>
    new GraphApiError({
      httpStatus: 400,
      code: MessengerCallingCode.invalidConnection,
      message: "Invalid connection parameter: session is required for this action",
    }),
  invalidSdp: (detail: string) =>
    new GraphApiError({
      httpStatus: 400,
      code: MessengerCallingCode.invalidSdp,
      message: `Invalid SDP parameter, must be a valid json dict with keys type and sdp: ${detail}`,
    }),
  nonSha256Fingerprint: (detail: string) =>
    new GraphApiError({
      httpStatus: 400,
      code: MessengerCallingCode.invalidSdp,
      subcode: NON_SHA256_FINGERPRINT_SUBCODE,
      message: `SDP Validation error: only sha-256 DTLS fingerprints are supported (${detail})`,
    }),
  pageNotParticipant: (callId: string) =>
    new GraphApiError({
      httpStatus: 400,
      code: MessengerCallingCode.pageNotParticipant,
      message: `Page is not a participant of call ${callId}`,
    }),
  noCallPermission: (psid: string) =>
    new GraphApiError({
      httpStatus: 400,
      code: MessengerCallingCode.insufficientPermission,
      message: `Page has insufficient permission to call user ${psid}: no call permission`,
    }),
  failedCall: () =>
    new GraphApiError({ httpStatus: 400, code: MessengerCallingCode.failedCall, message: "Cannot join a failed call" }),
  endedCall: () =>
    new GraphApiError({ httpStatus: 400, code: MessengerCallingCode.endedCall, message: "Cannot join an ended call" }),
  alreadyAccepted: () => invalidParameter("Call has already been accepted"),
  notConsumerInitiated: () => invalidParameter("Only consumer-initiated calls can be rejected"),
  conflictingMediaStatus: (expected: number, got: number) =>
    invalidParameter(`Conflicting media status: current media version is ${expected}, request has from_version ${got}`),
  invalidTrackMsid: (msid: string) => invalidParameter(`Invalid track msid: ${msid}`),
} as const;
