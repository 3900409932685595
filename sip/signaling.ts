import type { EventEmitter } from "node:events";

/**
 * The narrow port the gateway uses to reach the PBX: place a call, take a call, change media,
 * send INFO, hang up, ping. SDP is opaque text here (see sdp.ts for reading and writing it); an
 * adapter (embedded on npm `sip`, or drachtio) implements this and nothing above it sees SIP
 * messages.
 *
 * Every call ends with exactly one terminal event: `failed` if it never reached `answered`
 * (`cancel` for an incoming call the PBX withdrew), `ended` once it had been answered.
 */
export interface SipSignaling extends EventEmitter<SipSignalingEvents> {
  /** Binds the transports; rejects with SipTransportError when a port is taken. */
  start(): Promise<void>;
  /** Ends live calls (BYE/CANCEL, best effort), then closes every socket and timer. */
  stop(): Promise<void>;
  /** Sends the INVITE on the next tick, so listeners attached right after this call see everything. */
  placeCall(options: PlaceCallOptions): OutgoingSipCall;
  /** Out-of-dialog OPTIONS; resolves with the final status (408 when nothing answered, 503 when unreachable). */
  options(uri: string): Promise<number>;
  /**
   * Whether calls can be placed and received now. The embedded stack is ready from start() to
   * stop(); a backend that relies on a SIP server is ready while it is connected to it, and
   * placeCall() then fails at once (503, 'unreachable') while it is not.
   */
  readonly ready: boolean;
  /** Where PBXs and phones send SIP to reach the gateway, once known (after start()). */
  readonly localAddress: SipAddress | undefined;
}

export interface SipAddress {
  address: string;
  port: number;
}

export interface SipSignalingEvents {
  /** A PBX-initiated INVITE. Without a listener the stack answers 480. */
  incoming: [call: IncomingSipCall];
  /** `ready` changed. */
  readiness: [ready: boolean];
}

export type SipTransportName = "udp" | "tcp";

export interface PlaceCallOptions {
  /** Request-URI, e.g. `sip:agent@pbx.example:5060` or `sip:100@10.0.0.5;transport=tcp`. */
  uri: string;
  /** Our SDP offer. */
  sdp: string;
  /** From user part and display name (any Unicode; sent as UTF-8). */
  from?: { user: string; displayName?: string };
  /** Extra headers on the INVITE, e.g. `{ "X-Meta-PSID": "123" }`. Core SIP headers are refused. */
  headers?: Record<string, string>;
  /** Credentials for 401/407 digest challenges on this call's requests. */
  auth?: { username: string; password: string };
  /** No final answer within this time → CANCEL and `failed(408, …, 'no-answer')`. */
  timeoutMs?: number;
  /** The caller's id for this call, carried by logs and errors; defaults to the SIP Call-ID. */
  callId?: string;
}

export type SipFailureKind = "busy" | "declined" | "unreachable" | "no-answer" | "cancelled" | "failed";

export type SipEndReason =
  | "remote-bye" // the PBX sent BYE
  | "local-bye" // we sent BYE (hangup)
  | "ack-timeout" // our 2xx was never acknowledged; we sent BYE
  | "dialog-lost" // the PBX answered an in-dialog request with 481/408
  | "stopped" // the signalling stack was stopped
  | "signalling-lost"; // the backend lost its SIP server (drachtio-server); nothing could be sent

/** Answer to a re-INVITE: our SDP (200 OK) or a rejection such as `{ status: 488 }`. */
export type ReinviteAnswer = string | { status: number; reason?: string };
export type ReinviteResponder = (answer: ReinviteAnswer) => void;

/** What both call directions can do and report once a dialog exists. */
export interface SipDialogEvents {
  /**
   * The PBX sent a re-INVITE. `offerSdp` is "" when it asks us to offer (then pass our offer).
   * Call `respond` once; without a listener the current local SDP is answered, and a listener
   * that never responds is answered 500 after a while.
   */
  reinvite: [offerSdp: string, respond: ReinviteResponder];
  /** An in-dialog INFO (e.g. `application/dtmf-relay`); already answered 200. */
  info: [contentType: string, body: string];
  /** The answered call is over. */
  ended: [reason: SipEndReason];
}

export interface SipDialogCall {
  /** The SIP Call-ID. */
  readonly sipCallId: string;
  /** The caller's id (PlaceCallOptions.callId) or the SIP Call-ID. */
  readonly callId: string;
  readonly localSdp: string;
  readonly remoteSdp: string | undefined;
  /** CANCEL before answer, BYE after; resolves once the call is terminated. Idempotent. */
  hangup(): Promise<void>;
  /** Sends a re-INVITE and resolves with the answer SDP; 491 glare is retried after the RFC 3261 delay. */
  reinvite(sdp: string): Promise<string>;
  /** Sends INFO; resolves with the final status, rejects with SipRequestError on non-2xx. */
  sendInfo(contentType: string, body: string): Promise<number>;
}

/** UAC states: INVITE sent → 100 → 1xx with a To tag → 2xx acknowledged → over. */
export type OutgoingCallState = "calling" | "proceeding" | "early" | "confirmed" | "cancelling" | "terminating" | "terminated";

export interface OutgoingSipCallEvents extends SipDialogEvents {
  /** 101–199 (not 100 Trying); `sdp` is early media when present. */
  provisional: [status: number, reason: string, sdp: string | undefined];
  answered: [remoteSdp: string];
  failed: [status: number, reason: string, kind: SipFailureKind];
  state: [state: OutgoingCallState];
}

export interface OutgoingSipCall extends EventEmitter<OutgoingSipCallEvents>, SipDialogCall {
  readonly state: OutgoingCallState;
  /**
   * Ends the unanswered call with `failed(487, …, 'cancelled')`. The CANCEL goes out once a
   * provisional has arrived (RFC 3261 §9.1); before that, `failed` is reported at once and the
   * CANCEL follows the first provisional. A 2xx that crosses the CANCEL is ACKed and BYEd.
   */
  cancel(): Promise<void>;
}

/** UAS states: INVITE received → 18x sent → 2xx sent → ACK received → over. */
export type IncomingCallState = "offered" | "early" | "accepted" | "confirmed" | "terminating" | "terminated";

export interface IncomingSipCallEvents extends SipDialogEvents {
  /** The PBX cancelled before we answered (200 and 487 already sent). */
  cancel: [];
  /** The ACK for our 2xx arrived. */
  confirmed: [];
  state: [state: IncomingCallState];
}

export interface SipParty {
  uri: string;
  user: string | undefined;
  displayName: string | undefined;
}

export interface IncomingSipCall extends EventEmitter<IncomingSipCallEvents>, SipDialogCall {
  readonly state: IncomingCallState;
  readonly from: SipParty;
  readonly to: SipParty;
  readonly requestUri: string;
  /** Where the INVITE came from on the network (for source allowlists). */
  readonly source: { address: string; port: number; transport: "udp" | "tcp" };
  /** A header of the INVITE by (case-insensitive) name, as text. */
  header(name: string): string | undefined;
  /** 180 Ringing, or 183 Session Progress with early-media SDP. */
  ringing(sdp?: string): void;
  /**
   * 200 OK with our SDP, retransmitted until the ACK. Resolves true on the ACK, false when the
   * call ended first (no ACK: we sent BYE and `ended('ack-timeout')` follows). Rejects only when
   * the call can no longer be accepted (SipCallStateError).
   */
  accept(sdp: string): Promise<boolean>;
  /** A final non-2xx answer; `headers` adds e.g. `WWW-Authenticate` to a 401. */
  reject(status: number, reason?: string, headers?: Record<string, string | readonly string[]>): void;
}

/** Maps a final failure status to what it means for the person calling. */
export function failureKindForStatus(status: number): SipFailureKind {
  switch (status) {
    case 486:
    case 600:
      return "busy";
    case 603:
    case 607:
      return "declined";
    case 408:
    case 480:
      return "no-answer";
    case 404:
    case 410:
    case 484:
    case 502:
    case 503:
    case 504:
    case 604:
      return "unreachable";
    default:
      return "failed";
  }
}
