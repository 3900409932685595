import { graphErrors } from "./graph-errors.js";

export const CALL_ACTIONS = ["accept", "connect", "media_update", "reject", "terminate"] as const;
export type CallAction = (typeof CALL_ACTIONS)[number];

export const TRACK_LABELS = ["default_audio", "default_video", "screen_audio", "screen_video"] as const;
export type TrackLabel = (typeof TRACK_LABELS)[number];
export type TrackStatus = "enabled" | "disabled";

export interface SessionOffer {
  sdp_type: "offer";
  sdp: string;
}

export interface TrackSpec {
  msid: string;
  label: TrackLabel;
  status: TrackStatus;
}

/** A media_update with an offer (renegotiation), or with `tracks` only (status changes, no SDP, no new version). */
export type MediaUpdateRequest =
  | { action: "media_update"; callId: string; session: SessionOffer; fromVersion: number; toVersion: number; tracks: TrackSpec[] }
  | { action: "media_update"; callId: string; session: undefined; fromVersion: number | undefined; toVersion: number | undefined; tracks: TrackSpec[] };

export type CallsRequest =
  | { action: "accept"; callId: string; session: SessionOffer }
  | { action: "connect"; to: string; session: SessionOffer }
  | MediaUpdateRequest
  | { action: "reject"; callId: string }
  | { action: "terminate"; callId: string };

export type GraphRoute =
  | { kind: "calls"; version: string; pageId: string }
  | { kind: "call-permissions"; version: string; pageId: string }
  | { kind: "messages"; version: string; pageId: string }
  | { kind: "call-metrics"; version: string; pageId: string }
  | { kind: "unknown"; version: string | undefined; objectId: string | undefined };

/** `/v26.0/<page-id>/calls` and `/v26.0/<page-id>/messenger_call_permissions`; any `vNN.N` version. */
export function routeGraphPath(pathname: string): GraphRoute {
  const parts = pathname.split("/").filter((p) => p.length > 0);
  const [version, objectId, edge, ...rest] = parts;
  const versionOk = version !== undefined && /^v\d+\.\d+$/.test(version);
  if (!versionOk || objectId === undefined || rest.length > 0) {
    return { kind: "unknown", version: versionOk ? version : undefined, objectId: versionOk ? objectId : version };
  }
  if (edge === "calls") return { kind: "calls", version, pageId: objectId };
  if (edge === "messenger_call_permissions") return { kind: "call-permissions", version, pageId: objectId };
  if (edge === "messages") return { kind: "messages", version, pageId: objectId };
  if (edge === "call_metrics") return { kind: "call-metrics", version, pageId: objectId };
  return { kind: "unknown", version, objectId };
}

/** The Page token from `Authorization: Bearer …`, else the `access_token` query parameter. */
export function accessTokenOf(authorization: string | undefined, query: URLSearchParams): string | undefined {
  const match = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
  if (match?.[1]) return match[1];
  const fromQuery = query.get("access_token");
  return fromQuery && fromQuery.length > 0 ? fromQuery : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonEmptyString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  return typeof value === "string" && value.trim().length > 0 ? value : undefined;
}

/** OpenAPI says integers, the guide's sample sends strings: accept both, reject anything else. */
function versionNumber(body: Record<string, unknown>, key: string): number {
  const value = body[key];
  const number = typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number) || number < 0) {
    throw graphErrors.invalidParameter(`Param ${key} must be a non-negative integer`);
  }
  return number;
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === "";
}

function sessionOffer(body: Record<string, unknown>): SessionOffer {
  let session = body["session"];
  if (isEmpty(session)) throw graphErrors.emptyConnection();
  // The media_update guide calls session a "JSON serialized string"; Graph decodes such params.
  if (typeof session === "string") {
    try {
      session = JSON.parse(session) as unknown;
    } catch {
      throw graphErrors.invalidSdp("session is a string but not JSON");
    }
  }
  if (!isRecord(session)) throw graphErrors.invalidSdp("session must be an object");
  if (session["sdp_type"] !== "offer") {
    throw graphErrors.invalidSdp(`session.sdp_type must be "offer", got ${JSON.stringify(session["sdp_type"]) ?? "nothing"}`);
  }
  const sdp = session["sdp"];
  if (typeof sdp !== "string" || sdp.trim().length === 0) throw graphErrors.invalidSdp("session.sdp must be a non-empty string");
  return { sdp_type: "offer", sdp };
}

function tracks(body: Record<string, unknown>): TrackSpec[] {
  const value = body["tracks"];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw graphErrors.invalidParameter("Param tracks must be an array");
  if (value.length > 4) throw graphErrors.invalidParameter("Param tracks can have at most 4 elements");
  return value.map((item, index): TrackSpec => {
    if (!isRecord(item)) throw graphErrors.invalidParameter(`Param tracks[${index}] must be an object`);
    const msid = nonEmptyString(item, "msid");
    // The guide writes labels and statuses in upper case, OpenAPI in lower case.
    const label = typeof item["label"] === "string" ? item["label"].toLowerCase() : "";
    const status = typeof item["status"] === "string" ? item["status"].toLowerCase() : "";
    if (!msid) throw graphErrors.invalidParameter(`Param tracks[${index}].msid is required`);
    if (!(TRACK_LABELS as readonly string[]).includes(label)) {
      throw graphErrors.invalidParameter(`Param tracks[${index}].label must be one of {${TRACK_LABELS.join(", ")}}`);
    }
    if (status !== "enabled" && status !== "disabled") {
      throw graphErrors.invalidParameter(`Param tracks[${index}].status must be one of {enabled, disabled}`);
    }
    return { msid, label: label as TrackLabel, status };
  });
}

/**
 * Validates the structure of a `/calls` body (not the SDP content, which depends on call state)
 * and returns a typed request, or throws the Graph error Meta would answer with.
 */
export function parseCallsBody(body: unknown): CallsRequest {
  if (!isRecord(body)) throw graphErrors.invalidParameter("The request body must be a JSON object");
  const platform = body["platform"];
  if (platform !== undefined && platform !== "messenger") {
    throw graphErrors.invalidParameter(`Param platform must be "messenger" for Page calls, got ${JSON.stringify(platform)}`);
  }
  const action = body["action"];
  if (typeof action !== "string" || !(CALL_ACTIONS as readonly string[]).includes(action)) {
    throw graphErrors.invalidParameter(`Param action must be one of {${CALL_ACTIONS.join(", ")}}`);
  }
  if (action === "connect") {
    const to = nonEmptyString(body, "to");
    if (!to) throw graphErrors.invalidParameter("Param to is required for action connect");
    if (!/^\d+$/.test(to)) throw graphErrors.invalidParameter("Param to must be a page-scoped id");
    return { action, to, session: sessionOffer(body) };
  }
  const callId = nonEmptyString(body, "call_id");
  if (!callId) throw graphErrors.invalidParameter(`Param call_id is required for action ${action}`);
  switch (action) {
    case "accept":
      return { action, callId, session: sessionOffer(body) };
    case "media_update": {
      if (isEmpty(body["session"]) && body["tracks"] !== undefined) {
        const changes = tracks(body);
        if (changes.length === 0) throw graphErrors.emptyConnection();
        return {
          action,
          callId,
          session: undefined,
          fromVersion: body["from_version"] === undefined ? undefined : versionNumber(body, "from_version"),
          toVersion: body["to_version"] === undefined ? undefined : versionNumber(body, "to_version"),
          tracks: changes,
        };
      }
      return {
        action,
        callId,
        session: sessionOffer(body),
        fromVersion: versionNumber(body, "from_version"),
        toVersion: versionNumber(body, "to_version"),
        tracks: tracks(body),
      };
    }
    case "reject":
      return { action, callId };
    default:
      return { action: "terminate", callId };
  }
}

/** The action of a body, if it names a known one: used to match injected failures before validation. */
export function actionOf(body: unknown): CallAction | undefined {
  if (!isRecord(body)) return undefined;
  const action = body["action"];
  return typeof action === "string" && (CALL_ACTIONS as readonly string[]).includes(action) ? (action as CallAction) : undefined;
}
