import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { GraphApiError, graphErrors, type GraphErrorSpec } from "./graph-errors.js";
import { accessTokenOf, actionOf, parseCallsBody, routeGraphPath, type CallAction, type CallsRequest } from "./graph-request.js";

export interface SdpPayload {
  sdp_type: "offer" | "answer";
  sdp: string;
}

/** `/calls` success body. The accept guide shows the SDPs as bare strings, the rest of the docs as objects. */
export interface CallsSuccess {
  success: true;
  id?: string;
  session?: {
    sdp_response: SdpPayload | string;
    sdp_renegotiation?: SdpPayload | string;
  };
}

export type PermissionStatus = "has_permission" | "no_permission";

/** The check-permissions guide's response format (lowercase statuses, `can_perform_action`). */
export interface CallPermissionsResponse {
  permission: { status: PermissionStatus; expiration_time?: number };
  actions: Array<{
    action_name: "send_call_permission_request" | "start_call";
    can_perform_action: boolean;
    limits?: Array<{ time_period: string; max_allowed_per_user: number; current_usage: number }>;
  }>;
}

/** What the HTTP layer delegates to once a request is authenticated and structurally valid. */
export interface GraphBackend {
  handleCalls(request: CallsRequest): Promise<CallsSuccess>;
  callPermissions(psid: string): CallPermissionsResponse;
  /** Send API: only the `calling_optin` template (the call permission request) is simulated. */
  sendMessage(body: unknown): { recipient_id: string; message_id: string };
  /** `POST /{page-id}/call_metrics`: one quality report per ended call. */
  callMetrics(body: unknown): { success: true };
}

/**
 * What injected failures are keyed by: a `/calls` action (shared by both products: the next request with
 * that action, Page or WhatsApp number, takes it), the call_metrics edge, or WhatsApp's own `pre_accept`,
 * `call_permissions` and `messages` (the permission request).
 */
export type GraphFailureKey = CallAction | "call_metrics" | "pre_accept" | "call_permissions" | "messages";

/** A Graph request to an object a product beside the Page API owns (a WhatsApp phone number id). */
export interface GraphExtensionRequest {
  method: string;
  version: string;
  objectId: string;
  edge: string | undefined;
  /** Path segments after the edge (none on any documented route). */
  rest: string[];
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: string;
  record: GraphRequestRecord;
}

/** Serves the object ids it owns; "hold" leaves the request unanswered (an injected timeout). */
export interface GraphExtension {
  owns(objectId: string): boolean;
  handle(request: GraphExtensionRequest): Promise<{ status: number; body: unknown } | "hold">;
}

/** An injected answer for the next request with a given action: a Graph error, or no answer at all. */
export type GraphFailure = GraphErrorSpec | "timeout";

export interface GraphRequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** Parsed JSON (or form fields); undefined when the body was empty or unparseable. */
  body: unknown;
  action: CallAction | "pre_accept" | undefined;
  receivedAt: number;
  /** Filled in when answered; stays undefined for requests held by an injected timeout. */
  response: { status: number; body: unknown; sentAt: number } | undefined;
}

export interface GraphServerOptions {
  host: string;
  port: number;
  pageId: string;
  pageAccessToken: string;
  /** Added before every answer, to imitate a slow Graph API. */
  latencyMs?: number;
}

const MAX_BODY_BYTES = 1 << 20;

class BodyTooLargeError extends Error {}

/** Meta's Graph API for Page calls over node:http: auth, validation, error envelopes and a request log. */
export class GraphServer {
  readonly requests: GraphRequestRecord[] = [];
  private readonly failures = new Map<GraphFailureKey, GraphFailure[]>();
  private extension: GraphExtension | undefined;
  private readonly rewrites = new Map<CallAction, ((body: unknown) => unknown)[]>();
  private readonly held = new Set<ServerResponse>();
  private readonly latencyTimers = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly server: Server,
    private readonly options: GraphServerOptions,
    private readonly backend: GraphBackend,
  ) {}

  static async start(options: GraphServerOptions, backend: GraphBackend): Promise<GraphServer> {
    const server = createServer();
    const graph = new GraphServer(server, options, backend);
    server.on("request", (req, res) => {
      const record = graph.record(req);
      graph.onRequest(req, res, record).catch((error: unknown) => {
        // Graph's answer to its own failures: code 1, "An unknown error occurred".
        const unknown = new GraphApiError({ httpStatus: 500, code: 1, message: `An unknown error occurred: ${String(error)}` });
        if (!res.headersSent) graph.answer(res, record, 500, unknown.toEnvelope());
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return graph;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://${this.options.host}:${this.port}`;
  }

  failNext(action: GraphFailureKey, failure: GraphFailure): void {
    const queue = this.failures.get(action) ?? [];
    queue.push(failure);
    this.failures.set(action, queue);
  }

  /** The next injected failure for `key`, removed from the queue (for extensions that answer on their own). */
  takeFailure(key: GraphFailureKey): GraphFailure | undefined {
    return this.failures.get(key)?.shift();
  }

  /** Lets another product (WhatsApp numbers) answer requests to the object ids it owns. */
  extend(extension: GraphExtension): void {
    this.extension = extension;
  }

  /**
   * The next request with this action is processed as usual (the call changes state at Meta), but
   * its success body is replaced by `rewrite(body)`: a reply damaged on its way back.
   */
  rewriteNextSuccess(action: CallAction, rewrite: (body: unknown) => unknown): void {
    const queue = this.rewrites.get(action) ?? [];
    queue.push(rewrite);
    this.rewrites.set(action, queue);
  }

  async close(): Promise<void> {
    for (const timer of this.latencyTimers) clearTimeout(timer);
    this.latencyTimers.clear();
    for (const res of this.held) res.destroy();
    this.held.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private record(req: IncomingMessage): GraphRequestRecord {
    const url = new URL(req.url ?? "/", "http://graph.invalid");
    const record: GraphRequestRecord = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      rawBody: "",
      body: undefined,
      action: undefined,
      receivedAt: Date.now(),
      response: undefined,
    };
    this.requests.push(record);
    return record;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse, record: GraphRequestRecord): Promise<void> {
    const url = new URL(req.url ?? "/", "http://graph.invalid");
    try {
      record.rawBody = await readBody(req);
    } catch (error) {
      const message = error instanceof BodyTooLargeError ? "request body too large" : "could not read request body";
      return this.fail(res, record, graphErrors.invalidParameter(message));
    }

    const [version, objectId, edge, ...rest] = url.pathname.split("/").filter((p) => p.length > 0);
    if (this.extension && version !== undefined && /^v\d+\.\d+$/.test(version) && objectId !== undefined && this.extension.owns(objectId)) {
      const result = await this.extension.handle({
        method: record.method,
        version,
        objectId,
        edge,
        rest,
        query: url.searchParams,
        headers: req.headers,
        rawBody: record.rawBody,
        record,
      });
      if (result === "hold") {
        this.held.add(res);
        res.on("close", () => this.held.delete(res));
        return;
      }
      return this.answer(res, record, result.status, result.body);
    }

    const route = routeGraphPath(url.pathname);
    if (route.kind === "unknown") {
      if (route.version === undefined) return this.fail(res, record, graphErrors.unknownPath(url.pathname));
      return this.fail(res, record, graphErrors.unsupportedRequest(record.method, route.objectId ?? ""));
    }
    const token = accessTokenOf(req.headers.authorization, url.searchParams);
    if (token === undefined) return this.fail(res, record, graphErrors.missingToken());
    if (token !== this.options.pageAccessToken) return this.fail(res, record, graphErrors.invalidToken());
    if (route.pageId !== this.options.pageId) return this.fail(res, record, graphErrors.unsupportedRequest(record.method, route.pageId));

    if (route.kind === "call-permissions") {
      if (record.method !== "GET") return this.fail(res, record, graphErrors.unsupportedRequest(record.method, route.pageId));
      const psid = url.searchParams.get("psid");
      if (!psid) return this.fail(res, record, graphErrors.invalidParameter("Param psid is required"));
      return this.answer(res, record, 200, this.backend.callPermissions(psid));
    }

    if (record.method !== "POST") return this.fail(res, record, graphErrors.unsupportedRequest(record.method, route.pageId));
    try {
      record.body = parseGraphBody(record.rawBody, req.headers["content-type"]);
    } catch (error) {
      return this.fail(res, record, graphErrors.invalidBody(error instanceof Error ? error.message : String(error)));
    }
    if (route.kind === "call-metrics") {
      const injected = this.failures.get("call_metrics")?.shift();
      if (injected === "timeout") {
        this.held.add(res);
        res.on("close", () => this.held.delete(res));
        return;
      }
      if (injected) return this.fail(res, record, new GraphApiError(injected));
      try {
        return this.answer(res, record, 200, this.backend.callMetrics(record.body));
      } catch (error) {
        if (error instanceof GraphApiError) return this.fail(res, record, error);
        throw error;
      }
    }
    if (route.kind === "messages") {
      try {
        return this.answer(res, record, 200, this.backend.sendMessage(record.body));
      } catch (error) {
        if (error instanceof GraphApiError) return this.fail(res, record, error);
        throw error;
      }
    }
    record.action = actionOf(record.body);

    const injected = record.action ? this.failures.get(record.action)?.shift() : undefined;
    if (injected === "timeout") {
      // Graph never answers: the socket stays open until the client gives up or the simulator stops.
      this.held.add(res);
      res.on("close", () => this.held.delete(res));
      return;
    }
    if (injected) return this.fail(res, record, new GraphApiError(injected));

    try {
      const request = parseCallsBody(record.body);
      const result = await this.backend.handleCalls(request);
      const rewrite = this.rewrites.get(request.action)?.shift();
      return this.answer(res, record, 200, rewrite ? rewrite(result) : result);
    } catch (error) {
      if (error instanceof GraphApiError) return this.fail(res, record, error);
      throw error;
    }
  }

  private fail(res: ServerResponse, record: GraphRequestRecord, error: GraphApiError): void {
    this.answer(res, record, error.httpStatus, error.toEnvelope());
  }

  private answer(res: ServerResponse, record: GraphRequestRecord | undefined, status: number, body: unknown): void {
    const send = (): void => {
      if (res.destroyed) return;
      const text = JSON.stringify(body);
      if (record) record.response = { status, body, sentAt: Date.now() };
      // Graph also flags OAuth failures in this header; clients may look at it.
      if (status === 401) res.setHeader("www-authenticate", 'OAuth "Facebook Platform" "invalid_token"');
      res.writeHead(status, { "content-type": "application/json; charset=UTF-8", "content-length": Buffer.byteLength(text) });
      res.end(text);
    };
    const latency = this.options.latencyMs ?? 0;
    if (latency <= 0) return send();
    const timer = setTimeout(() => {
      this.latencyTimers.delete(timer);
      send();
    }, latency);
    this.latencyTimers.add(timer);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BodyTooLargeError());
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** JSON bodies, and form-encoded ones as Graph also takes (values that look like JSON are decoded). */
export function parseGraphBody(raw: string, contentType: string | undefined): unknown {
  if (raw.trim().length === 0) return {};
  if (contentType?.includes("application/x-www-form-urlencoded")) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of new URLSearchParams(raw)) {
      out[key] = /^[[{]/.test(value.trim()) ? (JSON.parse(value) as unknown) : value;
    }
    return out;
  }
  return JSON.parse(raw) as unknown;
}
