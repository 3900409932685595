import type { WebhookDelivery } from "../meta/webhook-delivery.js";
import type { SipDownMessage, SipUpMessage, WireError } from "./sip-protocol.js";
import type { GatewayConfig } from "../config/config.js";

/** What a media worker is started with. */
export interface MediaWorkerData {
  index: number;
  /** The whole configuration with this worker's share of ports and calls. */
  config: GatewayConfig;
}

/** Owner → worker requests that are answered with a `reply`. */
export type WorkerRequest =
  | { t: "metrics"; req: number }
  | { t: "calls"; req: number }
  | { t: "terminate"; req: number; callId: string; businessId: string }
  | { t: "stop"; req: number; deadlineMs: number };

export type ToWorker =
  | SipDownMessage
  | WorkerRequest
  | { t: "webhook"; delivery: WebhookDelivery }
  | { t: "drain" }
  /** Whether the owner's cluster admits new calls (Redis reachable). */
  | { t: "admitting"; value: boolean };

export type FromWorker =
  | SipUpMessage
  | { t: "ready" }
  | { t: "call-added"; callId: string; businessId: string }
  | { t: "call-ended"; callId: string }
  | { t: "reply"; req: number; ok: true; value: unknown }
  | { t: "reply"; req: number; ok: false; error: WireError };

export function isSipUp(m: FromWorker): m is SipUpMessage {
  return m.t.startsWith("sip.");
}

export function isSipDown(m: ToWorker): m is SipDownMessage {
  return m.t.startsWith("sip.");
}
