import {
  SipArgumentError,
  SipCallError,
  SipCallStateError,
  SipError,
  SipRequestError,
  SipTransportError,
} from "../../sip/errors.js";
import type {
  IncomingCallState,
  OutgoingCallState,
  PlaceCallOptions,
  ReinviteAnswer,
  SipAddress,
  SipDialogId,
  SipEndReason,
  SipFailureKind,
  SipParty,
  SipReferTarget,
  SipReplaces,
} from "../../sip/signaling.js";

/**
 * The SIP port between the thread that owns the SIP stack and a media worker, as plain messages.
 * A call's handle is chosen by the side that creates it (`o…` by the worker for calls it places,
 * `i…` by the owner for INVITEs it hands over); SIP messages are few per call, so nothing here is
 * on a media path.
 */

/** What a worker needs to know of a dialog after every event: the state its getters report. */
export interface DialogSnapshot {
  sipCallId: string;
  callId: string;
  state: OutgoingCallState | IncomingCallState;
  localSdp: string;
  remoteSdp: string | undefined;
  dialogId: SipDialogId | undefined;
}

export interface IncomingSnapshot extends DialogSnapshot {
  from: SipParty;
  to: SipParty;
  requestUri: string;
  replaces: SipReplaces | undefined;
  source: { address: string; port: number; transport: "udp" | "tcp" | "tls" };
  /** The headers the call core reads, by lower-case name. */
  headers: Record<string, string>;
}

export interface ReferSnapshot {
  id: string;
  referTo: SipReferTarget;
  referredBy: string | undefined;
  subscription: boolean;
  headers: Record<string, string>;
}

/** A dialog event as sent: responders become ids the worker answers with `sip.respond`. */
export type WireDialogEvent =
  | { name: "reinvite"; offerSdp: string; respondId: string }
  | { name: "update"; offerSdp: string; respondId: string; early: boolean }
  | { name: "refer"; refer: ReferSnapshot }
  | { name: "refreshed"; by: "local" | "remote" }
  | { name: "info"; contentType: string; body: string }
  | { name: "ended"; reason: SipEndReason }
  | { name: "provisional"; status: number; reason: string; sdp: string | undefined }
  | { name: "answered"; remoteSdp: string }
  | { name: "failed"; status: number; reason: string; kind: SipFailureKind }
  | { name: "state"; state: OutgoingCallState | IncomingCallState }
  | { name: "cancel" }
  | { name: "confirmed" };

export type DialogOp =
  | { op: "hangup" }
  | { op: "reinvite"; sdp: string }
  | { op: "sendInfo"; contentType: string; body: string }
  | { op: "cancel" }
  | { op: "ringing"; sdp: string | undefined }
  | { op: "accept"; sdp: string }
  | { op: "reject"; status: number; reason: string | undefined; headers: Record<string, string | readonly string[]> | undefined }
  | { op: "refer.accept"; referId: string }
  | { op: "refer.reject"; referId: string; status: number; reason: string | undefined }
  | { op: "refer.notify"; referId: string; sipfrag: string; final: boolean };

/** Worker → owner. `req` asks for a `sip.reply`. */
export type SipUpMessage =
  | { t: "sip.place"; h: string; options: PlaceCallOptions }
  | { t: "sip.options"; req: number; uri: string }
  | { t: "sip.op"; req: number | undefined; h: string; op: DialogOp }
  | { t: "sip.respond"; h: string; respondId: string; answer: ReinviteAnswer }
  | { t: "sip.release"; h: string };

/** Owner → worker. */
export type SipDownMessage =
  | { t: "sip.incoming"; h: string; call: IncomingSnapshot }
  | { t: "sip.placed"; h: string; call: DialogSnapshot }
  | { t: "sip.event"; h: string; call: DialogSnapshot; event: WireDialogEvent }
  | { t: "sip.reply"; req: number; ok: true; value: unknown }
  | { t: "sip.reply"; req: number; ok: false; error: WireError }
  | { t: "sip.readiness"; ready: boolean; localAddress: SipAddress | undefined };

export interface WireError {
  name: string;
  message: string;
  callId?: string;
  sipCallId?: string;
  method?: string;
  status?: number;
  reason?: string;
}

export function toWireError(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: "Error", message: String(err) };
  const out: WireError = { name: err.name, message: err.message };
  if (err instanceof SipCallError) {
    out.callId = err.callId;
    out.sipCallId = err.sipCallId;
  }
  if (err instanceof SipRequestError) {
    out.method = err.method;
    out.status = err.status;
    out.reason = err.reason;
  }
  return out;
}

/**
 * The same error class on the worker's side, so `instanceof` checks above the SIP port behave as
 * they do in one thread. The message is kept as the owner wrote it (it already names the call).
 */
export function fromWireError(w: WireError): Error {
  let err: Error;
  if (w.name === "SipRequestError" && w.callId !== undefined && w.sipCallId !== undefined && w.method !== undefined && w.status !== undefined) {
    err = new SipRequestError(w.callId, w.sipCallId, w.method, w.status, w.reason ?? "");
  } else if (w.name === "SipCallStateError" && w.callId !== undefined && w.sipCallId !== undefined) {
    err = new SipCallStateError(w.callId, w.sipCallId, "");
  } else if (w.name === "SipCallError" && w.callId !== undefined && w.sipCallId !== undefined) {
    err = new SipCallError(w.callId, w.sipCallId, "");
  } else if (w.name === "SipArgumentError") err = new SipArgumentError("");
  else if (w.name === "SipTransportError") err = new SipTransportError("");
  else if (w.name === "SipError") err = new SipError("");
  else {
    err = new Error("");
    err.name = w.name;
  }
  err.message = w.message;
  return err;
}

/** The headers of an INVITE or REFER a worker may read, by lower-case name. */
export function capturedHeaders(read: (name: string) => string | undefined, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = read(name);
    if (value !== undefined) out[name.toLowerCase()] = value;
  }
  return out;
}
