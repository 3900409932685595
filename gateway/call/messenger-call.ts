import type { CallEndInfo } from "./inbound-call.js";
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
