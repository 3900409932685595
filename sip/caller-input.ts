/** What the gateway passes to a SIP backend for a call it places, checked the same way on both. */
import { SipArgumentError } from "./errors.js";

const USER_PART = /^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$/;
const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;

/** Headers (and their compact forms) every backend sets on a call's requests: a caller may not replace them. */
export const STACK_HEADERS: readonly string[] = [
  "via",
  "v",
  "from",
  "f",
  "to",
  "t",
  "call-id",
  "i",
  "cseq",
  "contact",
  "m",
  "max-forwards",
  "content-length",
  "l",
  "content-type",
  "c",
  "route",
  "record-route",
  "authorization",
  "proxy-authorization",
];

export function checkUserPart(user: string): void {
  if (!USER_PART.test(user)) throw new SipArgumentError(`invalid SIP user part ${JSON.stringify(user)}`);
}

/** Validates caller-supplied extra headers against the names the stack sets; values go through `encode`. */
export function checkCallerHeaders(headers: Record<string, string> | undefined, reserved: ReadonlySet<string>, encode: (value: string) => string = (v) => v): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!TOKEN.test(name)) throw new SipArgumentError(`invalid header name ${JSON.stringify(name)}`);
    if (reserved.has(name.toLowerCase())) throw new SipArgumentError(`header ${name} is set by the stack`);
    if (typeof value !== "string" || /[\r\n\0]/.test(value)) throw new SipArgumentError(`invalid value for header ${name}`);
    out[name] = encode(value);
  }
  return out;
}

/** A display name's text inside a quoted-string (RFC 3261 §25.1): line breaks blanked, `\` and `"` escaped. */
export function escapeDisplayName(name: string): string {
  return name.replace(/[\r\n\0]/g, " ").replace(/[\\"]/g, (c) => `\\${c}`);
}
