import { randomBytes, randomInt } from "node:crypto";

function digits(count: number): string {
  let out = String(randomInt(1, 10));
  while (out.length < count) out += String(randomInt(0, 10));
  return out;
}

/** Messenger call ids look like `c_` followed by a long decimal number. */
export function newCallId(): string {
  return `c_${digits(19)}`;
}

/** Page-scoped ids are numeric strings of 16-17 digits. */
export function newPsid(): string {
  return digits(16);
}

/** Graph's fbtrace_id is an opaque token of URL-safe base64 characters. */
export function newFbtraceId(): string {
  return randomBytes(8).toString("base64url").slice(0, 11);
}

/** Opaque stream/track ids in the style WebRTC stacks use for msid. */
export function newMsidToken(): string {
  return randomBytes(12).toString("hex");
}

/** WhatsApp call ids: `wacid.` and an opaque base64 token, as in Meta's samples. */
export function newWaCallId(): string {
  return `wacid.${randomBytes(30).toString("base64").replace(/=+$/, "")}`;
}

/** WhatsApp message ids (`wamid.…`), for permission requests and replies. */
export function newWamid(): string {
  return `wamid.${randomBytes(24).toString("base64").replace(/=+$/, "")}`;
}

/** A business-scoped user id (BSUID): opaque to businesses; the simulator writes a country prefix and digits. */
export function newBsuid(): string {
  return `US.${digits(19)}`;
}

/** A consumer phone number in wa_id form (digits, country code first). */
export function newWaPhone(): string {
  return `1555${digits(7)}`;
}
