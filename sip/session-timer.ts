import { SipHeaderError } from "./errors.js";

/**
 * Session timers (RFC 4028): reading and writing Session-Expires and Min-SE, and the rules that
 * decide the interval and who refreshes. Pure: the embedded stack runs the timers, this only
 * decides.
 */

/** Who refreshes, relative to the transaction that carries the header: its client or its server. */
export type Refresher = "uac" | "uas";

export interface SessionExpires {
  seconds: number;
  refresher: Refresher | undefined;
}

/** The interval RFC 4028 §4 recommends, and what we ask for unless configured otherwise. */
export const DEFAULT_SESSION_EXPIRES_S = 1800;
/** RFC 4028 §5: no interval below this is allowed on the wire; lower values exist only for tests. */
export const RFC4028_MIN_SE_S = 90;

const MAX_DELTA = 2 ** 32 - 1;

function readDelta(header: string, text: string): number {
  if (!/^\d{1,10}$/.test(text)) throw new SipHeaderError(header, `not delta-seconds: ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n < 1 || n > MAX_DELTA) throw new SipHeaderError(header, `out of range: ${text}`);
  return n;
}

/**
 * `Session-Expires: 1800;refresher=uac` (compact form `x`). Undefined when absent; throws
 * SipHeaderError when present but unreadable, since a refresh we cannot schedule is worse
 * than a 400.
 */
export function parseSessionExpires(text: string | undefined): SessionExpires | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  // npm sip joins repeated rows with commas; RFC 4028 allows exactly one.
  if (text.includes(",")) throw new SipHeaderError("Session-Expires", "more than one value");
  const [delta = "", ...params] = text.split(";").map((s) => s.trim());
  const seconds = readDelta("Session-Expires", delta);
  let refresher: Refresher | undefined;
  for (const p of params) {
    const [name = "", value = ""] = p.split("=").map((s) => s.trim());
    if (name.toLowerCase() !== "refresher") continue;
    const v = value.toLowerCase();
    if (v !== "uac" && v !== "uas") throw new SipHeaderError("Session-Expires", `refresher must be uac or uas, not ${JSON.stringify(value)}`);
    refresher = v;
  }
  return { seconds, refresher };
}

export function formatSessionExpires(se: SessionExpires): string {
  return se.refresher ? `${se.seconds};refresher=${se.refresher}` : String(se.seconds);
}

/** `Min-SE: 90` (generic parameters allowed and ignored). */
export function parseMinSe(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  if (text.includes(",")) throw new SipHeaderError("Min-SE", "more than one value");
  return readDelta("Min-SE", (text.split(";")[0] ?? "").trim());
}

/** A session timer in force, as one end sees it. */
export interface SessionTimer {
  intervalS: number;
  /** We send the refreshes; otherwise we watch for the peer's. */
  weRefresh: boolean;
}

/** The refresher parameter that says `weRefresh`, in a transaction where we are (or not) the client. */
export function refresherParam(weRefresh: boolean, weAreClient: boolean): Refresher {
  return weRefresh === weAreClient ? "uac" : "uas";
}

/** What a session-refresh request (INVITE, re-INVITE, UPDATE) tells us about timers. */
export interface TimerRequest {
  sessionExpires: SessionExpires | undefined;
  minSeS: number | undefined;
  /** The request carried `Supported: timer` (or `Require: timer`). */
  supportsTimer: boolean;
}

export type UasTimerDecision =
  /** 422 Session Interval Too Small, with `Min-SE: minSeS`. */
  | { kind: "too-small"; minSeS: number }
  | { kind: "none" }
  /** Put `Session-Expires: sessionExpires` (and `Require: timer` when `requireTimer`) in the 2xx. */
  | { kind: "timer"; timer: SessionTimer; sessionExpires: SessionExpires; requireTimer: boolean };

/**
 * RFC 4028 §9, as the server of a session-refresh request. `current` is the timer already in
 * force on this dialog (for re-INVITE and UPDATE).
 *
 * Where the RFC leaves a choice: without a refresher parameter, a requester that supports timers
 * refreshes (it asked for them), unless a timer already runs, whose refresher stays; a requester
 * without timer support cannot refresh, so we do, and we stretch a too-small interval rather than
 * answer it a 422 it would not understand. A refresh that omits Session-Expires keeps the
 * running timer (§9 lets the UAS insert one), so a hold re-INVITE does not silently switch
 * expiry off.
 */
export function decideAsUas(rq: TimerRequest, localMinSeS: number, current: SessionTimer | undefined): UasTimerDecision {
  const se = rq.sessionExpires;
  const floor = Math.max(localMinSeS, rq.minSeS ?? 0);
  if (se) {
    if (se.seconds < localMinSeS && rq.supportsTimer) return { kind: "too-small", minSeS: localMinSeS };
    const intervalS = Math.max(se.seconds, rq.supportsTimer ? 0 : floor);
    let weRefresh: boolean;
    if (se.refresher) weRefresh = se.refresher === "uas";
    else if (!rq.supportsTimer) weRefresh = true;
    else weRefresh = current?.weRefresh ?? false;
    return uasTimer({ intervalS, weRefresh }, rq.supportsTimer);
  }
  if (!current) return { kind: "none" };
  return uasTimer({ intervalS: Math.max(current.intervalS, floor), weRefresh: current.weRefresh || !rq.supportsTimer }, rq.supportsTimer);
}

function uasTimer(timer: SessionTimer, supportsTimer: boolean): UasTimerDecision {
  return {
    kind: "timer",
    timer,
    sessionExpires: { seconds: timer.intervalS, refresher: refresherParam(timer.weRefresh, false) },
    requireTimer: supportsTimer,
  };
}

/**
 * RFC 4028 §7.2, as the client: a 2xx without Session-Expires means no timer. A 2xx whose
 * Session-Expires lacks the refresher parameter (which the UAS must set) makes us the
 * refresher: refreshing needlessly costs a request, not refreshing when the peer expects it
 * costs the call.
 */
export function timerFromUacResponse(se: SessionExpires | undefined): SessionTimer | undefined {
  if (!se) return undefined;
  return { intervalS: se.seconds, weRefresh: se.refresher !== "uas" };
}

/**
 * RFC 4028 §7.4: after a 422 the request is retried with the interval raised to the Min-SE it
 * carried. Undefined when the 422 gives nothing to raise to (retrying would loop).
 */
export function retryAfter422(requestedS: number, minSeFromResponse: number | undefined): number | undefined {
  if (minSeFromResponse === undefined || minSeFromResponse <= requestedS) return undefined;
  return minSeFromResponse;
}

/** RFC 4028 §10: the refresher refreshes at half the interval. */
export function refreshDelayMs(intervalS: number): number {
  return intervalS * 500;
}

/**
 * RFC 4028 §10: without a refresh, the session ends at the interval minus the lesser of 32 s
 * and a third of it, leaving the refresher time for its request to arrive.
 */
export function expiryDelayMs(intervalS: number): number {
  return Math.round((intervalS - Math.min(32, intervalS / 3)) * 1000);
}
