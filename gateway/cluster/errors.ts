/** Redis did not answer (down, unreachable, or too slow): the cluster's shared state is out of reach. */
export class RedisUnavailableError extends Error {
  override readonly name = "RedisUnavailableError";
}

/** A webhook for one call could not be handed to the instance that owns it. */
export class ForwardError extends Error {
  override readonly name = "ForwardError";
  constructor(
    readonly callId: string,
    readonly owner: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`[call ${callId}] forwarding to ${owner}: ${message}`, options);
  }
}
