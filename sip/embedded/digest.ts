import { createHash, randomBytes } from "node:crypto";

/**
 * HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 8760 for SHA-256):
 * the client side only, answering a 401 WWW-Authenticate or 407 Proxy-Authenticate challenge.
 */

export type DigestAlgorithm = "MD5" | "MD5-sess" | "SHA-256" | "SHA-256-sess";

export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque: string | undefined;
  algorithm: DigestAlgorithm;
  /** qop values the server offers (empty: RFC 2069 mode). */
  qop: string[];
  stale: boolean;
}

export interface DigestInput {
  username: string;
  password: string;
  realm: string;
  nonce: string;
  method: string;
  uri: string;
  algorithm: DigestAlgorithm;
  /** "auth" or undefined (no qop). */
  qop: "auth" | undefined;
  /** Nonce count, 8 hex digits, when qop is used. */
  nc?: string;
  cnonce?: string;
}

const SUPPORTED: ReadonlyMap<string, DigestAlgorithm> = new Map([
  ["md5", "MD5"],
  ["md5-sess", "MD5-sess"],
  ["sha-256", "SHA-256"],
  ["sha-256-sess", "SHA-256-sess"],
]);

function unquote(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).replace(/\\(.)/g, "$1") : t;
}

/**
 * Reads one challenge as npm `sip` parses it (`{scheme, realm: '"x"', nonce: '"y"', …}`); undefined
 * when it is not a Digest challenge we can answer (other scheme, unknown algorithm, no qop=auth
 * while qop is required).
 */
export function readChallenge(params: Record<string, string | undefined>): DigestChallenge | undefined {
  if ((params.scheme ?? "").toLowerCase() !== "digest") return undefined;
  const realm = unquote(params.realm);
  const nonce = unquote(params.nonce);
  if (realm === undefined || nonce === undefined) return undefined;
  const algorithm = SUPPORTED.get((unquote(params.algorithm) ?? "MD5").toLowerCase());
  if (!algorithm) return undefined;
  const qop = (unquote(params.qop) ?? "")
    .split(",")
    .map((q) => q.trim().toLowerCase())
    .filter((q) => q !== "");
  if (qop.length > 0 && !qop.includes("auth")) return undefined;
  return { realm, nonce, opaque: unquote(params.opaque), algorithm, qop, stale: (unquote(params.stale) ?? "").toLowerCase() === "true" };
}

function hash(algorithm: DigestAlgorithm, text: string): string {
  return createHash(algorithm.startsWith("SHA-256") ? "sha256" : "md5")
    .update(text, "utf8")
    .digest("hex");
}

/** The `response` value (RFC 2617 §3.2.2.1; RFC 8760 for SHA-256). */
export function digestResponse(i: DigestInput): string {
  let ha1 = hash(i.algorithm, `${i.username}:${i.realm}:${i.password}`);
  if (i.algorithm.endsWith("-sess")) ha1 = hash(i.algorithm, `${ha1}:${i.nonce}:${i.cnonce ?? ""}`);
  const ha2 = hash(i.algorithm, `${i.method}:${i.uri}`);
  if (i.qop === "auth") return hash(i.algorithm, `${ha1}:${i.nonce}:${i.nc ?? "00000001"}:${i.cnonce ?? ""}:auth:${ha2}`);
  return hash(i.algorithm, `${ha1}:${i.nonce}:${ha2}`);
}

function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * The Authorization / Proxy-Authorization header value for a request. `nonceCount` is how many
 * times this nonce has been used, this one included.
 */
export function authorizationHeader(
  challenge: DigestChallenge,
  credentials: { username: string; password: string },
  method: string,
  uri: string,
  nonceCount = 1,
  cnonce: string = randomBytes(8).toString("hex"),
): string {
  const qop = challenge.qop.includes("auth") ? "auth" : undefined;
  const nc = nonceCount.toString(16).padStart(8, "0");
  const response = digestResponse({
    username: credentials.username,
    password: credentials.password,
    realm: challenge.realm,
    nonce: challenge.nonce,
    method,
    uri,
    algorithm: challenge.algorithm,
    qop,
    nc,
    cnonce,
  });
  const parts = [
    `username=${quote(credentials.username)}`,
    `realm=${quote(challenge.realm)}`,
    `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(uri)}`,
    `response=${quote(response)}`,
    `algorithm=${challenge.algorithm}`,
  ];
  if (qop) parts.push(`qop=${qop}`, `nc=${nc}`, `cnonce=${quote(cnonce)}`);
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  return `Digest ${parts.join(", ")}`;
}
