import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A webhook as the test's stand-in gateway received it. */
export interface ReceivedWebhook {
  rawBody: string;
  headers: IncomingHttpHeaders;
  signatureValid: boolean;
  /** Parsed body when the signature was valid, undefined otherwise. */
  body: unknown;
  receivedAt: number;
}

/**
 * A minimal webhook endpoint playing the gateway's HTTP side: it checks X-Hub-Signature-256
 * over the raw bytes, answers 200 (or 403 on a bad signature) and records what it got.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private readonly waiters = new Set<() => void>();
  /** Status to answer valid deliveries with; tests can change it to provoke retries. */
  statusForValid = 200;

  private constructor(
    private readonly server: Server,
    private readonly appSecret: string,
  ) {}

  static async start(appSecret: string): Promise<WebhookReceiver> {
    const server = createServer();
    const receiver = new WebhookReceiver(server, appSecret);
    server.on("request", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        const valid = receiver.verify(raw, req.headers["x-hub-signature-256"]);
        receiver.received.push({
          rawBody: raw.toString("utf8"),
          headers: req.headers,
          signatureValid: valid,
          body: valid ? (JSON.parse(raw.toString("utf8")) as unknown) : undefined,
          receivedAt: Date.now(),
        });
        res.writeHead(valid ? receiver.statusForValid : 403).end();
        for (const w of [...receiver.waiters]) w();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/webhooks/meta`;
  }

  /** Every call event from validly signed deliveries, in arrival order. */
  events(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const w of this.received) {
      const body = w.body as { entry?: Array<{ calls?: Array<Record<string, unknown>> }> } | undefined;
      for (const entry of body?.entry ?? []) out.push(...(entry.calls ?? []));
    }
    return out;
  }

  async waitForEvent(predicate: (event: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const found = (): Record<string, unknown> | undefined => this.events().find(predicate);
    const existing = found();
    if (existing) return existing;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`webhook event not received within ${timeoutMs} ms; got ${JSON.stringify(this.events())}`));
      }, timeoutMs);
      const check = (): void => {
        const event = found();
        if (!event) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(event);
      };
      this.waiters.add(check);
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private verify(raw: Buffer, header: string | string[] | undefined): boolean {
    if (typeof header !== "string" || !header.startsWith("sha256=")) return false;
    const expected = Buffer.from(createHmac("sha256", this.appSecret).update(raw).digest("hex"));
    const got = Buffer.from(header.slice("sha256=".length));
    return got.length === expected.length && timingSafeEqual(got, expected);
  }
}

/** POSTs JSON to the simulator's Graph API and returns status and parsed body. */
export async function graphPost(
  url: string,
  body: unknown,
  token: string | undefined,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { "content-type": "application/json", connection: "close" };
  if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
  const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function graphGet(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { headers: { connection: "close" } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Counts of active sockets and timers by libuv/Node resource type, to check nothing is left open. */
export function socketHandleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) {
    if (/UDP|TCP|Pipe|Timeout|Immediate/i.test(name)) counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** A Messenger-valid business offer (BUNDLE, sha-256, ICE credentials, a candidate, Opus). */
export const VALID_OFFER = [
  "v=0",
  "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0",
  "a=msid-semantic: WMS stream",
  "m=audio 40000 UDP/TLS/RTP/SAVPF 111 126",
  "c=IN IP4 127.0.0.1",
  "a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host generation 0",
  "a=end-of-candidates",
  "a=ice-ufrag:abcd",
  "a=ice-pwd:0123456789abcdef012345",
  "a=fingerprint:sha-256 76:E3:6A:9E:6C:E6:CB:9A:16:A5:7D:17:13:97:AB:52:2A:30:90:45:46:30:F3:54:1E:25:E4:32:F2:93:62:34",
  "a=setup:actpass",
  "a=mid:0",
  "a=sendrecv",
  "a=msid:stream track",
  "a=rtcp-mux",
  "a=rtpmap:111 opus/48000/2",
  "a=fmtp:111 minptime=10;useinbandfec=1",
  "a=rtpmap:126 telephone-event/8000",
  "a=ssrc:1234 cname:gw",
  "",
].join("\r\n");
