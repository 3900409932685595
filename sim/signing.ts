import { createHmac } from "node:crypto";

export const SIGNATURE_256_HEADER = "x-hub-signature-256";
/** Meta still sends the legacy SHA-1 signature next to the SHA-256 one. */
export const SIGNATURE_SHA1_HEADER = "x-hub-signature";

export type SignatureAlgorithm = "sha256" | "sha1";

/** `sha256=<lowercase hex>` (or `sha1=`), the HMAC of the exact body bytes keyed with the app secret. */
export function signBody(body: string | Uint8Array, appSecret: string, algorithm: SignatureAlgorithm = "sha256"): string {
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  return `${algorithm}=${createHmac(algorithm, appSecret).update(bytes).digest("hex")}`;
}

export interface MetaJsonOptions {
  /** Also write `/` as `\/`, as PHP-style encoders do. Off by default. */
  escapeSlashes?: boolean;
}

/**
 * Serializes a webhook payload the way Meta does: compact JSON with every non-ASCII UTF-16
 * code unit written as a lowercase `\uXXXX` escape (`ä` becomes `\u00e4`; astral characters
 * become surrogate pairs). A receiver that re-serializes the parsed JSON gets different bytes,
 * so only a signature check over the raw body passes.
 */
export function serializeLikeMeta(value: unknown, options: MetaJsonOptions = {}): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError("value is not JSON-serializable");
  // Non-ASCII code units can only occur inside JSON strings, so escaping them is always valid.
  let out = json.replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
  if (options.escapeSlashes) out = out.replace(/\//g, "\\/");
  return out;
}
