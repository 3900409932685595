import { SipHeaderError } from "./errors.js";

/**
 * Reliable provisional responses (RFC 3262): the RSeq of a reliable 1xx and the RAck of the
 * PRACK that acknowledges it, and how a client classifies each reliable 1xx it receives.
 */

const MAX_RSEQ = 2 ** 32 - 1;

/** `RSeq: 988789` → 988789; throws SipHeaderError when unreadable. */
export function parseRSeq(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const t = text.trim();
  if (!/^\d{1,10}$/.test(t) || Number(t) < 1 || Number(t) > MAX_RSEQ) throw new SipHeaderError("RSeq", `not a response number: ${JSON.stringify(text)}`);
  return Number(t);
}

export interface RAck {
  rseq: number;
  cseq: number;
  method: string;
}

/** `RAck: 776656 1 INVITE`; throws SipHeaderError when unreadable. */
export function parseRAck(text: string | undefined): RAck | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const m = /^\s*(\d{1,10})\s+(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)\s*$/.exec(text);
  if (!m) throw new SipHeaderError("RAck", `not "response-num CSeq-num Method": ${JSON.stringify(text)}`);
  return { rseq: Number(m[1]), cseq: Number(m[2]), method: (m[3] ?? "").toUpperCase() };
}

export function formatRAck(r: RAck): string {
  return `${r.rseq} ${r.cseq} ${r.method}`;
}

/** A first RSeq for the reliable provisionals we send: random, leaving room to count up (§3). */
export function initialRSeq(random: () => number = Math.random): number {
  return 1 + Math.floor(random() * 2 ** 31);
}

/**
 * How a client takes a reliable 1xx (§4), given the last RSeq it acknowledged on that early
 * dialog: the first one or the next in sequence is new (PRACK and report it); an equal or lower
 * one is a retransmission (already PRACKed, report nothing); a gap means one went missing, which
 * the server will retransmit, so this one is left unacknowledged.
 */
export function classifyRSeq(last: number | undefined, rseq: number): "new" | "retransmission" | "out-of-order" {
  if (last === undefined) return "new";
  if (rseq <= last) return "retransmission";
  return rseq === last + 1 ? "new" : "out-of-order";
}
