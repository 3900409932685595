import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import { GRAPH_ACTIONS, GraphApiError, type GraphAction } from "./graph-errors.js";
import { describeHttpError, sendHttp, type HttpSend } from "../http/http-send.js";
import { isRecord, readNumber, readString, type JsonRecord } from "./wire-values.js";

export interface GraphHttpOptions {
  /** e.g. `https://graph.facebook.com` */
  graphUrl: string;
  /** e.g. `v26.0` */
  graphVersion: string;
  timeoutMs?: number;
  logger?: Logger;
  /** How requests are sent (in a media worker: by the owner thread). */
  send?: HttpSend;
  /** Every HTTP attempt, when it is over: its action, latency and whether it succeeded. */
  onRequest?: (action: GraphAction, seconds: number, ok: boolean) => void;
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

/** Whether a failed request may be sent again: only where a duplicate cannot ring or renegotiate twice. */
export type RetryPolicy = "never" | "once-if-transient";

export interface GraphRequest {
  action: GraphAction;
  method: "GET" | "POST";
  /** Below the versioned base, e.g. `/123/calls?x=y` (ids already encoded). */
  path: string;
  /** The Page's or the WhatsApp business's token. */
  accessToken: string;
  body?: JsonRecord;
  callId?: string;
  /** Identifies the request in logs when there is no call id yet. */
  psid?: string;
  retry: RetryPolicy;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const RETRY_BACKOFF_MS = 250;

/**
 * The HTTP side of the Graph API, shared by the Messenger and WhatsApp clients: one timeout, one
 * error model (Graph's envelope as GraphApiError), one retry rule and one set of counters per
 * process, whichever platform a request is for.
 */
export class GraphHttp {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;
  private readonly send: HttpSend;
  private readonly onRequest: GraphHttpOptions["onRequest"];
  private readonly counters: GraphClientStats = {
    requests: perAction(() => 0),
    errors: perAction(() => 0),
    latencyMs: perAction(() => ({ count: 0, sum: 0, max: 0 })),
  };

  constructor(options: GraphHttpOptions) {
    const version = options.graphVersion.replace(/^\/+|\/+$/g, "");
    if (version.length === 0) throw new RangeError("graphVersion must not be empty");
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${this.timeoutMs}`);
    this.base = `${options.graphUrl.replace(/\/+$/, "")}/${version}`;
    this.logger = options.logger;
    this.send = options.send ?? sendHttp;
    this.onRequest = options.onRequest;
  }

  stats(): GraphClientStats {
    return {
      requests: { ...this.counters.requests },
      errors: { ...this.counters.errors },
      latencyMs: perAction((a) => ({ ...this.counters.latencyMs[a] })),
    };
  }

  async execute(request: GraphRequest): Promise<JsonRecord> {
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

  badResponse(action: GraphAction, callId: string | undefined, message: string, httpStatus?: number): GraphApiError {
    return new GraphApiError({ kind: "bad-response", action, callId, httpStatus, message });
  }

  private async attempt(request: GraphRequest): Promise<JsonRecord> {
    const { action, callId } = request;
    this.counters.requests[action] += 1;
    this.logger?.debug({ action, callId, psid: request.psid, sdpBytes: sdpLength(request.body) }, "graph request");
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
    const headers: Record<string, string> = { Authorization: `Bearer ${request.accessToken}`, Accept: "application/json" };
    let body: string | undefined;
    if (request.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(request.body);
    }

    let status: number;
    let text: string;
    let traceHeader: string | undefined;
    try {
      const response = await this.send({ url: `${this.base}${request.path}`, method: request.method, headers, body, signal });
      status = response.status;
      traceHeader = response.headers["x-fb-trace-id"];
      text = response.body;
    } catch (err) {
      const timedOut = signal.aborted;
      throw new GraphApiError({
        kind: timedOut ? "timeout" : "network",
        action,
        callId,
        message: timedOut ? `graph ${action} got no response within ${this.timeoutMs} ms` : `graph ${action} failed: ${describeHttpError(err)}`,
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
}

function perAction<T>(make: (action: GraphAction) => T): Record<GraphAction, T> {
  return Object.fromEntries(GRAPH_ACTIONS.map((a) => [a, make(a)])) as Record<GraphAction, T>;
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
  // WhatsApp puts the specific problem (which SDP line, which limit) in error_data.details.
  const details = isRecord(error.error_data) ? readString(error.error_data.details) : undefined;
  const detail = details === undefined ? "" : `: ${details.length > 200 ? `${details.slice(0, 200)}…` : details}`;
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
    message: `graph ${action} failed: ${message}${detail} (code ${code ?? "?"}${subcode === undefined ? "" : `/${subcode}`})`,
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

export function requireNonEmpty(name: string, value: string): void {
  if (typeof value !== "string" || value.length === 0) throw new RangeError(`${name} must be a non-empty string`);
}
