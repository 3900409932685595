import { describe, expect, it } from "vitest";
import { OutboundStream } from "../../gateway/call/outbound-stream.js";
import { SerialQueue } from "../../gateway/call/serial-queue.js";

describe("per-call serial queue", () => {
  it("runs steps one at a time in order, even when earlier ones are slow", async () => {
    const errors: unknown[] = [];
    const q = new SerialQueue((e) => errors.push(e));
    const log: string[] = [];
    q.push(async () => {
      log.push("a:start");
      await new Promise((r) => setTimeout(r, 20));
      log.push("a:end");
    });
    q.push(() => {
      log.push("b");
    });
    await q.drain();
    expect(log).toEqual(["a:start", "a:end", "b"]);
    expect(errors).toEqual([]);
  });

  it("reports a failing step and goes on", async () => {
    const errors: unknown[] = [];
    const q = new SerialQueue((e) => errors.push(e));
    const ran: string[] = [];
    q.push(() => {
      throw new Error("boom");
    });
    q.push(() => {
      ran.push("after");
    });
    await q.drain();
    expect((errors[0] as Error).message).toBe("boom");
    expect(ran).toEqual(["after"]);
  });

  it("drops queued steps once closed", async () => {
    const q = new SerialQueue(() => undefined);
    const ran: string[] = [];
    q.push(async () => {
      await new Promise((r) => setTimeout(r, 10));
      q.close();
    });
    q.push(() => {
      ran.push("late");
    });
    await q.drain();
    expect(ran).toEqual([]);
  });
});

describe("outbound RTP numbering", () => {
  it("keeps source spacing and consecutive sequence numbers", () => {
    const s = new OutboundStream(960);
    const a = s.next(1000);
    const b = s.next(1960);
    const c = s.next(3880); // one frame skipped at the source (DTX)
    expect(b.sequenceNumber).toBe((a.sequenceNumber + 1) & 0xffff);
    expect(c.sequenceNumber).toBe((b.sequenceNumber + 1) & 0xffff);
    expect((b.timestamp - a.timestamp) >>> 0).toBe(960);
    expect((c.timestamp - b.timestamp) >>> 0).toBe(1920);
  });

  it("treats a timestamp jump as a new source, staying continuous", () => {
    const s = new OutboundStream(960);
    const a = s.next(5);
    const b = s.next(4_000_000_000);
    expect((b.timestamp - a.timestamp) >>> 0).toBe(960);
  });
});
