import { SipHeaderError } from "./errors.js";
import type { SipReferTarget, SipReplaces } from "./signaling.js";

/**
 * Transfer headers: Replaces (RFC 3891 §6.1) and Refer-To (RFC 3515 §2.1), including a Replaces
 * carried as an escaped header inside the Refer-To URI (RFC 3891 §7.3). Pure text in, plain
 * objects out; nothing here decides whether a transfer is allowed.
 */

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
// Call-ID is `word [@ word]` (RFC 3261 §25.1); `word` admits more than `token`.
const CALL_ID = /^[A-Za-z0-9.!%*_+`'~()<>:\\"/[\]?{}-]+(?:@[A-Za-z0-9.!%*_+`'~()<>:\\"/[\]?{}-]+)?$/;

/** `Replaces: 98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only`. */
export function parseReplaces(text: string): SipReplaces {
  const [rawCallId = "", ...params] = text.split(";").map((s) => s.trim());
  if (!CALL_ID.test(rawCallId)) throw new SipHeaderError("Replaces", `bad Call-ID ${JSON.stringify(rawCallId)}`);
  let toTag: string | undefined;
  let fromTag: string | undefined;
  let earlyOnly = false;
  for (const p of params) {
    if (p === "") continue;
    const eq = p.indexOf("=");
    const name = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : p.slice(eq + 1).trim();
    if (name === "early-only") {
      earlyOnly = true;
    } else if (name === "to-tag" || name === "from-tag") {
      if (value === undefined || !TOKEN.test(value)) throw new SipHeaderError("Replaces", `bad ${name} ${JSON.stringify(value ?? "")}`);
      if ((name === "to-tag" ? toTag : fromTag) !== undefined) throw new SipHeaderError("Replaces", `${name} given twice`);
      if (name === "to-tag") toTag = value;
      else fromTag = value;
    }
  }
  if (toTag === undefined || fromTag === undefined) throw new SipHeaderError("Replaces", "needs both to-tag and from-tag");
  return { callId: rawCallId, toTag, fromTag, earlyOnly };
}

export function formatReplaces(r: SipReplaces): string {
  return `${r.callId};to-tag=${r.toTag};from-tag=${r.fromTag}${r.earlyOnly ? ";early-only" : ""}`;
}

function unescape(header: string, s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new SipHeaderError(header, `bad %-escape in ${JSON.stringify(s.slice(0, 80))}`);
  }
}

/**
 * A Refer-To value: `<sip:bob@example.com?Replaces=…&Require=replaces>`, `"Bob" <sip:bob@b>`, or
 * a bare addr-spec. The URI comes back without its `?headers` part (that part is not where a
 * call goes: RFC 3261 §19.1.5 turns it into headers of the request), the headers unescaped, and
 * an embedded Replaces parsed.
 */
export function parseReferTo(text: string): SipReferTarget {
  const t = text.trim();
  let displayName: string | undefined;
  let uriText: string;
  const quoted = /^"((?:[^"\\]|\\.)*)"\s*<([^>]*)>(.*)$/.exec(t);
  const bracketed = quoted ? undefined : /^([^<"]*?)\s*<([^>]*)>(.*)$/.exec(t);
  if (quoted) {
    displayName = (quoted[1] ?? "").replace(/\\(.)/g, "$1");
    uriText = quoted[2] ?? "";
  } else if (bracketed) {
    displayName = (bracketed[1] ?? "").trim() || undefined;
    uriText = bracketed[2] ?? "";
  } else {
    // addr-spec: parameters after it belong to the header, not the URI (RFC 3261 §20.10).
    uriText = t.split(";", 1)[0] ?? "";
  }
  uriText = uriText.trim();
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$/.test(uriText)) throw new SipHeaderError("Refer-To", `not a URI: ${JSON.stringify(uriText.slice(0, 120))}`);
  const q = uriText.indexOf("?");
  const uri = q < 0 ? uriText : uriText.slice(0, q);
  const headers: Record<string, string> = {};
  let replaces: SipReplaces | undefined;
  if (q >= 0) {
    for (const pair of uriText.slice(q + 1).split("&")) {
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      if (eq <= 0) throw new SipHeaderError("Refer-To", `bad URI header ${JSON.stringify(pair.slice(0, 80))}`);
      const name = unescape("Refer-To", pair.slice(0, eq));
      const value = unescape("Refer-To", pair.slice(eq + 1));
      headers[name] = value;
      if (name.toLowerCase() === "replaces") replaces = parseReplaces(value);
    }
  }
  return { uri, displayName, headers, replaces };
}
