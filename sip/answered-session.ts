import { SipCallStateError } from "./errors.js";

/** What the session of an answered call does for the call, on either SIP backend. */
export interface AnsweredSession {
  readonly localSdp: string;
  readonly remoteSdp: string | undefined;
  hangup(): Promise<void>;
  reinvite(sdp: string): Promise<string>;
  sendInfo(contentType: string, body: string): Promise<number>;
  shutdown(): void;
}

/**
 * Runs `use` on the session when the call's state allows `what`; otherwise rejects with a
 * SipCallStateError naming the state.
 */
export function throughSession<S extends AnsweredSession, T>(
  call: { readonly callId: string; readonly sipCallId: string },
  state: string,
  allowed: readonly string[],
  session: S | undefined,
  what: string,
  use: (session: S) => Promise<T>,
): Promise<T> {
  if (!session || !allowed.includes(state)) return Promise.reject(new SipCallStateError(call.callId, call.sipCallId, `cannot ${what} in state ${state}`));
  return use(session);
}
