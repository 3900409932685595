import type { WebhookDelivery } from "../meta/webhook-delivery.js";
import type { SipDownMessage, SipUpMessage, WireError } from "./sip-protocol.js";
import type { GatewayConfig } from "../config/config.js";
import type { HttpDownMessage, HttpUpMessage } from "./http-relay.js";

/** What a media worker is started with. */
export interface MediaWorkerData {
  index: number;
  /** The whole configuration with this worker's share of the media ports. */
  config: GatewayConfig;
  /** Agents' digest nonces are signed with this in every worker: a challenge answered at another worker is still ours. */
  digestSecret: Uint8Array;
}

/** Owner → worker requests that are answered with a `reply`. */
export type WorkerRequest =
  | { t: "metrics"; req: number }
  | { t: "calls"; req: number }
  | { t: "terminate"; req: number; callId: string; businessId: string }
  | { t: "stop"; req: number; deadlineMs: number };

export type ToWorker =
  | SipDownMessage
  | HttpDownMessage
  | WorkerRequest
  /** `admit`: whether a call this delivery opens is taken (the owner's count of the process's calls, the cluster's verdict). */
  | { t: "webhook"; delivery: WebhookDelivery; admit: boolean }
  | { t: "drain" };

export type FromWorker =
  | SipUpMessage
  | HttpUpMessage
  | { t: "ready" }
  /** One log line, written by the owner so that threads never interleave on stdout. */
  | { t: "log"; line: string }
  /** Once a second: how late this worker's event loop ran (LoopDelayMeter), for the owner's admission. */
  | { t: "load"; loopDelayMs: number }
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

export function isHttpUp(m: FromWorker): m is HttpUpMessage {
  return m.t.startsWith("http.");
}

export function isHttpDown(m: ToWorker): m is HttpDownMessage {
  return m.t.startsWith("http.");
}
