import { BlockList, isIP } from "node:net";
import type { DigestVerifier } from "../../sip/index.js";

/**
 * Why an agent's INVITE is refused before anything reaches Meta. `challenge` marks a 401 that asks
 * for credentials (the usual first answer to a phone), as opposed to a refusal.
 */
export type IngressRefusal = { status: number; reason: string; detail: string; headers?: Record<string, string>; challenge?: boolean };

export interface IngressDecision {
  psid: string;
}

/**
 * Who may make the gateway call consumers, and whom they call. Pure: the call manager asks it
 * about each INVITE before any Graph API request is made.
 */
export class SipIngressPolicy {
  private readonly allowed = new BlockList();
  private readonly empty: boolean;

  constructor(
    allowFrom: string[],
    private readonly psidHeader: string | undefined,
    /** When set, agents authenticate with SIP digest after passing the source allowlist. */
    private readonly digest?: DigestVerifier,
  ) {
    for (const entry of allowFrom) {
      const [addr, bits] = entry.split("/") as [string, string | undefined];
      const type = isIP(addr) === 6 ? "ipv6" : "ipv4";
      if (bits === undefined) this.allowed.addAddress(addr, type);
      else this.allowed.addSubnet(addr, Number(bits), type);
    }
    this.empty = allowFrom.length === 0;
  }

  /** The consumer to call, or why the INVITE is refused. */
  check(invite: {
    source: { address: string };
    requestUri: string;
    header(name: string): string | undefined;
  }): IngressDecision | IngressRefusal {
    const address = invite.source.address.replace(/^::ffff:/, "");
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (this.empty || !this.allowed.check(address, family)) {
      return { status: 403, reason: "Forbidden", detail: `source ${address} is not in SIP_ALLOW_FROM` };
    }
    if (this.digest) {
      const verdict = this.digest.verify(invite.header("Authorization"), "INVITE", invite.requestUri);
      if (!verdict.ok) {
        return {
          status: 401,
          reason: "Unauthorized",
          detail: verdict.reason,
          headers: { "WWW-Authenticate": this.digest.challenge(verdict.stale) },
          challenge: verdict.reason === "no credentials" || verdict.stale,
        };
      }
    }
    const raw = this.psidHeader ? invite.header(this.psidHeader)?.trim() : userPart(invite.requestUri);
    if (!raw) {
      const where = this.psidHeader ? `header ${this.psidHeader}` : "Request-URI user part";
      return { status: 404, reason: "No Consumer Given", detail: `no consumer PSID in the ${where}` };
    }
    if (!/^\d{5,32}$/.test(raw)) {
      return { status: 404, reason: "Not A Messenger Consumer", detail: `"${raw}" is not a page-scoped id` };
    }
    return { psid: raw };
  }
}

function userPart(uri: string): string | undefined {
  const m = /^sips?:([^@;]+)@/i.exec(uri);
  return m ? decodeURIComponent(m[1]!) : undefined;
}
