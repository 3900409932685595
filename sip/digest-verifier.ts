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

export interface DigestVerifierOptions {
  nonceTtlMs?: number;
  secret?: Buffer;
  now?: () => number;
}

const ALGORITHMS: ReadonlyMap<string, DigestAlgorithm> = new Map([
  ["md5", "MD5"],
  ["sha-256", "SHA-256"],
]);

export class DigestVerifier {
  private readonly secret: Buffer;
  private readonly nonceTtlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly credentials: DigestCredentials,
    options: DigestVerifierOptions = {},
  ) {
    this.secret = options.secret ?? randomBytes(32);
    this.nonceTtlMs = options.nonceTtlMs ?? 300_000;
    this.now = options.now ?? Date.now;
  }

  /** A `WWW-Authenticate` value: MD5 with qop=auth, which every SIP phone answers. */
  challenge(stale = false): string {
    const parts = [`realm="${this.credentials.realm}"`, `nonce="${this.issueNonce()}"`, "algorithm=MD5", 'qop="auth"'];
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
    if (realm !== this.credentials.realm) return { ok: false, stale: false, reason: `realm "${realm}" is not ours` };
    const algorithm = ALGORITHMS.get((p.algorithm ?? "MD5").toLowerCase());
    if (!algorithm) return { ok: false, stale: false, reason: `algorithm ${p.algorithm} not supported` };
    if (!sameUri(uri, requestUri)) return { ok: false, stale: false, reason: `digest uri ${uri} is not the Request-URI` };
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
    if (!match) return { ok: false, stale: false, reason: `wrong credentials for user "${username}"` };
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
