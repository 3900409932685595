import { randomBytes } from "node:crypto";

/** Hex of `bytes` random bytes: tags, branches and Call-IDs that must not repeat or be guessed. */
export function randomToken(bytes = 8): string {
  return randomBytes(bytes).toString("hex");
}
