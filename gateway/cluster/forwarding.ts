import type { IncomingHttpHeaders } from "node:http";
import type { Logger } from "pino";
import { sendHttp, type HttpResponse } from "../http/http-send.js";
import type { Delivery, RoutableEvent } from "./delivery.js";
import { ForwardError } from "./errors.js";
import { signForward, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyForward } from "./forward-auth.js";

/** Where instances post each other webhooks. Not Meta's path: a load balancer need not expose it. */
export const FORWARD_PATH = "/internal/cluster/deliveries";

/** What one instance posts to another. */
export interface ForwardedDelivery<D extends Delivery = Delivery> {
  /** The instance that received it from Meta. */
  from: string;
  /**
   * Sent to every instance while Redis is away (the owner is unknown): taken only for calls the
   * receiver holds, ignored elsewhere.
   */
  onlyIfOwned: boolean;
  delivery: D;
}

/** Posts a sub-delivery to the instance that owns its call and waits for it to be taken. */
export async function forward<D extends Delivery>(
  o: { secret: string; timeoutMs: number },
  target: { id: string; url: string },
  body: ForwardedDelivery<D>,
  callId: string,
): Promise<void> {
  const text = JSON.stringify(body);
  const ts = Date.now();
  let res: HttpResponse;
  try {
    res = await sendHttp({
      url: `${target.url}${FORWARD_PATH}`,
      method: "POST",
      headers: { "content-type": "application/json", [TIMESTAMP_HEADER]: String(ts), [SIGNATURE_HEADER]: signForward(o.secret, ts, text) },
      body: text,
      signal: AbortSignal.timeout(o.timeoutMs),
    });
  } catch (err) {
    throw new ForwardError(callId, target.id, (err as Error).message, { cause: err });
  }
  if (res.status !== 200) throw new ForwardError(callId, target.id, `answered ${res.status}`);
}

export interface ForwardEndpointOptions<D extends Delivery> {
  secret: string;
  log: Logger;
  /** Takes a forwarded delivery; with onlyIfOwned, only its events for calls held here. */
  accept: (forwarded: ForwardedDelivery<D>) => void;
}

/** What the HTTP server answers a forwarded delivery with. */
export interface ForwardAnswer {
  status: number;
  text: string;
}

/**
 * The receiving side of forwarding, given the body the HTTP server read (bounded): checked (signed
 * with the cluster secret, the shape every delivery has) and handed over before the answer, so the
 * sender's 200 means the owner has its events, in order.
 */
export function acceptForwarded<D extends Delivery>(o: ForwardEndpointOptions<D>, body: Buffer, headers: IncomingHttpHeaders, remote: string | undefined): ForwardAnswer {
  const check = verifyForward(o.secret, body, header(headers, TIMESTAMP_HEADER), header(headers, SIGNATURE_HEADER), Date.now());
  if (!check.ok) {
    o.log.warn({ reason: check.reason, remote }, "forwarded webhook refused: bad cluster signature");
    return { status: 401, text: "invalid signature\n" };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return { status: 400, text: "invalid JSON\n" };
  }
  if (!isForwarded(parsed)) return { status: 400, text: "not a forwarded delivery\n" };
  o.accept(parsed as ForwardedDelivery<D>);
  return { status: 200, text: "taken\n" };
}

function isForwarded(v: unknown): v is ForwardedDelivery {
  if (typeof v !== "object" || v === null) return false;
  const f = v as Record<string, unknown>;
  const d = f.delivery as Record<string, unknown> | undefined;
  return (
    typeof f.from === "string" &&
    typeof f.onlyIfOwned === "boolean" &&
    typeof d === "object" &&
    d !== null &&
    Array.isArray(d.events) &&
    d.events.every((e: unknown) => isRoutable(e))
  );
}

function isRoutable(e: unknown): e is RoutableEvent {
  return typeof e === "object" && e !== null && typeof (e as RoutableEvent).callId === "string" && typeof (e as RoutableEvent).event === "string";
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
