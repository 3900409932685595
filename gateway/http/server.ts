import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { verifyChallenge, verifySignature } from "../meta/signature.js";
import { parseMessengerWebhook, WebhookFormatError, type ParsedWebhook } from "../meta/webhook.js";

export interface HttpServerOptions {
  host: string;
  port: number;
  appSecret: string;
  verifyToken: string;
  log: Logger;
  /** Receives each verified, parsed delivery after the 200 has been sent. */
  onWebhook: (parsed: ParsedWebhook) => void;
  /** Ready to take calls (false while draining or full). */
  isReady: () => boolean;
  /** Prometheus exposition text. */
  metrics: () => Promise<{ contentType: string; body: string }>;
  onWebhookResult?: (result: WebhookResult) => void;
}

export type WebhookResult = "accepted" | "bad-signature" | "bad-json" | "bad-format" | "too-large";

/** Meta batches up to 1000 updates per POST; a few MB is far beyond any real delivery. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const WEBHOOK_PATH = "/webhooks/meta";

/**
 * The gateway's HTTP face: Meta's webhook endpoint, health, readiness and metrics. Webhooks are
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
    if (url.pathname === "/healthz" && req.method === "GET") return send(res, 200, "ok\n");
    if (url.pathname === "/readyz" && req.method === "GET") {
      return this.o.isReady() ? send(res, 200, "ready\n") : send(res, 503, "not ready\n");
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
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === "too-large") {
      this.result("too-large");
      this.o.log.warn("webhook body too large: refused");
      send(res, 413, "payload too large\n");
      return;
    }
    const sig = verifySignature(body, header(req, "x-hub-signature-256"), this.o.appSecret);
    if (!sig.ok) {
      this.result("bad-signature");
      this.o.log.warn({ reason: sig.reason, remote: req.socket.remoteAddress, bytes: body.length }, "webhook signature check failed: refused");
      send(res, 401, "invalid signature\n");
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      this.result("bad-json");
      this.o.log.warn({ bytes: body.length }, "signed webhook is not JSON: refused");
      send(res, 400, "invalid JSON\n");
      return;
    }
    let parsed: ParsedWebhook;
    try {
      parsed = parseMessengerWebhook(json);
    } catch (err) {
      if (!(err instanceof WebhookFormatError)) throw err;
      // A signed delivery we cannot use will not get better on retry: acknowledge it and say why.
      this.result("bad-format");
      this.o.log.warn({ reason: err.message }, "webhook not a Messenger calls delivery: ignored");
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

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too-large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(over ? "too-large" : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
