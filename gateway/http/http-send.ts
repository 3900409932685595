/**
 * The gateway's outgoing HTTP (the Graph API, call events, forwards between instances): one
 * client for all of them, with plain-data requests and answers so they can cross threads.
 */
import { Agent, request, type Dispatcher } from "undici";

/** One HTTP exchange: plain data, so it can cross threads. */
export interface HttpRequest {
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  /** Lower-case names; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

export type HttpSend = (request: HttpRequest) => Promise<HttpResponse>;

/** Every answer the gateway reads is small JSON; anything past this is not one, and is not read into memory. */
export const MAX_RESPONSE_BYTES = 1 << 20;

export class HttpResponseTooLargeError extends Error {
  override readonly name = "HttpResponseTooLargeError";
}

/**
 * Connections kept alive between requests (undici's default idle time), as many at once as
 * requests in flight.
 */
const agent = new Agent();

/**
 * Sends one request with undici's `request`. WHATWG `fetch` costs about four times the CPU per
 * request (1 ms against a quarter, 50 POSTs at once on one thread) and reaches the server later:
 * in a burst of calls its accepts queued behind each other's stream machinery.
 */
export const sendHttp: HttpSend = async (r) => {
  const res = await request(r.url, { method: r.method, headers: r.headers, body: r.body, signal: r.signal, dispatcher: agent });
  return { status: res.statusCode, headers: flatHeaders(res.headers), body: await readBounded(res.body) };
};

async function readBounded(body: Dispatcher.ResponseData["body"]): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const bytes = chunk as Buffer;
    size += bytes.length;
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy();
      throw new HttpResponseTooLargeError(`response body over ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function flatHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/**
 * An HTTP failure for a log line or an error message: the message, the error code when the message
 * lacks it, and the cause (undici and fetch report ECONNREFUSED and the like there).
 */
export function describeHttpError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const withCode = typeof code === "string" && !err.message.includes(code) ? ` (${code})` : "";
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${withCode}${cause}`;
}
