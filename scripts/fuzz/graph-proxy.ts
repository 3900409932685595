import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Sits between the gateway and the simulator's Graph API. It logs every request the gateway
 * makes (the authority for "no Graph request was caused by this input"), and injects faults the
 * simulator has no knob for: an error or no answer on any endpoint (permission checks included),
 * and accept/connect/media_update answers whose SDP is mutated on the way back.
 */

export interface ProxiedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  rawBody: string;
  body: unknown;
  /** `action` of a /calls request, `permissions` for the permission check, `messages` for the Send API. */
  action: string | undefined;
  callId: string | undefined;
  /** The consumer concerned, when the request names one or the simulator knows the call. */
  psid: string | undefined;
  receivedAt: number;
  status: number | undefined;
  /** The fault applied, if any. */
  fault: string | undefined;
  /** What the gateway got back (after any mutation), cut at 64 KB. */
  responseText: string | undefined;
}

export type GraphFault =
  | { kind: "error"; status: number; error: { message: string; type: string; code: number; error_subcode?: number } }
  | { kind: "hang" }
  | { kind: "mutate-sdp"; mutate: (sdp: string, field: "sdp_response" | "sdp_renegotiation") => string };

export interface FaultRule {
  match: (r: ProxiedRequest) => boolean;
  fault: GraphFault;
  /** How many requests it applies to; unlimited when absent. */
  times?: number;
  /** Requests it was applied to. */
  hits?: ProxiedRequest[];
}

export class GraphProxy {
  readonly requests: ProxiedRequest[] = [];
  private readonly rules = new Set<FaultRule>();
  private readonly held = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    private readonly target: string,
    private readonly psidOf: (callId: string) => string | undefined,
  ) {}

  static async start(target: string, psidOf: (callId: string) => string | undefined): Promise<GraphProxy> {
    const server = createServer();
    // Idle keep-alive connections close quickly, so the gateway's descriptor count settles between checks.
    server.keepAliveTimeout = 500;
    const proxy = new GraphProxy(server, target, psidOf);
    server.on("request", (req, res) => {
      proxy.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  addRule(rule: FaultRule): FaultRule {
    rule.hits = [];
    this.rules.add(rule);
    return rule;
  }

  removeRule(rule: FaultRule): void {
    this.rules.delete(rule);
  }

  clearRules(): void {
    this.rules.clear();
  }

  /** Requests that concern a consumer or a call id. */
  about(o: { psid?: string; callId?: string; token?: string }): ProxiedRequest[] {
    return this.requests.filter(
      (r) =>
        (o.psid !== undefined && r.psid === o.psid) ||
        (o.callId !== undefined && r.callId === o.callId) ||
        (o.token !== undefined && (r.rawBody.includes(o.token) || r.path.includes(o.token) || JSON.stringify(r.query).includes(o.token))),
    );
  }

  async close(): Promise<void> {
    for (const res of this.held) res.destroy();
    this.held.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://graph.invalid");
    const record = describeRequest(req.method ?? "GET", url, rawBody, req.headers["content-type"], this.psidOf);
    this.requests.push(record);

    const rule = [...this.rules].find((r) => r.match(record));
    if (rule) {
      rule.hits!.push(record);
      if (rule.times !== undefined && rule.hits!.length >= rule.times) this.rules.delete(rule);
    }
    const fault = rule?.fault;
    if (fault?.kind === "hang") {
      record.fault = "hang";
      // No answer at all: the socket stays open until the gateway gives up or the proxy closes.
      this.held.add(res);
      res.on("close", () => this.held.delete(res));
      return;
    }
    if (fault?.kind === "error") {
      record.fault = `error ${fault.status}/${fault.error.code}`;
      record.status = fault.status;
      const text = JSON.stringify({ error: { ...fault.error, fbtrace_id: "FuzzTrace" } });
      res.writeHead(fault.status, { "content-type": "application/json; charset=UTF-8", "content-length": Buffer.byteLength(text) });
      res.end(text);
      return;
    }

    const headers: Record<string, string> = {};
    for (const name of ["authorization", "content-type"]) {
      const v = req.headers[name];
      if (typeof v === "string") headers[name] = v;
    }
    const upstream = await fetch(`${this.target}${req.url ?? "/"}`, {
      method: req.method,
      headers,
      body: req.method === "GET" || req.method === "HEAD" ? undefined : rawBody,
      signal: AbortSignal.timeout(30_000),
    });
    let text = await upstream.text();
    record.status = upstream.status;
    if (fault?.kind === "mutate-sdp" && upstream.ok) {
      const mutated = mutateSessionSdps(text, fault.mutate);
      if (mutated !== undefined) {
        text = mutated;
        record.fault = "mutated-sdp";
      }
    }
    record.responseText = text.slice(0, 65_536);
    res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }
}

function describeRequest(
  method: string,
  url: URL,
  rawBody: string,
  contentType: string | undefined,
  psidOf: (callId: string) => string | undefined,
): ProxiedRequest {
  let body: unknown;
  try {
    if (contentType?.includes("application/x-www-form-urlencoded")) body = Object.fromEntries(new URLSearchParams(rawBody));
    else body = rawBody ? (JSON.parse(rawBody) as unknown) : undefined;
  } catch {
    body = undefined;
  }
  const b = (body ?? {}) as { action?: unknown; call_id?: unknown; to?: unknown; recipient?: unknown };
  const query = Object.fromEntries(url.searchParams);
  let action = typeof b.action === "string" ? b.action : undefined;
  if (url.pathname.includes("call_permissions")) action = "permissions";
  else if (url.pathname.endsWith("/messages")) action = "messages";
  const callId = typeof b.call_id === "string" ? b.call_id : undefined;
  let recipient: unknown = b.recipient;
  if (typeof recipient === "string") {
    try {
      recipient = JSON.parse(recipient) as unknown;
    } catch {
      recipient = undefined;
    }
  }
  const recipientId = (recipient as { id?: unknown } | undefined)?.id;
  const psid =
    query.psid ??
    (action === "connect" && typeof b.to === "string" ? b.to : undefined) ??
    (typeof recipientId === "string" ? recipientId : undefined) ??
    (callId ? psidOf(callId) : undefined);
  return { method, path: url.pathname, query, rawBody, body, action, callId, psid, receivedAt: Date.now(), status: undefined, fault: undefined, responseText: undefined };
}

/** Applies `mutate` to the SDPs of a /calls answer (object or bare-string form); undefined when it carries none. */
function mutateSessionSdps(text: string, mutate: (sdp: string, field: "sdp_response" | "sdp_renegotiation") => string): string | undefined {
  let json: { session?: Record<string, unknown> };
  try {
    json = JSON.parse(text) as { session?: Record<string, unknown> };
  } catch {
    return undefined;
  }
  const session = json.session;
  if (!session || typeof session !== "object") return undefined;
  let changed = false;
  for (const field of ["sdp_response", "sdp_renegotiation"] as const) {
    const v = session[field];
    if (typeof v === "string") {
      session[field] = mutate(v, field);
      changed = true;
    } else if (v && typeof v === "object" && typeof (v as { sdp?: unknown }).sdp === "string") {
      (v as { sdp: string }).sdp = mutate((v as { sdp: string }).sdp, field);
      changed = true;
    }
  }
  return changed ? JSON.stringify(json) : undefined;
}
