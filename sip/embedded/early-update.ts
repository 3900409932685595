import { deliverUpdate, type DialogEventTarget } from "../dialog-events.js";
import { answerOffer } from "../listener-answer.js";
import type { CallContext } from "./call-context.js";
import type { SipRequest } from "./message.js";

/** An early dialog's UPDATE in progress: its deadline while the call's listeners have not answered. */
export interface EarlyUpdateSlot {
  guard: NodeJS.Timeout | undefined;
}

/**
 * An UPDATE offer on an early dialog (RFC 3311 §5.2), in either call direction: handed to the call's
 * `update` listeners and answered once, 200 with their answer, their refusal, 488 when nobody
 * listens, or 500. The slot marks it pending until then; `open` says whether the dialog still
 * takes an answer, and `settled` records the offer/answer the 200 completes.
 */
export function answerEarlyUpdate(
  ctx: CallContext,
  call: DialogEventTarget & { readonly sipCallId: string },
  rq: SipRequest,
  offer: string,
  headers: Record<string, string>,
  on: { slot: EarlyUpdateSlot; open(): boolean; settled(answer: string): void },
): void {
  const stack = ctx.stack;
  answerOffer({
    timeoutMs: ctx.timers.reinviteAnswerTimeoutMs,
    timers: { start: (fn, ms) => (on.slot.guard = setTimeout(fn, ms)), clear: (t) => clearTimeout(t) },
    settle: () => {
      on.slot.guard = undefined;
      return on.open();
    },
    refuse: (status, reason) => stack.respond(rq, status, reason),
    accept: (answer) => {
      on.settled(answer);
      stack.respond(rq, 200, "OK", { headers, body: answer, contentType: "application/sdp" });
    },
    deliver: (respond) => deliverUpdate(call, offer, respond, true),
    threw: (err) => ctx.logger.error({ err, sipCallId: call.sipCallId }, "UPDATE listener threw"),
  });
}
