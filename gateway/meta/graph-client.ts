import type { Logger } from "pino";
import { parseCallPermission, type CallPermission } from "./call-permission.js";
import type { GraphApiError, GraphAction } from "./graph-errors.js";
import { GraphHttp, requireNonEmpty, type GraphClientStats, type GraphRequest } from "./graph-http.js";
import { DEFAULT_LIMITS, ID_PATTERNS } from "../config/limits.js";
import type { HttpSend } from "../http/http-send.js";
import { isRecord, readId, readSdpField, type JsonRecord } from "./wire-values.js";

export type TrackLabel = "default_audio" | "default_video" | "screen_audio" | "screen_video";
export type TrackStatus = "enabled" | "disabled";

export interface TrackUpdate {
  msid: string;
  label: TrackLabel;
  status: TrackStatus;
}

export interface GraphClientOptions {
  /** e.g. `https://graph.facebook.com` */
  graphUrl: string;
  /** e.g. `v26.0` */
  graphVersion: string;
  pageId: string;
  accessToken: string;
  timeoutMs?: number;
  logger?: Logger;
  send?: HttpSend;
  /** Every HTTP attempt, when it is over: its action, latency and whether it succeeded. */
  onRequest?: (action: GraphAction, seconds: number, ok: boolean) => void;
  /** The process's shared Graph transport; one of its own (from the options above) when absent. */
  http?: GraphHttp;
}

export interface NegotiationResult {
  answer: string;
  /** Meta's follow-up offer; it must be applied and answered locally, never sent back. */
  reoffer?: string;
}

export interface ConnectResult extends NegotiationResult {
  callId: string;
}

export interface MediaUpdateRequest {
  callId: string;
  fromVersion: number;
  toVersion: number;
  sdpOffer: string;
  tracks?: TrackUpdate[];
}

/** Neither field set means Meta answered 200 without SDP: a version collision (§6). */
export interface MediaUpdateResult {
  answer?: string;
  reoffer?: string;
}

export type { GraphClientStats, LatencySummary } from "./graph-http.js";
export type { CallPermission, PermissionStatus } from "./call-permission.js";

const MAX_TRACKS = 4;

/** Messenger Platform `/{page-id}/calls` and call-permission requests. */
export class GraphClient {
  private readonly http: GraphHttp;
  private readonly pageId: string;
  private readonly accessToken: string;

  constructor(options: GraphClientOptions) {
    if (options.pageId.length === 0) throw new RangeError("pageId must not be empty");
    if (options.accessToken.length === 0) throw new RangeError("accessToken must not be empty");
    this.http = options.http ?? new GraphHttp(options);
    this.pageId = options.pageId;
    this.accessToken = options.accessToken;
  }

  /** Answers a consumer-initiated call with our offer. Never retried: a second accept fails as "already accepted". */
  async accept(callId: string, sdpOffer: string): Promise<NegotiationResult> {
    requireNonEmpty("callId", callId);
    requireNonEmpty("sdpOffer", sdpOffer);
    const body = await this.execute({
      action: "accept",
      method: "POST",
      path: this.callsPath(), accessToken: this.accessToken,
      body: { platform: "messenger", action: "accept", call_id: callId, session: offerSession(sdpOffer) },
      callId,
      retry: "never",
    });
    const { answer, reoffer } = readSessionSdp(body);
    if (answer === undefined) throw this.badResponse("accept", callId, "accept response has no session.sdp_response");
    return withReoffer({ answer }, reoffer);
  }

  /** Calls a consumer. Never retried: a duplicate would ring the consumer twice. */
  async connect(psid: string, sdpOffer: string): Promise<ConnectResult> {
    requireNonEmpty("psid", psid);
    requireNonEmpty("sdpOffer", sdpOffer);
    const body = await this.execute({
      action: "connect",
      method: "POST",
      path: this.callsPath(), accessToken: this.accessToken,
      body: { platform: "messenger", action: "connect", to: psid, session: offerSession(sdpOffer) },
      psid,
      retry: "never",
    });
    // The connect guide names the field `id`; the OpenAPI response schema names it `call_id`.
    const callId = readId(body.id) ?? readId(body.call_id);
    if (callId === undefined) throw this.badResponse("connect", undefined, "connect response has no call id");
    // The id is kept for the call's life and beyond (dedupe, ended ids): only Meta's shape, bounded.
    if (callId.length > DEFAULT_LIMITS.maxIdLength || !ID_PATTERNS.callId.test(callId)) {
      throw this.badResponse("connect", undefined, `connect response has an invalid call id (${callId.length} characters)`);
    }
    const { answer, reoffer } = readSessionSdp(body);
    if (answer === undefined) throw this.badResponse("connect", callId, "connect response has no session.sdp_response");
    return withReoffer({ callId, answer }, reoffer);
  }

  /**
   * Sends a media change at `fromVersion → toVersion`. Never retried: after an ambiguous
   * failure the version state is unknown and must be re-read from webhooks.
   */
  async mediaUpdate(request: MediaUpdateRequest): Promise<MediaUpdateResult> {
    const { callId, fromVersion, toVersion, sdpOffer, tracks } = request;
    requireNonEmpty("callId", callId);
    requireVersion("fromVersion", fromVersion);
    requireVersion("toVersion", toVersion);
    if (toVersion <= fromVersion) throw new RangeError(`toVersion ${toVersion} must exceed fromVersion ${fromVersion}`);
    // A change of track status alone is updateTracks: it keeps the version.
    if (typeof sdpOffer !== "string") throw new RangeError("mediaUpdate needs an sdpOffer (updateTracks changes tracks alone)");
    requireNonEmpty("sdpOffer", sdpOffer);
    if (tracks !== undefined && tracks.length > MAX_TRACKS) {
      throw new RangeError(`at most ${MAX_TRACKS} tracks, got ${tracks.length}`);
    }

    const body: JsonRecord = {
      platform: "messenger",
      action: "media_update",
      call_id: callId,
      from_version: fromVersion,
      to_version: toVersion,
    };
    if (tracks !== undefined && tracks.length > 0) {
      body.tracks = tracks.map((t) => ({ msid: t.msid, label: t.label.toLowerCase(), status: t.status.toLowerCase() }));
    }
    body.session = offerSession(sdpOffer);

    const response = await this.execute({ action: "media_update", method: "POST", path: this.callsPath(), accessToken: this.accessToken, body, callId, retry: "never" });
    const { answer, reoffer } = readSessionSdp(response);
    const result: MediaUpdateResult = {};
    if (answer !== undefined) result.answer = answer;
    if (reoffer !== undefined) result.reoffer = reoffer;
    return result;
  }

  /**
   * A media_update with `tracks` only: enables or disables known tracks without renegotiating, so
   * the media version stays. `from_version` lets Meta refuse it if our view of the call is stale.
   */
  async updateTracks(request: { callId: string; version: number; tracks: TrackUpdate[] }): Promise<void> {
    const { callId, version, tracks } = request;
    requireNonEmpty("callId", callId);
    requireVersion("version", version);
    if (tracks.length === 0 || tracks.length > MAX_TRACKS) throw new RangeError(`1 to ${MAX_TRACKS} tracks, got ${tracks.length}`);
    const body: JsonRecord = {
      platform: "messenger",
      action: "media_update",
      call_id: callId,
      from_version: version,
      tracks: tracks.map((t) => ({ msid: t.msid, label: t.label.toLowerCase(), status: t.status.toLowerCase() })),
    };
    await this.execute({ action: "media_update", method: "POST", path: this.callsPath(), accessToken: this.accessToken, body, callId, retry: "never" });
  }

  /** Declines a consumer-initiated call that has not been accepted. */
  async reject(callId: string): Promise<void> {
    await this.endCall("reject", callId);
  }

  async terminate(callId: string): Promise<void> {
    await this.endCall("terminate", callId);
  }

  async getCallPermission(psid: string): Promise<CallPermission> {
    requireNonEmpty("psid", psid);
    const path = `/${encodeURIComponent(this.pageId)}/messenger_call_permissions?psid=${encodeURIComponent(psid)}`;
    const body = await this.execute({ action: "call_permissions", method: "GET", path, accessToken: this.accessToken, psid, retry: "never" });
    const permission = parseCallPermission(body);
    if (permission === undefined) {
      throw this.badResponse("call_permissions", undefined, "permission response has no recognisable permission status");
    }
    return permission;
  }

  /**
   * Asks the consumer for call permission: the `calling_optin` template through the Send API.
   * Meta allows two per thread per day and the normal 24 h messaging window applies; never retried,
   * since each attempt counts against that limit.
   */
  async requestCallPermission(psid: string): Promise<void> {
    requireNonEmpty("psid", psid);
    await this.execute({
      action: "permission_request",
      method: "POST",
      path: `/${encodeURIComponent(this.pageId)}/messages`,
      accessToken: this.accessToken,
      body: {
        recipient: { id: psid },
        messaging_type: "RESPONSE",
        message: { attachment: { type: "template", payload: { template_type: "calling_optin" } } },
      },
      psid,
      retry: "never",
    });
  }

  /**
   * Reports one call's quality figures (`POST /{page-id}/call_metrics`). Meta takes one report per
   * call, after it ended: never retried here, the caller decides (CallMetricsReporter).
   */
  async callMetrics(body: JsonRecord): Promise<void> {
    const callId = typeof body.call_id === "string" ? body.call_id : undefined;
    requireNonEmpty("call_id", callId ?? "");
    await this.execute({
      action: "call_metrics",
      method: "POST",
      path: `/${encodeURIComponent(this.pageId)}/call_metrics`,
      accessToken: this.accessToken,
      body,
      callId,
      retry: "never",
    });
  }

  stats(): GraphClientStats {
    return this.http.stats();
  }

  private async endCall(action: "reject" | "terminate", callId: string): Promise<void> {
    requireNonEmpty("callId", callId);
    await this.execute({
      action,
      method: "POST",
      path: this.callsPath(), accessToken: this.accessToken,
      body: { platform: "messenger", action, call_id: callId },
      callId,
      retry: "once-if-transient",
    });
  }

  private callsPath(): string {
    return `/${encodeURIComponent(this.pageId)}/calls`;
  }

  private execute(request: GraphRequest): Promise<JsonRecord> {
    return this.http.execute(request);
  }

  private badResponse(action: GraphAction, callId: string | undefined, message: string): GraphApiError {
    return this.http.badResponse(action, callId, message);
  }
}

function offerSession(sdp: string): JsonRecord {
  return { sdp_type: "offer", sdp };
}

/** `sdp_response` / `sdp_renegotiation` come as a bare string (accept guide) or as `{sdp_type, sdp}`. */
function readSessionSdp(body: JsonRecord): { answer?: string; reoffer?: string } {
  const session = isRecord(body.session) ? body.session : undefined;
  if (session === undefined) return {};
  return {
    answer: readSdpField(session.sdp_response)?.sdp,
    reoffer: readSdpField(session.sdp_renegotiation)?.sdp,
  };
}

function withReoffer<T extends NegotiationResult>(result: T, reoffer: string | undefined): T {
  if (reoffer !== undefined) result.reoffer = reoffer;
  return result;
}

function requireVersion(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
}
