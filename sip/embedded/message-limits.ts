/**
 * Bounds on one SIP message, checked on the raw text before npm `sip` parses it: its parser
 * backtracks quadratically on some inputs (64 KiB of whitespace costs a third of a second), so
 * nothing reaches it that these checks have not admitted.
 */
export interface SipMessageLimits {
  /** A whole message, start line, headers and body. */
  maxMessageBytes: number;
  /** Header fields (not lines: a folded field counts once). */
  maxHeaders: number;
  /** One header field, or the start line, folded continuation lines included. */
  maxHeaderBytes: number;
}

export const DEFAULT_SIP_MESSAGE_LIMITS: Readonly<SipMessageLimits> = {
  // A video INVITE with Record-Route and Via from a few proxies stays under 8 KiB; UDP cannot
  // carry more than 65,507 bytes anyway.
  maxMessageBytes: 65_535,
  maxHeaders: 100,
  maxHeaderBytes: 8_192,
};

/** The setting each bound is configured with, for log lines an operator can act on. */
export const SIP_LIMIT_SETTINGS: Readonly<Record<keyof SipMessageLimits, string>> = {
  maxMessageBytes: "SIP_MAX_MESSAGE_BYTES",
  maxHeaders: "SIP_MAX_HEADERS",
  maxHeaderBytes: "SIP_MAX_HEADER_BYTES",
};

export type SipMessageCheck =
  | { ok: true; text: string }
  | { ok: false; kind: "malformed"; reason: string }
  | {
      ok: false;
      kind: "limit";
      limit: keyof SipMessageLimits;
      reason: string;
      /** The header block (no body, no blank line) when it is small enough to parse for an answer. */
      head: string | undefined;
    };

/**
 * Admits a message for parsing or says which bound it breaks. Leading CRLFs (keep-alives, RFC 3261
 * §7.5) are stripped; an all-whitespace datagram comes back as an empty text. Linear in the input.
 */
export function checkSipMessage(raw: string, limits: SipMessageLimits): SipMessageCheck {
  let start = 0;
  while (start < raw.length && isWhitespace(raw.charCodeAt(start))) start++;
  if (start === raw.length) return { ok: true, text: "" };
  const text = start === 0 ? raw : raw.slice(start);

  // The blank line is searched for only where an admissible header block could end.
  const end = text.indexOf("\r\n\r\n");
  const headEnd = end >= 0 && end <= limits.maxMessageBytes ? end : -1;
  const head = headEnd >= 0 ? text.slice(0, headEnd) : undefined;

  if (text.length > limits.maxMessageBytes) {
    return { ok: false, kind: "limit", limit: "maxMessageBytes", reason: `${text.length} bytes, more than ${limits.maxMessageBytes}`, head };
  }
  if (head === undefined) return { ok: false, kind: "malformed", reason: "no blank line after the headers" };
  // RFC 3261 §25.1: no control character but HTAB (and the CRLF line ends) in a start line or header.
  // A NUL inside a header would otherwise be read as part of a value and acted on.
  if (CONTROL_CHARACTER.test(head)) return { ok: false, kind: "malformed", reason: "a control character in the headers" };

  let fields = 0;
  let fieldStart = 0;
  let lineStart = 0;
  for (;;) {
    const lineEnd = head.indexOf("\r\n", lineStart);
    const next = lineEnd < 0 ? head.length : lineEnd + 2;
    const folded = lineStart > 0 && (head[lineStart] === " " || head[lineStart] === "\t");
    if (!folded) {
      if (lineStart > 0) fields++;
      fieldStart = lineStart;
    }
    const fieldBytes = (lineEnd < 0 ? head.length : lineEnd) - fieldStart;
    if (fieldBytes > limits.maxHeaderBytes) {
      const what = fieldStart === 0 ? "the start line" : "a header field";
      return { ok: false, kind: "limit", limit: "maxHeaderBytes", reason: `${what} is longer than ${limits.maxHeaderBytes} bytes`, head };
    }
    if (fields > limits.maxHeaders) {
      return { ok: false, kind: "limit", limit: "maxHeaders", reason: `more than ${limits.maxHeaders} header fields`, head };
    }
    if (lineEnd < 0) break;
    lineStart = next;
  }
  return { ok: true, text };
}

const CONTROL_CHARACTER = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

function isWhitespace(code: number): boolean {
  return code === 0x0d || code === 0x0a || code === 0x20 || code === 0x09;
}
