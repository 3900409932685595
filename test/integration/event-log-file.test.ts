import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { CallEvent } from "../../gateway/observe/call-events.js";
import { CallEventPublisher, EVENT_STREAM } from "../../gateway/observe/event-publisher.js";

function event(sequence: number, type: CallEvent["type"]): CallEvent {
  return {
    id: `evt_${sequence}`,
    type,
    time: new Date().toISOString(),
    sequence,
    call: { metaCallId: "c_1", sipCallId: "abc@pbx", psid: "123", direction: "inbound", pageId: "456", sipPeer: "sip:a@b" },
    data: { startedAt: new Date().toISOString() },
  } as CallEvent;
}

describe("event lines in a file of their own (EVENTS_LOG=<path>)", () => {
  it("writes one JSON line per event, tagged with the stream, all on disk once closed", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "events-")), "sub", "events.jsonl");
    const publisher = new CallEventPublisher({ log: pino({ level: "silent" }), eventLog: { kind: "file", path }, url: undefined, secret: undefined });
    publisher.publish(event(1, "call.ringing"), "k");
    publisher.publish(event(2, "call.answered"), "k");
    publisher.publish(event(3, "call.ended"), "k");
    await publisher.close(0);
    const lines = readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { stream: string; msg: string; event: CallEvent });
    expect(lines.map((l) => [l.stream, l.msg, l.event.sequence])).toEqual([
      [EVENT_STREAM, "call.ringing", 1],
      [EVENT_STREAM, "call.answered", 2],
      [EVENT_STREAM, "call.ended", 3],
    ]);
    expect(publisher.stats()).toEqual({ published: 3, delivery: undefined });
  });
});
