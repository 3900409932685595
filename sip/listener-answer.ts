/**
 * An SDP offer from the PBX (re-INVITE, UPDATE) goes to the call's listeners, and the request is
 * answered exactly once: with their answer, with their refusal, with 500 when they throw or have not
 * answered in time, or with a fallback when nobody listens. Both backends and both dialog phases
 * (early and confirmed) answer offers this way; each says only how its answer goes on the wire.
 */
import type { ReinviteAnswer, ReinviteResponder } from "./signaling.js";

export interface AnswerOnceOptions {
  /** How long the listeners may take; then 500 "No Answer From Application". */
  timeoutMs: number;
  /** Where the deadline runs: a session's own timers (all cleared when it ends), or the call's. */
  timers: { start(fn: () => void, ms: number): NodeJS.Timeout; clear(t: NodeJS.Timeout): void };
  /** The request is being answered: bookkeeping first. False when the dialog is gone and nothing is sent. */
  settle(): boolean;
  /** The listeners' answer SDP. */
  accept(sdp: string): void;
  /** The listeners' refusal: a status outside 300–699 is 500, a missing reason the status's usual phrase. */
  refuse(status: number, reason: string): void;
}

/** The responder handed to the listeners: only its first call counts. */
export function answerOnce(o: AnswerOnceOptions): ReinviteResponder {
  let answered = false;
  const deadline = o.timers.start(() => respond({ status: 500, reason: "No Answer From Application" }), o.timeoutMs);
  const respond = (answer: ReinviteAnswer): void => {
    if (answered) return;
    answered = true;
    o.timers.clear(deadline);
    if (!o.settle()) return;
    if (typeof answer === "string") o.accept(answer);
    else {
      const status = answer.status >= 300 && answer.status <= 699 ? answer.status : 500;
      o.refuse(status, answer.reason ?? refusalReason(status));
    }
  };
  return respond;
}

export interface AnswerOfferOptions extends AnswerOnceOptions {
  /** Keeps the responder while the offer is pending (e.g. so a BYE can answer it 487); before delivery. */
  hold?(respond: ReinviteResponder): void;
  /** Hands the offer to the listeners; false when nobody listens. */
  deliver(respond: ReinviteResponder): boolean;
  /** A listener threw: log it (the request is then refused 500). */
  threw(err: unknown): void;
  /** The answer when nobody listens; without one the deadline answers. */
  fallback?(): ReinviteAnswer;
}

/** Hands an offer to the call's listeners through `deliver`, answered once as `answerOnce` says. */
export function answerOffer(o: AnswerOfferOptions): void {
  const respond = answerOnce(o);
  o.hold?.(respond);
  let listened: boolean;
  try {
    listened = o.deliver(respond);
  } catch (err) {
    o.threw(err);
    respond({ status: 500 });
    return;
  }
  if (!listened && o.fallback) respond(o.fallback());
}

function refusalReason(status: number): string {
  switch (status) {
    case 488:
      return "Not Acceptable Here";
    case 491:
      return "Request Pending";
    case 500:
      return "Server Internal Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Rejected";
  }
}
