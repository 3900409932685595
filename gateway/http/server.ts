import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { jsonDepthExceeds, LimitExceededError, type Limits } from "../config/limits.js";
import { verifyChallenge, verifySignature } from "../meta/signature.js";
import { WebhookFormatError } from "../meta/webhook.js";
import { parseWebhookDelivery, type WebhookDelivery } from "../meta/webhook-delivery.js";

export interface HttpServerOptions {
  host: string;
  port: number;
  appSecret: string;
  verifyToken: string;
  /** Bounds on deliveries: body size, JSON depth, ids and SDP inside. */
  limits: Limits;
  log: Logger;
  /** Receives each verified, parsed delivery after the 200 has been sent. */
  onWebhook: (parsed: WebhookDelivery) => void;
  /** Ready to take calls (false while draining or full). */
  /** Why no new call is taken now (`/readyz` 503 with it), undefined when ready. */
  notReady: () => string | undefined;
  /** Prometheus exposition text. */
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** Live calls with their quality figures, for GET /calls. */
  liveCalls?: () => unknown;
  onWebhookResult?: (result: WebhookResult) => void;
  /** Webhooks forwarded by another instance of a cluster (gateway/cluster/); absent on a single instance. */
  forwarded?: {
    path: string;
    handle: (body: Buffer, headers: IncomingHttpHeaders, remote: string | undefined) => { status: number; text: string };
  };
}

export type WebhookResult = "accepted" | "bad-signature" | "bad-json" | "bad-format" | "too-large" | "over-limit";

const WEBHOOK_PATH = "/webhooks/meta";

/**
 * The gateway's HTTP face: Meta's webhook endpoint, health, readiness, metrics and the live calls. Webhooks are
 * checked against the raw bytes, answered 200 at once, and processed after the response so a slow
 * Graph API call can never make Meta retry.
 */
export class HttpServer {
  private readonly server: Server;

  constructor(private readonly o: HttpServerOptions) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        o.log.error({ err }, "http handler failed");
        if (!res.headersSent) send(res, 500, "internal error\n");
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 65_000;
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://gateway");
    if (url.pathname === WEBHOOK_PATH && req.method === "GET") return this.handleVerify(url, res);
    if (url.pathname === WEBHOOK_PATH && req.method === "POST") return this.handleWebhook(req, res);
    if (this.o.forwarded && url.pathname === this.o.forwarded.path && req.method === "POST") return this.handleForwarded(req, res);
    if (url.pathname === "/healthz" && req.method === "GET") return send(res, 200, "ok\n");
    if (url.pathname === "/readyz" && req.method === "GET") {
      const reason = this.o.notReady();
      return reason === undefined ? send(res, 200, "ready\n") : send(res, 503, `not ready: ${reason}\n`);
    }
    if (url.pathname === "/calls" && req.method === "GET" && this.o.liveCalls) {
      const body = JSON.stringify({ calls: await this.o.liveCalls() });
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
      res.end(body);
      return;
    }
    if (url.pathname === "/metrics" && req.method === "GET") {
      const m = await this.o.metrics();
      res.writeHead(200, { "content-type": m.contentType });
      res.end(m.body);
      return;
    }
    if (url.pathname === WEBHOOK_PATH) return send(res, 405, "method not allowed\n");
    send(res, 404, "not found\n");
  }

  private handleVerify(url: URL, res: ServerResponse): void {
    const check = verifyChallenge(url.searchParams, this.o.verifyToken);
    if (!check.ok) {
      this.o.log.warn({ mode: url.searchParams.get("hub.mode") }, "webhook verification refused");
      send(res, 403, "forbidden\n");
      return;
    }
    this.o.log.info("webhook verification answered");
    send(res, 200, check.challenge);
  }

  private async handleWebhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const limits = this.o.limits;
    const maxBytes = limits.webhook.maxBodyBytes;
    const declared = Number(header(req, "content-length") ?? 0);
    const body = declared > maxBytes ? "too-large" : await readBody(req, maxBytes);
    if (body === "too-large") {
      this.result("too-large");
      this.o.log.warn(
        { limit: "WEBHOOK_MAX_BODY_BYTES", max: maxBytes, declared: declared || undefined, remote: req.socket.remoteAddress },
        "webhook refused: body over the limit",
      );
      // The rest of the body is never read: the connection goes once the answer is out.
      res.setHeader("connection", "close");
      send(res, 413, "payload too large\n");
      res.once("finish", () => req.socket.destroy());
      return;
    }
    const sig = verifySignature(body, header(req, "x-hub-signature-256"), this.o.appSecret);
    if (!sig.ok) {
      this.result("bad-signature");
      this.o.log.warn({ reason: sig.reason, remote: req.socket.remoteAddress, bytes: body.length }, "webhook signature check failed: refused");
      send(res, 401, "invalid signature\n");
      return;
    }
    const text = body.toString("utf8");
    // Checked on the text: a recursive walk of the parsed value is what would overflow.
    if (jsonDepthExceeds(text, limits.webhook.maxJsonDepth)) {
      this.refuseOverLimit(res, new LimitExceededError("WEBHOOK_MAX_JSON_DEPTH", limits.webhook.maxJsonDepth, "JSON nested too deeply"), body.length);
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.result("bad-json");
      this.o.log.warn({ bytes: body.length }, "signed webhook is not JSON: refused");
      send(res, 400, "invalid JSON\n");
      return;
    }
    let parsed: WebhookDelivery;
    try {
      parsed = parseWebhookDelivery(json, { maxIdLength: limits.maxIdLength, maxJsonDepth: limits.webhook.maxJsonDepth, sdp: limits.sdp });
    } catch (err) {
      if (err instanceof LimitExceededError) {
        this.refuseOverLimit(res, err, body.length);
        return;
      }
      if (!(err instanceof WebhookFormatError)) throw err;
      // A signed delivery we cannot use will not get better on retry: acknowledge it and say why.
      this.result("bad-format");
      this.o.log.warn({ reason: err.message }, "webhook not a calls delivery: ignored");
      send(res, 200, "ignored\n");
      return;
    }
    this.result("accepted");
    send(res, 200, "EVENT_RECEIVED\n");
    setImmediate(() => {
      try {
        this.o.onWebhook(parsed);
      } catch (err) {
        this.o.log.error({ err }, "webhook processing failed");
      }
    });
  }

  /** A delivery another instance forwarded: bounded as Meta's (its events are a subset of one). */
  private async handleForwarded(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Twice Meta's bound: re-serialized events may come out a little longer than Meta wrote them.
    const body = await readBody(req, 2 * this.o.limits.webhook.maxBodyBytes);
    if (body === "too-large") {
      res.setHeader("connection", "close");
      send(res, 413, "payload too large\n");
      res.once("finish", () => req.socket.destroy());
      return;
    }
    const answer = this.o.forwarded!.handle(body, req.headers, req.socket.remoteAddress);
    send(res, answer.status, answer.text);
  }

  /** Nothing of a delivery over a bound is processed or kept. */
  private refuseOverLimit(res: ServerResponse, err: LimitExceededError, bytes: number): void {
    this.result("over-limit");
    this.o.log.warn({ limit: err.limit, max: err.max, reason: err.message, bytes }, "webhook refused: over a limit");
    send(res, 400, `${err.message}\n`);
  }

  private result(r: WebhookResult): void {
    this.o.onWebhookResult?.(r);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** The body, or "too-large" as soon as it passes `limit` (the rest is left unread). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too-large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.pause();
        chunks.length = 0;
        resolve("too-large");
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
