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
