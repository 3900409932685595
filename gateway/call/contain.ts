/**
 * Wraps an event listener so that an exception thrown inside it goes to `onError` instead of up
 * into the emitter. Listeners run inside socket and werift callbacks; an exception escaping there
 * reaches the process-level handler with no call attached, and the call it belonged to is never
 * ended or freed. Through this, it ends that call and only that call.
 */
export function contained<A extends unknown[]>(onError: (err: unknown) => void, listener: (...args: A) => void): (...args: A) => void {
  return (...args: A): void => {
    try {
      listener(...args);
    } catch (err) {
      onError(err);
    }
  };
}
