import { describe, expect, it } from "vitest";
import { CallDispatch } from "../../gateway/workers/call-dispatch.js";

interface E {
  callId: string;
  event: string;
  direction?: string;
}
interface D {
  events: E[];
  rejected: { index: number }[];
}

function setup(workers = 2, maxCalls = 100) {
  let now = 0;
  const sent: { worker: number; delivery: D; admit: boolean }[] = [];
  const dispatch = new CallDispatch<D>({
    workers,
    send: (worker, delivery, admit) => sent.push({ worker, delivery, admit }),
    admits: (committed) => committed < maxCalls,
    now: () => now,
  });
  return { dispatch, sent, advance: (ms: number) => (now += ms) };
}
const connect = (callId: string): E => ({ callId, event: "connect", direction: "user_initiated" });
const terminate = (callId: string): E => ({ callId, event: "terminate" });

describe("which media worker gets each webhook", () => {
  it("spreads consumers' new calls over the workers, counting calls handed out but not yet reported", () => {
    const { dispatch, sent } = setup(2);
    dispatch.route({ events: [connect("a"), connect("b"), connect("c")], rejected: [] });
    expect(sent.map((s) => [s.worker, s.delivery.events.map((e) => e.callId)])).toEqual([
      [0, ["a"]],
      [1, ["b"]],
      [0, ["c"]],
    ]);
  });

  it("sends a call's later events (and a copy of its connect) to the worker that holds it", () => {
    const { dispatch, sent } = setup(2);
    dispatch.route({ events: [connect("a"), connect("b")], rejected: [] });
    dispatch.callAdded(1, "b", "page");
    sent.length = 0;
    dispatch.route({ events: [connect("b"), terminate("b"), terminate("a")], rejected: [] });
    expect(sent.map((s) => [s.worker, s.delivery.events.map((e) => e.event)])).toEqual([
      [1, ["connect", "terminate"]],
      [0, ["terminate"]],
    ]);
  });

  it("offers an event for a call nobody has reported to every worker (an agent's call whose id is not known yet)", () => {
    const { dispatch, sent } = setup(3);
    dispatch.route({ events: [{ callId: "x", event: "connect", direction: "business_initiated" }], rejected: [] });
    expect(sent.map((s) => s.worker)).toEqual([0, 1, 2]);
    dispatch.callAdded(2, "x", "page");
    sent.length = 0;
    dispatch.route({ events: [terminate("x")], rejected: [] });
    expect(sent.map((s) => s.worker)).toEqual([2]);
  });

  it("keeps what is not a call event with worker 0, once, without the events", () => {
    const { dispatch, sent } = setup(2);
    dispatch.route({ events: [connect("a")], rejected: [{ index: 3 }] });
    expect(sent).toHaveLength(2);
    expect(sent[0]!.delivery.rejected).toEqual([]);
    expect(sent[1]).toEqual({ worker: 0, delivery: { events: [], rejected: [{ index: 3 }] }, admit: true });
  });

  it("counts live calls per worker and remembers an ended call's worker for late webhooks, then forgets it", () => {
    const { dispatch, sent, advance } = setup(2);
    dispatch.route({ events: [connect("a")], rejected: [] });
    dispatch.callAdded(0, "a", "page");
    expect(dispatch.liveCalls()).toEqual([1, 0]);
    expect(dispatch.totalLive).toBe(1);
    dispatch.callEnded(0, "a");
    expect(dispatch.liveCalls()).toEqual([0, 0]);
    sent.length = 0;
    advance(30_000);
    dispatch.route({ events: [terminate("a")], rejected: [] });
    expect(sent.map((s) => s.worker)).toEqual([0]);
    advance(61_000);
    dispatch.leastLoaded();
    sent.length = 0;
    dispatch.route({ events: [terminate("a")], rejected: [] });
    expect(sent.map((s) => s.worker)).toEqual([0, 1]);
  });

  it("forgets ended calls oldest first, however many it remembers, and keeps a call that ended again", () => {
    const { dispatch, sent, advance } = setup(2);
    for (let i = 0; i < 3000; i++) {
      dispatch.callAdded(1, `c${i}`, "page");
      dispatch.callEnded(1, `c${i}`);
      advance(20);
    }
    // c0 was seen again and ended once more, late: its first end no longer counts.
    dispatch.callAdded(1, "c0", "page");
    dispatch.callEnded(1, "c0");
    // Now 60 s after c0's first end plus 30 s: c0…c1499 ended more than 60 s ago.
    advance(30_000);
    dispatch.leastLoaded();
    const workersFor = (callId: string): number[] => {
      sent.length = 0;
      dispatch.route({ events: [terminate(callId)], rejected: [] });
      return sent.map((s) => s.worker);
    };
    expect(workersFor("c1")).toEqual([0, 1]);
    expect(workersFor("c1498")).toEqual([0, 1]);
    expect(workersFor("c1501")).toEqual([1]);
    expect(workersFor("c2999")).toEqual([1]);
    expect(workersFor("c0")).toEqual([1]);
  });

  it("stops counting a handed-out call the worker never reported (refused there) after a few seconds", () => {
    const { dispatch, advance } = setup(2);
    dispatch.route({ events: [connect("a")], rejected: [] });
    expect(dispatch.leastLoaded()).toBe(1);
    advance(6_000);
    expect(dispatch.leastLoaded()).toBe(0);
  });

  it("admits new calls for the whole process: past the limit a new call goes out marked refused, and counts for nothing", () => {
    const { dispatch, sent } = setup(2, 3);
    dispatch.route({ events: [connect("a"), connect("b")], rejected: [] });
    dispatch.callAdded(0, "a", "page");
    dispatch.route({ events: [connect("c"), connect("d"), connect("e")], rejected: [] });
    expect(sent.map((s) => [s.delivery.events[0]!.callId, s.admit])).toEqual([
      ["a", true],
      ["b", true],
      ["c", true],
      ["d", false],
      ["e", false],
    ]);
    expect(dispatch.committed).toBe(3);
    // A refused call's later events still reach the worker that refused it.
    sent.length = 0;
    dispatch.route({ events: [terminate("d")], rejected: [] });
    expect(sent).toHaveLength(1);
    dispatch.callEnded(0, "a");
    dispatch.route({ events: [connect("f")], rejected: [] });
    expect(sent.at(-1)!.admit).toBe(true);
  });

  it("weighs extra load (SIP calls not yet registered) when picking, and forgets a worker that is gone", () => {
    const { dispatch } = setup(2);
    expect(dispatch.leastLoaded((w) => (w === 0 ? 2 : 0))).toBe(1);
    dispatch.callAdded(1, "b", "page");
    dispatch.callAdded(1, "c", "page");
    expect(dispatch.leastLoaded()).toBe(0);
    expect(dispatch.dropWorker(1)).toEqual([
      { callId: "b", businessId: "page" },
      { callId: "c", businessId: "page" },
    ]);
    expect(dispatch.liveCalls()).toEqual([0, 0]);
  });
});
