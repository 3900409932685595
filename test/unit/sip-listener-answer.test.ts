import { describe, expect, it } from "vitest";
import { answerOffer, answerOnce, type AnswerOnceOptions } from "../../sip/listener-answer.js";
import { SessionTimeouts } from "../../sip/session-timeouts.js";

function recorder(settles = true, timeoutMs = 1000) {
  const sent: string[] = [];
  const timeouts = new SessionTimeouts(new Promise(() => {}));
  const o: AnswerOnceOptions = {
    timeoutMs,
    timers: timeouts,
    settle: () => settles,
    accept: (sdp) => sent.push(`200 ${sdp}`),
    refuse: (status, reason) => sent.push(`${status} ${reason}`),
  };
  return { sent, o, timeouts };
}

describe("an offer answered once by the call's listeners", () => {
  it("sends the first answer only", () => {
    const { sent, o, timeouts } = recorder();
    const respond = answerOnce(o);
    respond("v=0 answer");
    respond({ status: 488 });
    expect(sent).toEqual(["200 v=0 answer"]);
    timeouts.clearAll();
  });

  it("turns a refusal outside 300–699 into 500 and keeps the listener's reason", () => {
    const { sent, o } = recorder();
    answerOnce(o)({ status: 200, reason: "fine" });
    const second = recorder();
    answerOnce(second.o)({ status: 606 });
    expect(sent).toEqual(["500 fine"]);
    expect(second.sent).toEqual(["606 Rejected"]);
  });

  it("answers 500 when the listeners take longer than the deadline", async () => {
    const { sent, o } = recorder(true, 20);
    const respond = answerOnce(o);
    await new Promise((r) => setTimeout(r, 60));
    expect(sent).toEqual(["500 No Answer From Application"]);
    respond("too late");
    expect(sent).toHaveLength(1);
  });

  it("sends nothing once the dialog is gone", () => {
    const { sent, o } = recorder(false);
    answerOnce(o)("v=0");
    expect(sent).toEqual([]);
  });

  it("refuses 500 when a listener throws, and falls back when nobody listens", () => {
    const thrown = recorder();
    const logged: unknown[] = [];
    let held: unknown;
    answerOffer({
      ...thrown.o,
      hold: (respond) => (held = respond),
      deliver: () => {
        throw new Error("listener bug");
      },
      threw: (err) => logged.push(err),
      fallback: () => "fallback",
    });
    expect(thrown.sent).toEqual(["500 Server Internal Error"]);
    expect((logged[0] as Error).message).toBe("listener bug");
    expect(typeof held).toBe("function");
    thrown.timeouts.clearAll();

    const unheard = recorder();
    answerOffer({ ...unheard.o, deliver: () => false, threw: () => {}, fallback: () => "v=0 current" });
    expect(unheard.sent).toEqual(["200 v=0 current"]);
  });
});
