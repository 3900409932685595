import { DEFAULT_LIMITS, jsonDepthExceeds } from "../config/limits.js";

/**
 * Lenient readers for values in Meta's JSON. The docs disagree with themselves about
 * several encodings (numbers as strings, SDP as a bare string or an object, upper or
 * lower case enums), so every reader accepts each documented spelling and nothing else.
 */

export type JsonRecord = Record<string, unknown>;

export interface SdpField {
  sdpType: string | undefined;
  sdp: string;
}

export function isRecord(value: unknown): value is JsonRecord {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A non-empty string, or a finite number rendered as a string (ids are sometimes numeric). */
export function readId(value: unknown): string | undefined {
  if (typeof value === "string") return value.length > 0 ? value : undefined;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return String(value);
  return undefined;
}

export function readString(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** A finite number, or a string holding one (WhatsApp sends timestamps as strings). Empty strings are absent. */
export function readNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string") {
    const trimmed = value.trim();
    if (trimmed.length === 0) return undefined;
    const n = Number(trimmed);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

export function readNonNegativeInteger(value: unknown): number | undefined {
  const n = readNumber(value);
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export function readBoolean(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (value === "true") return true;
  if (value === "false") return false;
  return undefined;
}

/**
 * An SDP as Meta sends it: a bare SDP string (accept guide), an object `{sdp_type, sdp}`
 * (OpenAPI, connect and media_update guides), or that object serialised into a string. The
 * serialised form is not parsed when it nests deeper than `maxJsonDepth`.
 */
export function readSdpField(value: unknown, maxJsonDepth = DEFAULT_LIMITS.webhook.maxJsonDepth): SdpField | undefined {
  if (typeof value === "string") {
    const trimmed = value.trimStart();
    if (trimmed.startsWith("{")) {
      if (jsonDepthExceeds(trimmed, maxJsonDepth)) return undefined;
      let parsed: unknown;
      try {
        parsed = JSON.parse(trimmed);
      } catch {
        return undefined;
      }
      return readSdpObject(parsed);
    }
    return trimmed.length > 0 ? { sdpType: undefined, sdp: value } : undefined;
  }
  return readSdpObject(value);
}

function readSdpObject(value: unknown): SdpField | undefined {
  if (!isRecord(value)) return undefined;
  const sdp = readString(value.sdp);
  if (sdp === undefined) return undefined;
  const sdpType = readString(value.sdp_type) ?? readString(value.type);
  return { sdpType: sdpType?.toLowerCase(), sdp };
}
