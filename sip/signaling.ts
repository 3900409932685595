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
  /** The SIP-over-TLS port, when the backend listens for TLS itself. */
  tlsPort?: number;
}

export interface SipSignalingEvents {
  /** A PBX-initiated INVITE. Without a listener the stack answers 480. */
  incoming: [call: IncomingSipCall];
  /** `ready` changed. */
  readiness: [ready: boolean];
}

export type SipTransportName = "udp" | "tcp" | "tls";

export interface PlaceCallOptions {
  /** Request-URI, e.g. `sip:agent@pbx.example:5060` or `sip:100@10.0.0.5;transport=tcp`. */
  uri: string;
  /** Our SDP offer. */
  sdp: string;
  /** From user part and display name (any Unicode; sent as UTF-8). */
  from?: { user: string; displayName?: string };
  /**
   * Extra headers on the INVITE, e.g. `{ "X-Meta-PSID": "123" }`, or `Referred-By` and `Replaces`
   * for a transfer. Headers the stack sets itself (core SIP, Supported, Session-Expires, Min-SE,
   * RSeq, RAck) are refused.
   */
  headers?: Record<string, string>;
  /** Credentials for 401/407 digest challenges on this call's requests. */
  auth?: { username: string; password: string };
  /** No final answer within this time → CANCEL and `failed(408, …, 'no-answer')`. */
  timeoutMs?: number;
  /** The caller's id for this call, carried by logs and errors; defaults to the SIP Call-ID. */
  callId?: string;
  /**
   * The SIP Call-ID to use (1–128 characters of RFC 3261's `word`); the stack makes one when
   * unset. Lets a caller in another thread know the Call-ID the moment it places the call.
   */
  sipCallId?: string;
}

/** RFC 3261 `word` characters, bounded: what a caller-chosen Call-ID may hold. */
const CALL_ID_WORD = /^[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}@]{1,128}$/;

/** The Call-ID a call placed with these options uses: the caller's (checked) or `make()`'s. */
export function chosenSipCallId(options: PlaceCallOptions, make: () => string): string {
  if (options.sipCallId === undefined) return make();
  if (!CALL_ID_WORD.test(options.sipCallId)) throw new RangeError(`not a usable SIP Call-ID: ${JSON.stringify(options.sipCallId.slice(0, 64))}`);
  return options.sipCallId;
}

export type SipFailureKind = "busy" | "declined" | "unreachable" | "no-answer" | "cancelled" | "failed";

export type SipEndReason =
  | "remote-bye" // the PBX sent BYE
  | "local-bye" // we sent BYE (hangup)
  | "ack-timeout" // our 2xx was never acknowledged; we sent BYE
  | "dialog-lost" // the PBX answered an in-dialog request with 481/408
  | "session-expired" // the PBX was to refresh the session (RFC 4028) and did not in time; we sent BYE
  | "refresh-failed" // our session refresh was refused or timed out; we sent BYE
  | "stopped" // the signalling stack was stopped
  | "signalling-lost"; // the backend lost its SIP server (drachtio-server); nothing could be sent

/** Answer to a re-INVITE: our SDP (200 OK) or a rejection such as `{ status: 488 }`. */
export type ReinviteAnswer = string | { status: number; reason?: string };
export type ReinviteResponder = (answer: ReinviteAnswer) => void;

/** A dialog's identity from our side: `localTag` is the tag we chose. */
export interface SipDialogId {
  callId: string;
  localTag: string;
  remoteTag: string;
}

/**
 * A Replaces header (RFC 3891), or one embedded in a Refer-To URI. `toTag` and `fromTag` are as
 * written: for an INVITE we receive, `toTag` is our tag in the dialog to replace.
 */
export interface SipReplaces {
  callId: string;
  toTag: string;
  fromTag: string;
  /** Replace only a dialog that is still early (RFC 3891 §3: a confirmed one gets 486). */
  earlyOnly: boolean;
}

/** A parsed Refer-To (RFC 3515 §2.1). */
export interface SipReferTarget {
  /** Where to send the INVITE: the Refer-To URI without its `?headers` part. */
  uri: string;
  displayName: string | undefined;
  /** Headers embedded in the URI (`?Replaces=…&Require=replaces`), unescaped, names as written. */
  headers: Readonly<Record<string, string>>;
  /** The embedded Replaces, parsed: an attended transfer. */
  replaces: SipReplaces | undefined;
}

/**
 * A REFER received in a confirmed dialog (RFC 3515), not yet answered. Answer once with
 * `accept()` (202) or `reject()`; a REFER answered by neither within the re-INVITE answer time is
 * answered 500. After `accept()`, report the new call's progress with `notify()`; the final one
 * ends the implicit subscription.
 */
export interface SipReferRequest {
  readonly referTo: SipReferTarget;
  /** Referred-By (RFC 3892) as received, to copy into the INVITE toward `referTo.uri`. */
  readonly referredBy: string | undefined;
  /**
   * False when the REFER asked for no implicit subscription (RFC 4488 `Refer-Sub: false`) and the
   * 202 confirmed it: `notify()` then sends nothing and resolves.
   */
  readonly subscription: boolean;
  /** A header of the REFER by (case-insensitive) name, as text. */
  header(name: string): string | undefined;
  /** 202 Accepted. Idempotent; ignored once rejected. */
  accept(): void;
  /** A final non-2xx answer such as 603 or 403. Ignored once answered. */
  reject(status: number, reason?: string): void;
  /**
   * In-dialog NOTIFY (`Event: refer`, body `message/sipfrag`) with a status line such as
   * `SIP/2.0 100 Trying` (see `sipfragStatusLine`). `final` ends the subscription
   * (`Subscription-State: terminated;reason=noresource`); otherwise it stays `active`. NOTIFYs
   * go out one at a time in call order. Resolves on a 2xx; rejects with SipRequestError on
   * another final answer or timeout, SipCallStateError before `accept()`, after the final NOTIFY
   * or once the dialog is gone, SipArgumentError for a bad status line.
   */
  notify(sipfrag: string, final: boolean): Promise<void>;
}

/** What both call directions can do and report once a dialog exists. */
export interface SipDialogEvents {
  /**
   * The PBX sent a re-INVITE. `offerSdp` is "" when it asks us to offer (then pass our offer).
   * Call `respond` once; without a listener the current local SDP is answered, and a listener
   * that never responds is answered 500 after a while.
   */
  reinvite: [offerSdp: string, respond: ReinviteResponder];
  /**
   * An UPDATE carrying an SDP offer (RFC 3311), in the early dialog (`early`, before the call is
   * answered) or the confirmed one. Call `respond` once, as for `reinvite`. In a confirmed dialog
   * without an `update` listener the offer goes to the `reinvite` listeners (it means the same);
   * in an early dialog without one it is refused 488. An UPDATE without SDP (a session refresh)
   * is answered by the stack and only reported as `refreshed`.
   */
  update: [offerSdp: string, respond: ReinviteResponder, early: boolean];
  /** A REFER in the confirmed dialog. Without a listener it is answered 603. */
  refer: [request: SipReferRequest];
  /** A session refresh (RFC 4028) succeeded: sent by us (`local`) or by the PBX (`remote`). */
  refreshed: [by: "local" | "remote"];
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
  /** The dialog's ids once it exists (early or confirmed); undefined before. Optional per backend. */
  readonly dialogId?: SipDialogId | undefined;
  /** CANCEL before answer, BYE after; resolves once the call is terminated. Idempotent. */
  hangup(): Promise<void>;
  /** Sends a re-INVITE and resolves with the answer SDP; a 491 (glare) or a 500 with Retry-After is retried after the RFC 3261 delay. */
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
  /**
   * The INVITE's Replaces header (RFC 3891), parsed. The stack has already answered 481 when it
   * names no live dialog of ours and 486 when `earlyOnly` names a confirmed one, so here it
   * names a live dialog: `findDialog(callId, toTag, fromTag)` gives it. Optional per backend.
   */
  readonly replaces?: SipReplaces | undefined;
  /** Where the INVITE came from on the network (for source allowlists). */
  readonly source: { address: string; port: number; transport: "udp" | "tcp" | "tls" };
  /** A header of the INVITE by (case-insensitive) name, as text. */
  header(name: string): string | undefined;
  /**
   * 180 Ringing, or 183 Session Progress with early-media SDP. Sent reliably (RFC 3262) when
   * the INVITE required 100rel; otherwise plain.
   */
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
