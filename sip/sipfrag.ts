import { SipHeaderError } from "./errors.js";

/**
 * The `message/sipfrag` bodies (RFC 3420) of NOTIFYs reporting a REFER's progress (RFC 3515
 * §2.4.5): a status line such as `SIP/2.0 180 Ringing`.
 */

const REASONS: Readonly<Record<number, string>> = {
  100: "Trying",
  180: "Ringing",
  181: "Call Is Being Forwarded",
  182: "Queued",
  183: "Session Progress",
  200: "OK",
  202: "Accepted",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  480: "Temporarily Unavailable",
  481: "Call/Transaction Does Not Exist",
  486: "Busy Here",
  487: "Request Terminated",
  488: "Not Acceptable Here",
  500: "Server Internal Error",
  503: "Service Unavailable",
  504: "Server Time-out",
  600: "Busy Everywhere",
  603: "Decline",
};

export interface SipfragStatus {
  status: number;
  reason: string;
}

/** `SIP/2.0 486 Busy Here`; a status without a reason gets the usual one. */
export function sipfragStatusLine(status: number, reason?: string): string {
  if (!Number.isInteger(status) || status < 100 || status > 699) throw new SipHeaderError("sipfrag", `status out of range: ${status}`);
  const text = (reason ?? REASONS[status] ?? (status < 200 ? "Progress" : status < 300 ? "OK" : "Failed")).replace(/[\r\n\0]/g, " ");
  return `SIP/2.0 ${status} ${text}`;
}

/** The status line at the start of a sipfrag body; throws SipHeaderError otherwise. */
export function parseSipfragStatusLine(body: string): SipfragStatus {
  const first = body.replace(/^\s+/, "").split(/\r?\n/, 1)[0] ?? "";
  const m = /^SIP\/2\.0 ([1-6]\d\d)(?: (.*))?$/.exec(first);
  if (!m) throw new SipHeaderError("sipfrag", `not a SIP status line: ${JSON.stringify(first.slice(0, 80))}`);
  return { status: Number(m[1]), reason: (m[2] ?? "").trim() };
}
