import { authorizationHeader, readChallenge, type DigestChallenge } from "./digest.js";
import type { SipResponse } from "./message.js";
import type { OutgoingRequest } from "./stack.js";

/**
 * One call's digest credentials and the challenges it has met. It answers each challenge once:
 * a second 401/407 with the same nonce (and not `stale=true`) means the password is wrong, and
 * retrying would loop.
 */
export class DigestAuthenticator {
  private readonly challenges = new Map<string, { challenge: DigestChallenge; proxy: boolean; nonceCount: number; answered: boolean }>();

  constructor(private readonly credentials: { username: string; password: string } | undefined) {}

  /** Records the challenges of a 401/407; true when the request should be sent again with credentials. */
  accept(rs: SipResponse): boolean {
    if (!this.credentials) return false;
    const proxy = rs.status === 407;
    const list = (proxy ? rs.headers["proxy-authenticate"] : rs.headers["www-authenticate"]) ?? [];
    let usable = false;
    const taken = new Set<string>();
    for (const params of list) {
      const challenge = readChallenge(params);
      if (!challenge) continue;
      const key = `${proxy ? "p" : "w"}:${challenge.realm}`;
      // RFC 8760 §2.3: of one realm's challenges (one per algorithm, preferred first), answer the
      // topmost we support.
      if (taken.has(key)) continue;
      taken.add(key);
      const known = this.challenges.get(key);
      if (known && known.challenge.nonce === challenge.nonce && known.answered && !challenge.stale) continue;
      this.challenges.set(key, { challenge, proxy, nonceCount: 0, answered: false });
      usable = true;
    }
    return usable;
  }

  /** Adds Authorization / Proxy-Authorization for every challenge met so far (call after accept()). */
  apply(rq: OutgoingRequest): void {
    if (!this.credentials) return;
    const www: string[] = [];
    const proxy: string[] = [];
    for (const entry of this.challenges.values()) {
      entry.nonceCount++;
      entry.answered = true;
      const value = authorizationHeader(entry.challenge, this.credentials, rq.method, rq.uri, entry.nonceCount);
      (entry.proxy ? proxy : www).push(value);
    }
    // Several credentials of one kind go as separate header lines; npm `sip` writes a string
    // value verbatim, so the line break and name are part of the value.
    if (www.length) rq.headers.authorization = www.join("\r\nAuthorization: ");
    if (proxy.length) rq.headers["proxy-authorization"] = proxy.join("\r\nProxy-Authorization: ");
  }
}
