/**
 * Listener wrappers that send an exception thrown inside a listener to `onError` instead of up into
 * the emitter. Listeners run inside socket and werift callbacks; an exception escaping there reaches
 * the process-level handler with no call attached, and the call it belonged to is never ended or
 * freed. Through these, it ends that call and only that call.
 */
export type Contain = <A extends unknown[]>(listener: (...args: A) => void) => (...args: A) => void;

export function containWith(onError: (err: unknown) => void): Contain {
  return (listener) =>
    (...args) => {
      try {
        listener(...args);
      } catch (err) {
        onError(err);
      }
    };
}
