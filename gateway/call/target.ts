import type { EventEmitter } from "node:events";
import type { SipDialogId } from "../../sip/signaling.js";
import type { FarMedia } from "./far-media.js";

/** Why the far end did not take the call. */
export type TargetFailure = "busy" | "declined" | "unreachable" | "no-answer" | "failed";

/** One audio packet of the Opus stream exchanged with the Meta leg. */
export interface OpusFrame {
  payload: Uint8Array;
  /** RTP timestamp on the 48 kHz Opus clock. */
  timestamp: number;
  /** RTP sequence number as received from Meta (toward the target only; the jitter buffer needs it). */
  sequenceNumber?: number;
  ssrc?: number;
  /** performance.now() when the packet that carried this audio entered the gateway. */
  arrivalMs: number;
}

/** A DTMF digit as RFC 4733 (or SIP INFO) carries it. */
export type Digit = "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "*" | "#" | "A" | "B" | "C" | "D";

export interface CallTargetEvents {
  /** The far end rings (18x), with the status, for progress reports (a transfer's NOTIFY). */
  ringing: [number];
  /**
   * The far end plays early media before answering (a SIP 183 with SDP: IVR prompts, ringback); only
   * a target configured to accept on early media reports it.
   */
  earlyMedia: [FarMedia];
  /** The far end answered; its media is bridged from now on (the same FarMedia as its early media). */
  answered: [FarMedia];
  /** The far end refused or could not be reached before answering. */
  failed: [TargetFailure, string];
  /** The far end hung up after answering. */
  ended: [string];
}

/**
 * The other side of a consumer's call: what it rings (the PBX via SIP, or the echo target). The
 * call drives its ringing and its end; once it answers, its media is a FarMedia.
 */
export interface CallTarget extends EventEmitter<CallTargetEvents> {
  readonly kind: string;
  /** Its SIP dialog (Call-ID and tags), when it is a SIP party that has one. */
  readonly dialogId?: SipDialogId | undefined;
  /** Starts ringing the far end; the outcome arrives as answered or failed. */
  ring(info: RingInfo): void;
  /** Ends the far end's side (cancel before answer, hang up after); idempotent. */
  hangup(reason: string): Promise<void>;
}

/** Who is calling, for the INVITE the target sends (see consumer-identity.ts). */
export interface RingInfo {
  callId: string;
  /** The consumer's id on the call's platform: a PSID, or a WhatsApp phone number or user id. */
  psid: string;
  /** The Page a Messenger call came to. */
  pageId?: string;
  /** WhatsApp calls: the consumer as Meta names them, and the business number they called. */
  whatsapp?: { phone?: string; userId?: string; name?: string; phoneNumberId: string };
}
