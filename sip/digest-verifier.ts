import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { digestResponse, type DigestAlgorithm } from "./embedded/digest.js";

/**
 * The server side of SIP digest authentication (RFC 3261 §22.4, RFC 2617 with qop=auth): the
 * `WWW-Authenticate` challenge for a 401 and the check of the `Authorization` header that answers
 * it. Pure apart from the clock and the secret, so it is tested without sockets.
 *
 * Nonces are stateless: a timestamp signed with a per-process secret. One is good for `nonceTtlMs`
 * from any source; an expired but authentic nonce is answered with `stale=true`, so a phone retries
 * with the same password and no prompt.
 */

export interface DigestCredentials {
  username: string;
  password: string;
  realm: string;
}

export type DigestVerdict =
  | { ok: true; username: string }
  | { ok: false; stale: boolean; reason: string };

/** What a phone may answer with; RFC 8760 adds SHA-256 to RFC 2617's MD5. */
export type ChallengeAlgorithm = Extract<DigestAlgorithm, "MD5" | "SHA-256">;

export const CHALLENGE_ALGORITHMS: readonly ChallengeAlgorithm[] = ["SHA-256", "MD5"];

export interface DigestVerifierOptions {
  nonceTtlMs?: number;
  secret?: Buffer;
  now?: () => number;
  /**
   * Algorithms offered, most preferred first (one challenge each, in this order); only these are
   * accepted. Default SHA-256 then MD5.
   */
  algorithms?: readonly ChallengeAlgorithm[];
}

export class DigestVerifier {
  private readonly secret: Buffer;
  private readonly nonceTtlMs: number;
  private readonly now: () => number;
  private readonly algorithms: readonly ChallengeAlgorithm[];

  constructor(
    private readonly credentials: DigestCredentials,
    options: DigestVerifierOptions = {},
  ) {
    this.secret = options.secret ?? randomBytes(32);
    this.nonceTtlMs = options.nonceTtlMs ?? 300_000;
    this.now = options.now ?? Date.now;
    this.algorithms = [...new Set(options.algorithms ?? CHALLENGE_ALGORITHMS)];
    if (this.algorithms.length === 0 || this.algorithms.some((a) => !CHALLENGE_ALGORITHMS.includes(a))) {
      throw new RangeError(`digest algorithms must be some of ${CHALLENGE_ALGORITHMS.join(", ")}`);
    }
  }

  /**
   * The `WWW-Authenticate` values of one 401, one per algorithm in order of preference (RFC 8760
   * §2.4: a UAC answers the topmost it supports). They share one nonce.
   */
  challenges(stale = false): string[] {
    const nonce = this.issueNonce();
    return this.algorithms.map((algorithm) => this.format(nonce, algorithm, stale));
  }

  /** One `WWW-Authenticate` value for `algorithm` (qop=auth). */
  challenge(stale = false, algorithm: ChallengeAlgorithm = this.algorithms[0]!): string {
    return this.format(this.issueNonce(), algorithm, stale);
  }

  private format(nonce: string, algorithm: ChallengeAlgorithm, stale: boolean): string {
    const parts = [`realm="${this.credentials.realm}"`, `nonce="${nonce}"`, `algorithm=${algorithm}`, 'qop="auth"'];
    if (stale) parts.push("stale=true");
    return `Digest ${parts.join(", ")}`;
  }

  /** Checks an `Authorization` header for `method` on `requestUri`. */
  verify(authorization: string | undefined, method: string, requestUri: string): DigestVerdict {
    if (authorization === undefined || authorization.trim() === "") return { ok: false, stale: false, reason: "no credentials" };
    const p = parseDigestParams(authorization);
    if (!p) return { ok: false, stale: false, reason: "not Digest credentials" };
    const { username, realm, nonce, uri, response } = p;
    if (username === undefined || realm === undefined || nonce === undefined || uri === undefined || response === undefined) {
      return { ok: false, stale: false, reason: "incomplete Digest credentials" };
    }
    if (realm !== this.credentials.realm) return { ok: false, stale: false, reason: `realm "${clip(realm)}" is not ours` };
    // RFC 2617: no algorithm parameter means MD5.
    const declared = (p.algorithm ?? "MD5").toLowerCase();
    const algorithm = this.algorithms.find((a) => a.toLowerCase() === declared);
    if (!algorithm) return { ok: false, stale: false, reason: `algorithm ${clip(p.algorithm ?? "MD5")} not offered` };
    if (!sameUri(uri, requestUri)) return { ok: false, stale: false, reason: `digest uri ${clip(uri)} is not the Request-URI` };
    const age = this.nonceAge(nonce);
    if (age === undefined) return { ok: false, stale: false, reason: "nonce not issued here" };
    const qop = p.qop?.toLowerCase();
    if (qop !== "auth") return { ok: false, stale: false, reason: "qop=auth required" };
    if (p.nc === undefined || !/^[0-9a-f]{8}$/i.test(p.nc) || !p.cnonce) return { ok: false, stale: false, reason: "qop=auth without nc or cnonce" };
    const expected = digestResponse({
      username: this.credentials.username,
      password: this.credentials.password,
      realm,
      nonce,
      method,
      uri,
      algorithm,
      qop: "auth",
      nc: p.nc,
      cnonce: p.cnonce,
    });
    // Compared in constant time, the user name included, so neither is learnt by timing.
    const match = constantTimeEqual(response.toLowerCase(), expected) && constantTimeEqual(username, this.credentials.username);
    if (!match) return { ok: false, stale: false, reason: `wrong credentials for user "${clip(username)}"` };
    if (age > this.nonceTtlMs) return { ok: false, stale: true, reason: "nonce expired" };
    return { ok: true, username };
  }

  private issueNonce(): string {
    const issued = this.now().toString(36);
    return `${issued}.${this.sign(issued)}`;
  }

  /** How old an authentic nonce is, or undefined when we did not issue it. */
  private nonceAge(nonce: string): number | undefined {
    const [issued, signature, extra] = nonce.split(".");
    if (issued === undefined || signature === undefined || extra !== undefined) return undefined;
    if (!constantTimeEqual(signature, this.sign(issued))) return undefined;
    const at = parseInt(issued, 36);
    return Number.isFinite(at) ? this.now() - at : undefined;
  }

  private sign(text: string): string {
    return createHmac("sha256", this.secret).update(text).digest("base64url").slice(0, 27);
  }
}

/** Values quoted in reasons end up in log lines: a phone's text is cut to a readable length. */
function clip(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The digest-uri must name where the request went. RFC 2617 wants the whole Request-URI, but SIP
 * clients differ (SIPp, for one, sends only `sip:host:port`), and the response hash already covers
 * whatever uri the client declared; so the host and port must match, the user part may be left out.
 */
function sameUri(digestUri: string, requestUri: string): boolean {
  const hostPort = (uri: string): string | undefined => /^sips?:(?:[^@;?]*@)?([^;?>]+)/i.exec(uri.trim())?.[1]?.toLowerCase();
  const a = hostPort(digestUri);
  return a !== undefined && a === hostPort(requestUri);
}

/** `Digest a="x", b=y, …` as a map of lower-case names; undefined for another scheme. */
export function parseDigestParams(header: string): Record<string, string | undefined> | undefined {
  const m = /^\s*digest\s+/i.exec(header);
  if (!m) return undefined;
  const out: Record<string, string | undefined> = {};
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^",\s]*)\s*(?:,|$)/gy;
  re.lastIndex = m[0].length;
  while (re.lastIndex < header.length) {
    const part = re.exec(header);
    if (!part) return undefined;
    const raw = part[2]!;
    out[part[1]!.toLowerCase()] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw;
  }
  return out;
}
