import type { RingInfo } from "./target.js";

/** How the INVITE toward the PBX names the consumer: From user and display name, and routable headers. */
export interface SipIdentity {
  from: { user: string; displayName: string };
  headers: Record<string, string>;
}

/**
 * Messenger: `"Messenger" <sip:PSID@…>` with X-Meta-PSID, X-Meta-Call-Id and X-Meta-Page-Id.
 * WhatsApp: the consumer's number as From user (`+` and digits, so a PBX can show and call it back)
 * or their user id when Meta gave no number, their profile name as display name, and
 * X-Meta-Platform, X-Meta-Call-Id, X-WhatsApp-Phone, X-WhatsApp-User-Id and
 * X-WhatsApp-Phone-Number-Id (the business number called).
 */
export function sipIdentity(info: RingInfo, pageId: string | undefined): SipIdentity {
  const wa = info.whatsapp;
  if (!wa) {
    return {
      from: { user: info.psid, displayName: "Messenger" },
      headers: { "X-Meta-PSID": info.psid, "X-Meta-Call-Id": info.callId, "X-Meta-Page-Id": info.pageId ?? pageId ?? "" },
    };
  }
  const headers: Record<string, string> = {
    "X-Meta-Platform": "whatsapp",
    "X-Meta-Call-Id": info.callId,
    "X-WhatsApp-Phone-Number-Id": wa.phoneNumberId,
  };
  if (wa.phone !== undefined) headers["X-WhatsApp-Phone"] = `+${wa.phone}`;
  if (wa.userId !== undefined) headers["X-WhatsApp-User-Id"] = wa.userId;
  return {
    from: { user: wa.phone !== undefined ? `+${wa.phone}` : (wa.userId ?? info.psid), displayName: wa.name ?? "WhatsApp" },
    headers,
  };
}
