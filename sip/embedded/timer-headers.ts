import { parseOptionTags } from "../option-tags.js";
import { formatSessionExpires, parseMinSe, parseSessionExpires, type SessionExpires, type TimerRequest, type UasTimerDecision } from "../session-timer.js";
import { headerText, type SipMessage } from "./message.js";

/** Reads what a session-refresh request says about timers; throws SipHeaderError on unreadable values. */
export function timerRequestOf(m: SipMessage): TimerRequest {
  const tags = new Set([...parseOptionTags(headerText(m, "supported")), ...parseOptionTags(headerText(m, "require"))]);
  return {
    sessionExpires: parseSessionExpires(headerText(m, "session-expires")),
    minSeS: parseMinSe(headerText(m, "min-se")),
    supportsTimer: tags.has("timer"),
  };
}

/**
 * Session-Expires of a response, leniently: an unreadable one counts as absent (no timer), since
 * the request it answers already succeeded and a 400 cannot be sent back.
 */
export function sessionExpiresOf(m: SipMessage): SessionExpires | undefined {
  try {
    return parseSessionExpires(headerText(m, "session-expires"));
  } catch {
    return undefined;
  }
}

/** Min-SE of a 422, or undefined. */
export function minSeOf(m: SipMessage): number | undefined {
  try {
    return parseMinSe(headerText(m, "min-se"));
  } catch {
    return undefined;
  }
}

/** Whether the message's Allow lists UPDATE; undefined when it has no Allow. */
export function allowsUpdate(m: SipMessage): boolean | undefined {
  const allow = headerText(m, "allow");
  if (allow === undefined) return undefined;
  return allow.split(",").some((t) => t.trim().toUpperCase() === "UPDATE");
}

/** The timer headers of our 2xx to a session-refresh request. */
export function timerAnswerHeaders(decision: UasTimerDecision): Record<string, string> {
  if (decision.kind !== "timer") return {};
  const h: Record<string, string> = { "session-expires": formatSessionExpires(decision.sessionExpires) };
  if (decision.requireTimer) h.require = "timer";
  return h;
}
