import type { Logger } from "pino";
import type { MetaLeg } from "../webrtc/meta-leg.js";
import type { PbxMediaStats } from "./pbx-media.js";

/**
 * What the call manager routes Meta's webhooks to, whichever side placed the call. Each direction
 * is its own state machine (InboundCall, OutboundCall); this is all they share.
 */
export interface MessengerCall {
  readonly callId: string;
  readonly direction: "inbound" | "outbound";
  readonly state: string;
  onMetaTerminate(status: string): Promise<void>;
  onMetaMediaUpdate(version: number, sdp: string): Promise<void>;
  onMetaCallStatus(status: "ringing" | "accepted"): Promise<void>;
  hangup(detail?: string): Promise<void>;
  /** Media figures of the SIP side, once it has media. */
  pbxMediaStats(): PbxMediaStats | undefined;
  /** Runs once the call has ended on both legs and released everything. */
  whenEnded(listener: (info: CallEndInfo) => void): void;
}

/** How a call ended, for logs and metrics. */
export type CallOutcome =
  | "completed-consumer-hangup"
  | "completed-target-hangup"
  | "completed-local-hangup"
  | "target-busy"
  | "target-declined"
  | "target-unreachable"
  | "target-no-answer"
  | "target-failed"
  | "accept-failed"
  | "media-failed"
  | "media-timeout"
  | "consumer-gone"
  | "consumer-declined"
  | "consumer-no-answer"
  | "no-permission"
  | "connect-failed"
  | "pbx-cancelled"
  | "error";

export interface CallEndInfo {
  callId: string;
  outcome: CallOutcome;
  detail: string;
  durationMs: number;
  /** Whether the consumer's audio reached the target at least once. */
  mediaFlowed: boolean;
}

/**
 * The last step of either direction's teardown, once both legs are closed: the record the registry
 * and metrics receive, and the call's one "call ended" log line.
 */
export function callEndRecord(o: {
  callId: string;
  outcome: CallOutcome;
  detail: string;
  startedAt: number;
  mediaFlowed: boolean;
  leg: MetaLeg;
  log: Logger;
}): CallEndInfo {
  const info: CallEndInfo = { callId: o.callId, outcome: o.outcome, detail: o.detail, durationMs: Date.now() - o.startedAt, mediaFlowed: o.mediaFlowed };
  o.log.info({ outcome: o.outcome, detail: o.detail, durationMs: info.durationMs, leg: o.leg.stats() }, "call ended");
  return info;
}
