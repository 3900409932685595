import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, LimitExceededError } from "../../gateway/config/limits.js";
import { parseWebhookDelivery } from "../../gateway/meta/webhook-delivery.js";
import { WebhookFormatError } from "../../gateway/meta/webhook.js";
import { parseWhatsAppWebhook, whatsAppDedupeKey } from "../../gateway/meta/whatsapp-webhook.js";
import { sipIdentity } from "../../gateway/call/consumer-identity.js";
import { whatsAppConsumer } from "../../gateway/call/sip-ingress.js";

const LIMITS = { maxIdLength: DEFAULT_LIMITS.maxIdLength, maxJsonDepth: DEFAULT_LIMITS.webhook.maxJsonDepth, sdp: DEFAULT_LIMITS.sdp };
const SDP = "v=0\r\no=- 1 2 IN IP4 31.13.65.60\r\ns=-\r\nt=0 0\r\na=group:BUNDLE audio\r\nm=audio 40012 UDP/TLS/RTP/SAVPF 111 126\r\na=mid:audio\r\n";

function envelope(value: Record<string, unknown>, field = "calls"): unknown {
  return {
    object: "whatsapp_business_account",
    entry: [{ id: "556677889900", changes: [{ field, value: { messaging_product: "whatsapp", metadata: { display_phone_number: "15550001111", phone_number_id: "109876543210" }, ...value } }] }],
  };
}

describe("parseWhatsAppWebhook", () => {
  it("reads a user-initiated connect with its offer, the caller's number, BSUID and profile name", () => {
    const parsed = parseWhatsAppWebhook(
      envelope({
        contacts: [{ profile: { name: "Ada\u0007 \"Lovelace\"" }, wa_id: "447700900123", user_id: "GB.1349120865" }],
        calls: [{ id: "wacid.ABC=", from: "447700900123", from_user_id: "GB.1349120865", to: "15550001111", event: "connect", timestamp: "1767225600", direction: "USER_INITIATED", session: { sdp_type: "offer", sdp: SDP } }],
      }),
      LIMITS,
    );
    expect(parsed.rejected).toEqual([]);
    expect(parsed.events).toEqual([
      {
        platform: "whatsapp",
        callId: "wacid.ABC=",
        wabaId: "556677889900",
        phoneNumberId: "109876543210",
        timestamp: 1767225600,
        event: "connect",
        direction: "user_initiated",
        consumer: { phone: "447700900123", userId: "GB.1349120865", name: "Ada Lovelace" },
        sdp: SDP,
      },
    ]);
  });

  it("takes a username-only caller (no number), statuses of calls only, terminate errors, and keeps good items beside bad ones", () => {
    const parsed = parseWhatsAppWebhook(
      envelope({
        calls: [
          { id: "wacid.ONE", from_user_id: "US.42", event: "connect", timestamp: "1", direction: "USER_INITIATED", session: { sdp_type: "offer", sdp: SDP } },
          { id: "c_not_whatsapp", event: "terminate", timestamp: "2", status: "COMPLETED" },
          { id: "wacid.TWO", event: "terminate", timestamp: "3", status: "FAILED", biz_opaque_callback_data: "sip-call-7" },
        ],
        statuses: [
          { id: "wamid.message", type: "message", status: "delivered", timestamp: "4" },
          { id: "wacid.THREE", type: "call", status: "RINGING", timestamp: "5", recipient_id: "447700900456" },
        ],
        errors: [{ code: 138021, message: "Media receive timeout" }],
      }),
      LIMITS,
    );
    expect(parsed.rejected).toHaveLength(1);
    expect(parsed.rejected[0]!.reason).toMatch(/WhatsApp call id/);
    expect(parsed.events.map((e) => [e.callId, e.event])).toEqual([
      ["wacid.ONE", "connect"],
      ["wacid.TWO", "terminate"],
      ["wacid.THREE", "status"],
    ]);
    const connect = parsed.events[0]!;
    expect(connect.event === "connect" && connect.consumer).toEqual({ userId: "US.42" });
    const terminate = parsed.events[1]!;
    expect(terminate.event === "terminate" && terminate).toMatchObject({ status: "failed", bizOpaque: "sip-call-7", errors: [{ code: 138021, message: "Media receive timeout" }] });
    const status = parsed.events[2]!;
    expect(status.event === "status" && status.status).toBe("ringing");
    if (status.event === "status") expect(whatsAppDedupeKey(status)).not.toBe(whatsAppDedupeKey({ ...status, status: "accepted" }));
  });

  it("reads a permission reply from the messages field", () => {
    const parsed = parseWhatsAppWebhook(
      envelope({ messages: [{ from: "447700900123", id: "wamid.x", timestamp: "9", type: "interactive", interactive: { type: "call_permission_reply", call_permission_reply: { response: "accept", is_permanent: true } } }] }, "messages"),
      LIMITS,
    );
    expect(parsed.permissionReplies).toEqual([{ phoneNumberId: "109876543210", consumer: { phone: "447700900123" }, response: "approve", permanent: true }]);
  });

  it("refuses a whole delivery holding an SDP over the bound, and an id over MAX_ID_LENGTH", () => {
    const big = `${SDP}${"a=x\r\n".repeat(2000)}`;
    expect(() => parseWhatsAppWebhook(envelope({ calls: [{ id: "wacid.A", from: "447700900123", event: "connect", timestamp: "1", direction: "USER_INITIATED", session: { sdp: big } }] }), LIMITS)).toThrow(LimitExceededError);
    expect(() => parseWhatsAppWebhook(envelope({ calls: [{ id: `wacid.${"A".repeat(200)}`, event: "terminate", timestamp: "1", status: "COMPLETED" }] }), LIMITS)).toThrow(LimitExceededError);
  });
});

describe("parseWebhookDelivery", () => {
  it("reads the envelope's object to pick the platform, and refuses others by name", () => {
    expect(parseWebhookDelivery({ object: "page", entry: [] }, LIMITS).platform).toBe("messenger");
    expect(parseWebhookDelivery({ object: "whatsapp_business_account", entry: [] }, LIMITS).platform).toBe("whatsapp");
    expect(() => parseWebhookDelivery({ object: "instagram", entry: [] }, LIMITS)).toThrow(WebhookFormatError);
  });
});

describe("what the PBX is told of the consumer", () => {
  it("keeps Messenger's From and headers, and names a WhatsApp consumer by number, user id and name", () => {
    expect(sipIdentity({ callId: "c_1", psid: "123456" }, "987")).toEqual({
      from: { user: "123456", displayName: "Messenger" },
      headers: { "X-Meta-PSID": "123456", "X-Meta-Call-Id": "c_1", "X-Meta-Page-Id": "987" },
    });
    expect(sipIdentity({ callId: "wacid.A", psid: "+447700900123", whatsapp: { phone: "447700900123", userId: "GB.1", name: "Ada", phoneNumberId: "10987" } }, "987")).toEqual({
      from: { user: "+447700900123", displayName: "Ada" },
      headers: { "X-Meta-Platform": "whatsapp", "X-Meta-Call-Id": "wacid.A", "X-WhatsApp-Phone-Number-Id": "10987", "X-WhatsApp-Phone": "+447700900123", "X-WhatsApp-User-Id": "GB.1" },
    });
    expect(sipIdentity({ callId: "wacid.A", psid: "US.42", whatsapp: { userId: "US.42", phoneNumberId: "10987" } }, "987").from).toEqual({ user: "US.42", displayName: "WhatsApp" });
  });

  it("reads an agent's dialled +number or user id as a WhatsApp consumer, and a bare number as a PSID", () => {
    expect(whatsAppConsumer("+447700900123")).toEqual({ phone: "447700900123" });
    expect(whatsAppConsumer("US.13491208655302741918")).toEqual({ userId: "US.13491208655302741918" });
    expect(whatsAppConsumer("7200000012345")).toBeUndefined();
    expect(whatsAppConsumer("+12")).toBeUndefined();
  });
});
