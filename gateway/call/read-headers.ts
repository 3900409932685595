/**
 * The SIP headers the call core reads from an agent's INVITE or a REFER, by the name it reads
 * them under. Read only through these names, so that a copy of a request carried to a media
 * worker (gateway/workers/) holds every header the call core will ask it for.
 */
export const READ_HEADERS = {
  /** The Messenger Page an agent's call is placed from. */
  pageId: "X-Meta-Page-Id",
  /** The WhatsApp number an agent's call is placed from. */
  phoneNumberId: "X-WhatsApp-Phone-Number-Id",
  /** The agent's digest credentials. */
  authorization: "Authorization",
  /** A REFER's sender, when it carries no Referred-By. */
  from: "From",
} as const;

/** Every name above, and the configured PSID header (SIP_PSID_HEADER) when there is one. */
export function readHeaderNames(psidHeader: string | undefined): string[] {
  const names: string[] = Object.values(READ_HEADERS);
  return psidHeader ? [...names, psidHeader] : names;
}
