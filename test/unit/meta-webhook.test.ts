import { describe, expect, it } from "vitest";
import { LimitExceededError } from "../../gateway/config/limits.js";
import {
  WebhookFormatError,
  dedupeKey,
  parseMessengerWebhook,
  type MediaUpdateEvent,
  type MessengerCallEvent,
} from "../../gateway/meta/webhook.js";

const PAGE = "1234567890";
const PSID = "24680";
const SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

function envelope(entry: unknown[]): unknown {
  return { object: "page", entry };
}

const connectItem = {
  id: "c_1",
  to: PAGE,
  from: PSID,
  event: "connect",
  timestamp: 1671644824,
  call_direction: "user_initiated",
};

describe("parseMessengerWebhook: envelope", () => {
  it("throws WebhookFormatError for another object type", () => {
    expect(() => parseMessengerWebhook({ object: "whatsapp_business_account", entry: [] })).toThrow(WebhookFormatError);
    expect(() => parseMessengerWebhook({ entry: [] })).toThrow(WebhookFormatError);
  });

  it("throws for a non-object body or a missing entry array", () => {
    expect(() => parseMessengerWebhook(null)).toThrow(WebhookFormatError);
    expect(() => parseMessengerWebhook([])).toThrow(WebhookFormatError);
    expect(() => parseMessengerWebhook({ object: "page" })).toThrow(WebhookFormatError);
  });

  it("returns nothing for an empty entry list", () => {
    expect(parseMessengerWebhook(envelope([]))).toEqual({ events: [], permissionReplies: [], rejected: [] });
  });
});

describe("parseMessengerWebhook: call events", () => {
  it("parses every documented event shape", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        {
          id: PAGE,
          time: 1671644830,
          calls: [
            connectItem,
            { id: "c_2", event: "call_status", timestamp: 1671644825, recipient_id: PSID, call_status: "ringing" },
            {
              id: "c_2",
              event: "media_update",
              timestamp: 1671644826,
              session: { version: 1, sdp_renegotiation: { sdp_type: "offer", sdp: SDP } },
            },
            {
              id: "c_1",
              event: "terminate",
              timestamp: 1671644900,
              status: "Completed",
              start_time: 1671644830,
              end_time: 1671644900,
              duration: 70,
            },
          ],
        },
      ]),
    );
    expect(parsed.rejected).toEqual([]);
    expect(parsed.events).toEqual<MessengerCallEvent[]>([
      { event: "connect", callId: "c_1", pageId: PAGE, timestamp: 1671644824, from: PSID, to: PAGE, direction: "user_initiated" },
      { event: "call_status", callId: "c_2", pageId: PAGE, timestamp: 1671644825, status: "ringing", recipientId: PSID },
      { event: "media_update", callId: "c_2", pageId: PAGE, timestamp: 1671644826, version: 1, offer: { sdpType: "offer", sdp: SDP } },
      {
        event: "terminate",
        callId: "c_1",
        pageId: PAGE,
        timestamp: 1671644900,
        status: "Completed",
        startTime: 1671644830,
        endTime: 1671644900,
        duration: 70,
      },
    ]);
  });

  it("handles batched entries and carries each entry's page id", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        { id: "111", time: 1, calls: [{ ...connectItem, id: "c_a", to: "111" }] },
        { id: "222", time: 2, calls: [{ ...connectItem, id: "c_b", to: "222" }, { ...connectItem, id: "c_b2", to: "222" }] },
      ]),
    );
    expect(parsed.events.map((e) => [e.callId, e.pageId])).toEqual([
      ["c_a", "111"],
      ["c_b", "222"],
      ["c_b2", "222"],
    ]);
  });

  it("keeps valid items when others in the same batch are invalid", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        "not an entry",
        {
          id: PAGE,
          time: 1,
          calls: [
            connectItem,
            { event: "connect", from: PSID, timestamp: 1, call_direction: "user_initiated" }, // no id
            { id: "c_3", event: "teleport", timestamp: 1 },
            { id: "c_4", event: "media_update", timestamp: 1, session: { version: "x", sdp_renegotiation: SDP } },
            { id: "c_5", event: "media_update", timestamp: 1, session: { version: 2 } },
            { id: "c_6", event: "connect", from: PSID, timestamp: 1 }, // no direction
            { id: "c_7", event: "call_status", timestamp: 1, recipient_id: PSID, call_status: "exploded" },
            42,
            { id: "c_8", event: "terminate", timestamp: 1, status: "Failed", duration: "" },
          ],
        },
        { id: PAGE, calls: "nope" },
        { time: 3, calls: [connectItem] },
      ]),
    );
    expect(parsed.events.map((e) => e.callId)).toEqual(["c_1", "c_8"]);
    expect(parsed.rejected.map((r) => r.index)).toEqual([
      "entry[0]",
      "entry[1].calls[1]",
      "entry[1].calls[2]",
      "entry[1].calls[3]",
      "entry[1].calls[4]",
      "entry[1].calls[5]",
      "entry[1].calls[6]",
      "entry[1].calls[7]",
      "entry[2].calls",
      "entry[3]",
    ]);
    for (const r of parsed.rejected) expect(r.reason.length).toBeGreaterThan(0);
    expect(parsed.rejected[2]?.reason).toContain("teleport");
  });

  it("accepts sdp_renegotiation as a bare string or as an object, and a string version", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        {
          id: PAGE,
          time: 1,
          calls: [
            { id: "c_1", event: "media_update", timestamp: 10, session: { version: "3", sdp_renegotiation: SDP } },
            { id: "c_1", event: "media_update", timestamp: 11, session: { version: 4, sdp_renegotiation: { sdp_type: "offer", sdp: SDP } } },
            {
              id: "c_1",
              event: "media_update",
              timestamp: 12,
              session: JSON.stringify({ version: 5, sdp_renegotiation: { sdp_type: "offer", sdp: SDP } }),
            },
          ],
        },
      ]),
    );
    expect(parsed.rejected).toEqual([]);
    const updates = parsed.events as MediaUpdateEvent[];
    expect(updates.map((u) => u.version)).toEqual([3, 4, 5]);
    for (const u of updates) expect(u.offer).toEqual({ sdpType: "offer", sdp: SDP });
  });

  it("rejects negative or fractional versions", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        {
          id: PAGE,
          calls: [
            { id: "c_1", event: "media_update", timestamp: 1, session: { version: -1, sdp_renegotiation: SDP } },
            { id: "c_1", event: "media_update", timestamp: 1, session: { version: 1.5, sdp_renegotiation: SDP } },
          ],
        },
      ]),
    );
    expect(parsed.events).toEqual([]);
    expect(parsed.rejected).toHaveLength(2);
  });

  it("leaves empty terminate times absent and passes unknown statuses through", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        {
          id: PAGE,
          calls: [
            { id: "c_1", event: "terminate", timestamp: 5, status: "Completed", start_time: "", end_time: "", duration: "" },
            { id: "c_2", event: "terminate", timestamp: "6", status: "REJECTED" },
            { id: "c_3", event: "terminate", timestamp: 7, status: "FAILED", duration: "12" },
          ],
        },
      ]),
    );
    expect(parsed.events).toEqual([
      { event: "terminate", callId: "c_1", pageId: PAGE, timestamp: 5, status: "Completed" },
      { event: "terminate", callId: "c_2", pageId: PAGE, timestamp: 6, status: "REJECTED" },
      { event: "terminate", callId: "c_3", pageId: PAGE, timestamp: 7, status: "Failed", duration: 12 },
    ]);
    expect("startTime" in (parsed.events[0] ?? {})).toBe(false);
  });

  it("falls back to entry.time when an item has no timestamp", () => {
    const parsed = parseMessengerWebhook(envelope([{ id: PAGE, time: 1671644999, calls: [{ id: "c_1", event: "terminate", status: "Completed" }] }]));
    expect(parsed.events[0]?.timestamp).toBe(1671644999);
  });

  it("normalises upper-case direction and status spellings", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        {
          id: PAGE,
          calls: [
            { ...connectItem, call_direction: "BUSINESS_INITIATED" },
            { id: "c_1", event: "call_status", timestamp: 1, recipient_id: PSID, call_status: "ACCEPTED" },
          ],
        },
      ]),
    );
    expect(parsed.events[0]).toMatchObject({ event: "connect", direction: "business_initiated" });
    expect(parsed.events[1]).toMatchObject({ event: "call_status", status: "accepted" });
  });
});

describe("parseMessengerWebhook: call_permission_reply", () => {
  const reply = {
    sender: { id: PSID },
    recipient: { id: PAGE },
    timestamp: 1671644824,
    call_permission_reply: { response: "approve", expiration_timestamp: "1672249624" },
  };

  it("reads a reply placed directly under entry[]", () => {
    const parsed = parseMessengerWebhook(envelope([reply]));
    expect(parsed.rejected).toEqual([]);
    expect(parsed.permissionReplies).toEqual([
      { pageId: PAGE, psid: PSID, response: "approve", timestamp: 1671644824, expiresAt: 1672249624 },
    ]);
  });

  it("reads a reply inside entry[].messaging[] and ignores unrelated messaging items", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        {
          id: PAGE,
          time: 1,
          messaging: [
            { sender: { id: PSID }, recipient: { id: PAGE }, timestamp: 2, message: { text: "hi" } },
            { sender: { id: PSID }, timestamp: 3, call_permission_reply: { response: "reject" } },
          ],
        },
      ]),
    );
    expect(parsed.rejected).toEqual([]);
    expect(parsed.events).toEqual([]);
    expect(parsed.permissionReplies).toEqual([{ pageId: PAGE, psid: PSID, response: "reject", timestamp: 3 }]);
  });

  it("rejects a reply without a sender or with an unknown response, keeping the others", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        { ...reply, sender: undefined },
        { ...reply, call_permission_reply: { response: "maybe" } },
        { id: PAGE, messaging: [{ sender: { id: "24682" }, call_permission_reply: { response: "APPROVE" } }] },
      ]),
    );
    expect(parsed.permissionReplies).toEqual([{ pageId: PAGE, psid: "24682", response: "approve" }]);
    expect(parsed.rejected.map((r) => r.index)).toEqual(["entry[0]", "entry[1]"]);
  });
});

describe("dedupeKey", () => {
  const parse = (calls: unknown[]) => parseMessengerWebhook(envelope([{ id: PAGE, calls }])).events;

  it("is equal for a redelivered event", () => {
    const [a] = parse([connectItem]);
    const [b] = parse([{ ...connectItem }]);
    expect(dedupeKey(a!)).toBe(dedupeKey(b!));
  });

  it("distinguishes call, event, timestamp, version and status", () => {
    const events = parse([
      connectItem,
      { ...connectItem, id: "c_other" },
      { ...connectItem, timestamp: connectItem.timestamp + 1 },
      { id: "c_1", event: "call_status", timestamp: 1, recipient_id: PSID, call_status: "ringing" },
      { id: "c_1", event: "call_status", timestamp: 1, recipient_id: PSID, call_status: "accepted" },
      { id: "c_1", event: "media_update", timestamp: 1, session: { version: 1, sdp_renegotiation: SDP } },
      { id: "c_1", event: "media_update", timestamp: 1, session: { version: 2, sdp_renegotiation: SDP } },
      { id: "c_1", event: "terminate", timestamp: 1, status: "Completed" },
      { id: "c_1", event: "terminate", timestamp: 1, status: "Failed" },
    ]);
    expect(events).toHaveLength(9);
    expect(new Set(events.map(dedupeKey)).size).toBe(9);
  });
});

describe("parseMessengerWebhook: bounds", () => {
  const deep = (levels: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = { a: value };
    return value;
  };
  const limitOf = (fn: () => unknown): LimitExceededError => {
    try {
      fn();
    } catch (err) {
      if (err instanceof LimitExceededError) return err;
      throw err;
    }
    throw new Error("expected a LimitExceededError");
  };

  it("refuses an object nested 10,000 levels deep as a wrong envelope, without serialising it", () => {
    expect(() => parseMessengerWebhook({ object: deep(10_000), entry: [] })).toThrow(WebhookFormatError);
    expect(() => parseMessengerWebhook({ object: "x".repeat(100_000), entry: [] })).toThrow(/^unexpected webhook object "x{40}…", expected "page"$/);
  });

  it("refuses the whole delivery for a call id, PSID or status over MAX_ID_LENGTH", () => {
    const huge = `c_${"1".repeat(1024 * 1024)}`;
    const byId = limitOf(() => parseMessengerWebhook(envelope([{ id: PAGE, time: 1, calls: [connectItem, { ...connectItem, id: huge }] }])));
    expect(byId).toMatchObject({ limit: "MAX_ID_LENGTH", max: 128 });
    expect(byId.message.length).toBeLessThan(100);
    expect(limitOf(() => parseMessengerWebhook(envelope([{ id: PAGE, calls: [{ ...connectItem, from: "9".repeat(129) }] }]))).limit).toBe("MAX_ID_LENGTH");
    expect(limitOf(() => parseMessengerWebhook(envelope([{ id: "1".repeat(500), calls: [connectItem] }]))).limit).toBe("MAX_ID_LENGTH");
    const status = { id: "c_1", event: "terminate", timestamp: 1, status: "Z".repeat(200) };
    expect(limitOf(() => parseMessengerWebhook(envelope([{ id: PAGE, calls: [status] }]))).limit).toBe("MAX_ID_LENGTH");
  });

  it("rejects, item by item, ids that do not have the shape Meta documents", () => {
    const parsed = parseMessengerWebhook(
      envelope([
        {
          id: PAGE,
          time: 1,
          calls: [
            connectItem,
            { ...connectItem, id: "x_1" },
            { ...connectItem, id: 12345 },
            { ...connectItem, id: "c_2", from: "psid-1" },
            { id: "c_3", event: "call_status", timestamp: 1, recipient_id: "p", call_status: "ringing" },
          ],
        },
        { id: "my-page", time: 1, calls: [connectItem] },
      ]),
    );
    expect(parsed.events.map((e) => e.callId)).toEqual(["c_1"]);
    expect(parsed.rejected.map((r) => r.index)).toEqual(["entry[0].calls[1]", "entry[0].calls[2]", "entry[0].calls[3]", "entry[0].calls[4]", "entry[1]"]);
    expect(parsed.rejected[0]?.reason).toContain("not a Messenger call id");
    expect(parsed.rejected[3]?.reason).toContain("not a page-scoped id");
  });

  it("refuses a media_update whose SDP is over SDP_MAX_BYTES or SDP_MAX_LINES, or whose session nests too deeply", () => {
    const update = (sdp: string): unknown =>
      envelope([{ id: PAGE, calls: [{ id: "c_1", event: "media_update", timestamp: 1, session: { version: 1, sdp_renegotiation: { sdp_type: "offer", sdp } } }] }]);
    expect(limitOf(() => parseMessengerWebhook(update(SDP + "a=x\r\n".repeat(2000)))).limit).toBe("SDP_MAX_LINES");
    expect(limitOf(() => parseMessengerWebhook(update(SDP + `a=${"x".repeat(40_000)}\r\n`))).limit).toBe("SDP_MAX_BYTES");
    expect(parseMessengerWebhook(update(SDP)).events).toHaveLength(1);
    const nested = `{"version":1,"sdp_renegotiation":${"[".repeat(100)}${"]".repeat(100)}}`;
    const deepSession = envelope([{ id: PAGE, calls: [{ id: "c_1", event: "media_update", timestamp: 1, session: nested }] }]);
    expect(limitOf(() => parseMessengerWebhook(deepSession)).limit).toBe("WEBHOOK_MAX_JSON_DEPTH");
  });
});
