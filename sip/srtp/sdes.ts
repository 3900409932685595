import { randomBytes } from "node:crypto";
import { SipError } from "../errors.js";

/**
 * SDES (RFC 4568): SRTP master keys carried in SDP `a=crypto` lines. Parsing, formatting, key
 * generation, and keeping key material out of anything that gets logged.
 */

/** The crypto suites we can run: RFC 4568 §6.2 and RFC 7714 §12 (AES-GCM). */
export type SrtpSuite = "AES_CM_128_HMAC_SHA1_80" | "AES_CM_128_HMAC_SHA1_32" | "AEAD_AES_128_GCM";

/** Master key and salt lengths in bytes, per suite. */
export const SUITE_KEYS: Readonly<Record<SrtpSuite, { key: number; salt: number }>> = {
  AES_CM_128_HMAC_SHA1_80: { key: 16, salt: 14 },
  AES_CM_128_HMAC_SHA1_32: { key: 16, salt: 14 },
  AEAD_AES_128_GCM: { key: 16, salt: 12 },
};

/**
 * What we put in our own offers, most preferred first: the two every SDES peer runs, then GCM
 * for a peer that prefers it (an answerer picks one line; suites it does not know it skips,
 * RFC 4568 §6.1).
 */
export const OFFERED_SUITES: readonly SrtpSuite[] = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"];

export function isSupportedSuite(name: string): name is SrtpSuite {
  return Object.hasOwn(SUITE_KEYS, name);
}

export interface SdesKeyParam {
  /** Master key and salt, decoded from the base64 `inline:` value. */
  key: Buffer;
  salt: Buffer;
  /** `2^20` or a number, as written; undefined when absent. */
  lifetime: string | undefined;
  /** MKI value and its length in bytes, when present. */
  mki: { value: number; length: number } | undefined;
}

export interface SdesCrypto {
  tag: number;
  /** The suite as written (it may be one we do not run). */
  suite: string;
  keys: SdesKeyParam[];
  /** Session parameters as written (e.g. `UNENCRYPTED_SRTCP`, `KDR=…`). */
  sessionParams: string[];
}

/** An `a=crypto` value we cannot read. */
export class SdesParseError extends SipError {}

/**
 * Reads the value of one `a=crypto:` attribute (everything after the colon):
 * `tag 1*9DIGIT`, the suite, `inline:` key parameters separated by `;`, then session parameters.
 */
export function parseCryptoAttribute(value: string): SdesCrypto {
  const fields = value.trim().split(/[ \t]+/);
  if (fields.length < 3) throw new SdesParseError("a=crypto needs a tag, a suite and key parameters");
  const [tagText, suite, keyText, ...sessionParams] = fields as [string, string, string, ...string[]];
  if (!/^\d{1,9}$/.test(tagText)) throw new SdesParseError(`bad a=crypto tag ${JSON.stringify(tagText.slice(0, 12))}`);
  if (!/^[A-Za-z0-9_]+$/.test(suite)) throw new SdesParseError("bad a=crypto suite");
  const sizes = isSupportedSuite(suite) ? SUITE_KEYS[suite] : undefined;
  const keys = keyText.split(";").map((k) => parseKeyParam(k, sizes));
  return { tag: Number(tagText), suite, keys, sessionParams };
}

function parseKeyParam(text: string, sizes: { key: number; salt: number } | undefined): SdesKeyParam {
  const m = /^inline:([A-Za-z0-9+/]+={0,2})(?:\|([^|]+))?(?:\|([^|]+))?$/.exec(text);
  if (!m) throw new SdesParseError("a=crypto key parameter is not inline:<base64>[|lifetime][|MKI:length]");
  const material = Buffer.from(m[1] as string, "base64");
  let lifetime: string | undefined;
  let mkiText: string | undefined;
  // The lifetime may be left out while the MKI is there: tell them apart by the colon (RFC 4568 §6.1).
  for (const part of [m[2], m[3]]) {
    if (part === undefined) continue;
    if (part.includes(":")) mkiText = part;
    else lifetime = part;
  }
  if (lifetime !== undefined && !/^(?:2\^\d{1,2}|\d{1,20})$/.test(lifetime)) throw new SdesParseError("bad a=crypto key lifetime");
  let mki: SdesKeyParam["mki"];
  if (mkiText !== undefined) {
    const mm = /^(\d{1,10}):(\d{1,3})$/.exec(mkiText);
    if (!mm || Number(mm[2]) < 1 || Number(mm[2]) > 128) throw new SdesParseError("bad a=crypto MKI");
    mki = { value: Number(mm[1]), length: Number(mm[2]) };
  }
  const keyLength = sizes?.key ?? 16;
  const saltLength = sizes ? sizes.salt : material.length - keyLength;
  if (sizes && material.length !== sizes.key + sizes.salt) {
    throw new SdesParseError(`a=crypto key material is ${material.length} bytes, the suite needs ${sizes.key + sizes.salt}`);
  }
  return { key: material.subarray(0, keyLength), salt: material.subarray(keyLength, keyLength + Math.max(0, saltLength)), lifetime, mki };
}

/** The value of an `a=crypto:` attribute for one key (no lifetime, no MKI: what we send). */
export function formatCryptoAttribute(c: { tag: number; suite: SrtpSuite; key: Buffer; salt: Buffer }): string {
  return `${c.tag} ${c.suite} inline:${Buffer.concat([c.key, c.salt]).toString("base64")}`;
}

/** A fresh master key and salt for a suite, from the CSPRNG. */
export function newMasterKey(suite: SrtpSuite): { key: Buffer; salt: Buffer } {
  const sizes = SUITE_KEYS[suite];
  return { key: randomBytes(sizes.key), salt: randomBytes(sizes.salt) };
}

/** One stream's own master keys, one per suite, made on first use and kept for the stream's life. */
export class LocalMasterKeys {
  private readonly keys = new Map<SrtpSuite, { key: Buffer; salt: Buffer }>();

  for(suite: SrtpSuite): { key: Buffer; salt: Buffer } {
    let keys = this.keys.get(suite);
    if (!keys) {
      keys = newMasterKey(suite);
      this.keys.set(suite, keys);
    }
    return keys;
  }
}

/**
 * Whether we can run this crypto line as written: a suite we implement, exactly one key without
 * an MKI (we never send MKIs, so we cannot match one), and no session parameters, since an
 * answerer must refuse the ones it does not act on (RFC 4568 §6.3).
 */
export function isUsableCrypto(c: SdesCrypto): c is SdesCrypto & { suite: SrtpSuite } {
  return isSupportedSuite(c.suite) && c.keys.length === 1 && c.keys[0]!.mki === undefined && c.sessionParams.length === 0;
}

/** SDP text with every `a=crypto` key replaced, so it can be logged. */
export function redactSdp(sdp: string): string {
  return sdp.replace(/(a=crypto:[^\r\n]*?inline:)[^\s;|]+/gi, "$1<redacted>").replace(/(;inline:)[^\s;|]+/gi, "$1<redacted>");
}
