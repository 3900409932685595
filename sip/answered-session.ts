/** What the session of an answered call does for the call, on either SIP backend. */
export interface AnsweredSession {
  readonly localSdp: string;
  readonly remoteSdp: string | undefined;
  hangup(): Promise<void>;
  reinvite(sdp: string): Promise<string>;
  sendInfo(contentType: string, body: string): Promise<number>;
  shutdown(): void;
}
