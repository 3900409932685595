/** Base class of every error the simulator throws on its own API. */
export class SimulatorError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A wait on the simulator (call state, media, webhook answer) ran out of time. */
export class SimTimeoutError extends SimulatorError {}

/** A call ended while something was still waiting for it to reach a later milestone. */
export class SimCallEndedError extends SimulatorError {
  constructor(
    readonly callId: string,
    readonly waitedFor: string,
  ) {
    super(`call ${callId} ended before reaching "${waitedFor}"`);
  }
}

/** The consumer's peer connection was closed while an operation on it was in flight. */
export class ConsumerClosedError extends SimulatorError {}

/** The consumer could not negotiate the SDP it was given (werift rejected it). */
export class ConsumerNegotiationError extends SimulatorError {}

/** A simulator method was called in a state where Meta would not allow the action. */
export class SimStateError extends SimulatorError {}
