import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import { parseCallPermission, type CallPermission } from "./call-permission.js";
import { GRAPH_ACTIONS, GraphApiError, type GraphAction } from "./graph-errors.js";
import { DEFAULT_LIMITS, ID_PATTERNS } from "../config/limits.js";
import { isRecord, readId, readNumber, readSdpField, readString, type JsonRecord } from "./wire-values.js";

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
  fetchImpl?: typeof fetch;
  /** Every HTTP attempt, when it is over: its action, latency and whether it succeeded. */
  onRequest?: (action: GraphAction, seconds: number, ok: boolean) => void;
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

export interface LatencySummary {
  count: number;
  sum: number;
  max: number;
}

/** Counted per HTTP attempt, so a retried terminate counts twice. */
export interface GraphClientStats {
  requests: Record<GraphAction, number>;
  errors: Record<GraphAction, number>;
  latencyMs: Record<GraphAction, LatencySummary>;
}

export type { CallPermission, PermissionStatus } from "./call-permission.js";

const DEFAULT_TIMEOUT_MS = 10_000;
const RETRY_BACKOFF_MS = 250;
const MAX_TRACKS = 4;

/** Whether a failed request may be sent again: only where a duplicate cannot ring or renegotiate twice. */
type RetryPolicy = "never" | "once-if-transient";

interface GraphRequest {
  action: GraphAction;
  method: "GET" | "POST";
  url: string;
  body?: JsonRecord;
  callId?: string;
  /** Identifies the request in logs when there is no call id yet. */
  psid?: string;
  retry: RetryPolicy;
}

/** Messenger Platform `/{page-id}/calls` and call-permission requests. */
export class GraphClient {
  private readonly base: string;
  private readonly pageId: string;
  private readonly accessToken: string;
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly onRequest: GraphClientOptions["onRequest"];
  private readonly counters: GraphClientStats = {
    requests: perAction(() => 0),
    errors: perAction(() => 0),
    latencyMs: perAction(() => ({ count: 0, sum: 0, max: 0 })),
  };

  constructor(options: GraphClientOptions) {
    const version = options.graphVersion.replace(/^\/+|\/+$/g, "");
    if (version.length === 0) throw new RangeError("graphVersion must not be empty");
    if (options.pageId.length === 0) throw new RangeError("pageId must not be empty");
    if (options.accessToken.length === 0) throw new RangeError("accessToken must not be empty");
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${this.timeoutMs}`);
    this.base = `${options.graphUrl.replace(/\/+$/, "")}/${version}`;
    this.pageId = options.pageId;
    this.accessToken = options.accessToken;
    this.logger = options.logger;
    this.fetchImpl = options.fetchImpl ?? fetch;
    this.onRequest = options.onRequest;
  }

  /** Answers a consumer-initiated call with our offer. Never retried: a second accept fails as "already accepted". */
  async accept(callId: string, sdpOffer: string): Promise<NegotiationResult> {
    requireNonEmpty("callId", callId);
    requireNonEmpty("sdpOffer", sdpOffer);
    const body = await this.execute({
      action: "accept",
      method: "POST",
      url: this.callsUrl(),
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
      url: this.callsUrl(),
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

    const response = await this.execute({ action: "media_update", method: "POST", url: this.callsUrl(), body, callId, retry: "never" });
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
    await this.execute({ action: "media_update", method: "POST", url: this.callsUrl(), body, callId, retry: "never" });
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
    const url = `${this.base}/${encodeURIComponent(this.pageId)}/messenger_call_permissions?psid=${encodeURIComponent(psid)}`;
    const body = await this.execute({ action: "call_permissions", method: "GET", url, psid, retry: "never" });
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
      url: `${this.base}/${encodeURIComponent(this.pageId)}/messages`,
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
      url: `${this.base}/${encodeURIComponent(this.pageId)}/call_metrics`,
      body,
      callId,
      retry: "never",
    });
  }

  stats(): GraphClientStats {
    return {
      requests: { ...this.counters.requests },
      errors: { ...this.counters.errors },
      latencyMs: perAction((a) => ({ ...this.counters.latencyMs[a] })),
    };
  }

  private async endCall(action: "reject" | "terminate", callId: string): Promise<void> {
    requireNonEmpty("callId", callId);
    await this.execute({
      action,
      method: "POST",
      url: this.callsUrl(),
      body: { platform: "messenger", action, call_id: callId },
      callId,
      retry: "once-if-transient",
    });
  }

  private callsUrl(): string {
    return `${this.base}/${encodeURIComponent(this.pageId)}/calls`;
  }

  private async execute(request: GraphRequest): Promise<JsonRecord> {
    try {
      return await this.attempt(request);
    } catch (err) {
      if (request.retry === "never" || !(err instanceof GraphApiError) || !err.isTransient) throw err;
      this.logger?.warn(
        { action: request.action, callId: request.callId, kind: err.kind, code: err.code, httpStatus: err.httpStatus },
        "graph request failed transiently, retrying once",
      );
      await delay(RETRY_BACKOFF_MS);
      try {
        return await this.attempt(request);
      } catch (retryErr) {
        // The first attempt may have landed after all; the goal of ending the call is then met.
        if (retryErr instanceof GraphApiError && retryErr.errorClass === "call-gone") {
          this.logger?.debug({ action: request.action, callId: request.callId }, "call already gone on retry");
          return {};
        }
        throw retryErr;
      }
    }
  }

  private async attempt(request: GraphRequest): Promise<JsonRecord> {
    const { action, callId } = request;
    this.counters.requests[action] += 1;
    this.logger?.debug(
      { action, callId, psid: request.psid, sdpBytes: sdpLength(request.body) },
      "graph request",
    );
    const started = performance.now();
    let ok = false;
    try {
      const body = await this.exchange(request);
      ok = true;
      this.logger?.debug({ action, callId, latencyMs: Math.round(performance.now() - started) }, "graph response");
      return body;
    } catch (err) {
      this.counters.errors[action] += 1;
      if (err instanceof GraphApiError) {
        this.logger?.debug(
          {
            action,
            callId,
            kind: err.kind,
            httpStatus: err.httpStatus,
            code: err.code,
            subcode: err.subcode,
            fbtraceId: err.fbtraceId,
            errorClass: err.errorClass,
          },
          "graph request failed",
        );
      }
      throw err;
    } finally {
      const elapsed = performance.now() - started;
      const latency = this.counters.latencyMs[action];
      latency.count += 1;
      latency.sum += elapsed;
      latency.max = Math.max(latency.max, elapsed);
      this.onRequest?.(action, elapsed / 1000, ok);
    }
  }

  private async exchange(request: GraphRequest): Promise<JsonRecord> {
    const { action, callId } = request;
    const signal = AbortSignal.timeout(this.timeoutMs);
    const headers: Record<string, string> = { Authorization: `Bearer ${this.accessToken}`, Accept: "application/json" };
    const init: RequestInit = { method: request.method, headers, signal };
    if (request.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(request.body);
    }

    let status: number;
    let text: string;
    let traceHeader: string | undefined;
    try {
      const response = await this.fetchImpl(request.url, init);
      status = response.status;
      traceHeader = response.headers.get("x-fb-trace-id") ?? undefined;
      text = await response.text();
    } catch (err) {
      const timedOut = signal.aborted;
      throw new GraphApiError({
        kind: timedOut ? "timeout" : "network",
        action,
        callId,
        message: timedOut
          ? `graph ${action} got no response within ${this.timeoutMs} ms`
          : `graph ${action} failed: ${describeCause(err)}`,
        cause: err,
      });
    }

    const parsed = parseJson(text);
    if (isRecord(parsed) && isRecord(parsed.error)) {
      throw graphEnvelopeError(action, callId, status, parsed.error, traceHeader);
    }
    if (status < 200 || status > 299) {
      throw new GraphApiError({
        kind: "bad-response",
        action,
        callId,
        httpStatus: status,
        fbtraceId: traceHeader,
        message: `graph ${action} returned HTTP ${status} without a Graph error body`,
      });
    }
    if (!isRecord(parsed)) throw this.badResponse(action, callId, `graph ${action} response is not a JSON object`, status);
    if (parsed.success === false) throw this.badResponse(action, callId, `graph ${action} returned success:false`, status);
    return parsed;
  }

  private badResponse(action: GraphAction, callId: string | undefined, message: string, httpStatus?: number): GraphApiError {
    return new GraphApiError({ kind: "bad-response", action, callId, httpStatus, message });
  }
}

function perAction<T>(make: (action: GraphAction) => T): Record<GraphAction, T> {
  return Object.fromEntries(GRAPH_ACTIONS.map((a) => [a, make(a)])) as Record<GraphAction, T>;
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

function graphEnvelopeError(
  action: GraphAction,
  callId: string | undefined,
  httpStatus: number,
  error: JsonRecord,
  traceHeader: string | undefined,
): GraphApiError {
  const code = readNumber(error.code);
  const subcode = readNumber(error.error_subcode);
  const message = readString(error.message) ?? "unknown Graph error";
  return new GraphApiError({
    kind: "graph",
    action,
    callId,
    httpStatus,
    code,
    subcode,
    type: readString(error.type),
    fbtraceId: readString(error.fbtrace_id) ?? traceHeader,
    isTransientFlag: error.is_transient === true,
    message: `graph ${action} failed: ${message} (code ${code ?? "?"}${subcode === undefined ? "" : `/${subcode}`})`,
  });
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function sdpLength(body: JsonRecord | undefined): number | undefined {
  const session = body?.session;
  return isRecord(session) && typeof session.sdp === "string" ? session.sdp.length : undefined;
}

function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}

function requireNonEmpty(name: string, value: string): void {
  if (typeof value !== "string" || value.length === 0) throw new RangeError(`${name} must be a non-empty string`);
}

function requireVersion(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
}
