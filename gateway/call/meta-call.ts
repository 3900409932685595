import type { Logger } from "pino";
import { assessCallQuality, type CallQuality } from "../quality/call-quality.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import type { SipDialogId } from "../../sip/signaling.js";
import type { TransferredParty } from "./call-transfer.js";
import { pbxLegFigures, toPbxFigures, type PbxMediaStats } from "./pbx-media.js";
import type { Platform } from "../meta/platform.js";

/**
 * What the call manager routes Meta's webhooks to, whichever platform (Messenger, WhatsApp) and
 * whichever side placed the call. Each direction is its own state machine (InboundCall,
 * OutboundCall); this is all they share.
 */
export interface MetaCall {
  readonly callId: string;
  /** The Page (Messenger) or phone-number id (WhatsApp) the call belongs to. */
  readonly businessId: string;
  readonly direction: "inbound" | "outbound";
  readonly state: string;
  /** `errors`: what Meta said went wrong (WhatsApp's `errors[]`), for the call's end record. */
  onMetaTerminate(status: string, errors?: string): Promise<void>;
  onMetaMediaUpdate(version: number, sdp: string): Promise<void>;
  onMetaCallStatus(status: "ringing" | "accepted" | "rejected"): Promise<void>;
  /** Meta's answer to our connect offer, by webhook (WhatsApp agent calls only). */
  onMetaAnswer?(sdp: string): Promise<void>;
  hangup(detail?: string): Promise<void>;
  /** Media figures of the SIP side, once it has media. */
  pbxMediaStats(): PbxMediaStats | undefined;
  /** Runs once the call has ended on both legs and released everything. */
  whenEnded(listener: (info: CallEndInfo) => void): void;
  /** The SIP dialog of the party the consumer is with now, and where its PBX is. */
  pbxDialog(): PbxDialogInfo | undefined;
  /** Moves the consumer to a party that replaced the current one (RFC 3891); the old one is released. */
  replaceParty(party: TransferredParty): Promise<void>;
}

/** The SIP dialog of the party a consumer is with, and where that party's PBX is. */
export interface PbxDialogInfo extends SipDialogId {
  hosts: readonly string[];
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
  platform: Platform;
  /** The Page (Messenger) or phone-number id (WhatsApp) the call belongs to. */
  businessId: string;
  outcome: CallOutcome;
  detail: string;
  durationMs: number;
  /** Whether the consumer's audio reached the target at least once. */
  mediaFlowed: boolean;
  /** When the call started (connect webhook, or the agent's INVITE) and ended, ms since the epoch. */
  startedAt: number;
  endedAt: number;
  /** What the call sounded like on both legs, and the E-model estimate each way. */
  quality: CallQuality;
}

/** The quality figures of a call now, from its Meta leg and (once it has media) its SIP side. */
export function callQuality(startedAt: number, leg: MetaMediaLeg, pbx: PbxMediaStats | undefined): CallQuality {
  return assessCallQuality({
    startedAt,
    meta: leg.quality(),
    pbx: pbx && pbxLegFigures(pbx),
    toPbx: pbx && toPbxFigures(pbx),
    latencyToPbx: pbx && pbx.latencyToPbx.count > 0 ? pbx.latencyToPbx : undefined,
    latencyToMeta: pbx && pbx.latencyToMeta.count > 0 ? pbx.latencyToMeta : undefined,
  });
}

/**
 * The last step of either direction's teardown, once both legs are closed: the record the registry
 * and metrics receive, and the call's one "call ended" log line.
 */
export function callEndRecord(o: {
  callId: string;
  platform: Platform;
  businessId: string;
  outcome: CallOutcome;
  detail: string;
  startedAt: number;
  mediaFlowed: boolean;
  leg: MetaMediaLeg;
  /** The SIP side's media figures, when the call got that far. */
  pbx?: PbxMediaStats | undefined;
  log: Logger;
}): CallEndInfo {
  const endedAt = Date.now();
  const quality = callQuality(o.startedAt, o.leg, o.pbx);
  const info: CallEndInfo = {
    callId: o.callId,
    platform: o.platform,
    businessId: o.businessId,
    outcome: o.outcome,
    detail: o.detail,
    durationMs: endedAt - o.startedAt,
    mediaFlowed: o.mediaFlowed,
    startedAt: o.startedAt,
    endedAt,
    quality,
  };
  o.log.info({ outcome: o.outcome, detail: o.detail, durationMs: info.durationMs, leg: o.leg.stats(), quality }, "call ended");
  return info;
}
