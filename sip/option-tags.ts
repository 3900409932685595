/**
 * Option tags of Supported / Require / Proxy-Require / Unsupported (RFC 3261 §20.37, §20.32).
 * npm `sip` folds repeated rows of these headers into one comma-separated string.
 */

/** The extensions the embedded stack implements; anything else in Require gets 420. */
export const SUPPORTED_OPTION_TAGS = ["100rel", "timer", "replaces", "norefersub"] as const;

/** Option tags as a lower-case set; `undefined` or empty text gives an empty set. */
export function parseOptionTags(value: string | undefined): Set<string> {
  const out = new Set<string>();
  if (!value) return out;
  for (const part of value.split(",")) {
    const tag = part.trim().toLowerCase();
    if (tag !== "") out.add(tag);
  }
  return out;
}

/** Required tags we do not implement, in the order given (for the 420's Unsupported header). */
export function unsupportedTags(require: string | undefined, supported: readonly string[] = SUPPORTED_OPTION_TAGS): string[] {
  const known = new Set(supported.map((t) => t.toLowerCase()));
  return [...parseOptionTags(require)].filter((t) => !known.has(t));
}
