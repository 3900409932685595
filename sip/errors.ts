/**
 * Errors raised by the SIP side. Call-related ones carry both ids: `callId` (the id the caller
 * gave the call, or the SIP Call-ID when it gave none) and `sipCallId` (the SIP Call-ID), so one grep
 * finds the failure whichever log it starts from.
 */
export class SipError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input from our own side (URI, header, user part): a programming or configuration error. */
export class SipArgumentError extends SipError {}

/** The stack could not bind or use its sockets. */
export class SipTransportError extends SipError {}

/** Something went wrong with one call. */
export class SipCallError extends SipError {
  constructor(
    readonly callId: string,
    readonly sipCallId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(callId === sipCallId ? `[sip call ${sipCallId}] ${message}` : `[call ${callId} sip ${sipCallId}] ${message}`, options);
  }
}

/** An in-call request (re-INVITE, INFO, BYE) got a final non-2xx response. */
export class SipRequestError extends SipCallError {
  constructor(
    callId: string,
    sipCallId: string,
    readonly method: string,
    readonly status: number,
    readonly reason: string,
  ) {
    super(callId, sipCallId, `${method} answered ${status} ${reason}`);
  }
}

/** The call is not in a state that allows the operation (e.g. re-INVITE before answer). */
export class SipCallStateError extends SipCallError {}

/** SDP text that cannot be read; `line` is 1-based when known. */
export class SdpParseError extends SipError {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `${message} (line ${line})`);
  }
}

/** SDP that is well formed but offers nothing we can use (no PCMU/PCMA, no address). */
export class SdpNegotiationError extends SipError {}

/** Malformed RTP or RTCP bytes. */
export class RtpParseError extends SipError {}

/** No RTP/RTCP port pair could be bound in the configured range. */
export class PortAllocationError extends SipError {}

/** A received header whose value cannot be read (e.g. `Session-Expires: soon`); answered 400. */
export class SipHeaderError extends SipError {
  constructor(
    readonly header: string,
    message: string,
  ) {
    super(`${header}: ${message}`);
  }
}
