/** Base of every error that belongs to one call: it always says which call. */
export class CallError extends Error {
  constructor(
    readonly callId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`[call ${callId}] ${message}`, options);
    this.name = new.target.name;
  }
}

/** The WebRTC leg toward Meta could not negotiate or lost its transport. */
export class MetaLegError extends CallError {}

/** SDP received from Meta (or a peer) is not usable; the call fails, the process does not. */
export class SdpError extends CallError {}

/** The call target (echo or PBX) refused or failed the call. */
export class TargetError extends CallError {
  constructor(
    callId: string,
    message: string,
    readonly reason: "busy" | "declined" | "unreachable" | "no-answer" | "failed",
    options?: { cause?: unknown },
  ) {
    super(callId, message, options);
  }
}
