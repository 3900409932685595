/**
 * Whether a REFER may be followed. A REFER is an instruction to call someone on our account; it is
 * followed only where the operator allows: by default to the PBX the call is with (same host as
 * the SIP target, or as the agent's INVITE came from), else to the listed hosts, domains
 * (`*.example.com`) or exact URIs. Pure: no sockets, no DNS.
 */

export interface ReferPolicy {
  mode: "accept" | "reject";
  /** Hosts, `*.domain` suffixes or full `sip:`/`sips:` URIs; empty = the call's own PBX only. */
  allow: readonly string[];
}

export type ReferDecision = { ok: true; uri: string } | { ok: false; status: number; reason: string; detail: string };

/** Host part of a SIP URI, lower-cased, without port or parameters; undefined when not sip:/sips:. */
export function sipUriHost(uri: string): string | undefined {
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]+\]|[^:;?>]+)/i.exec(uri.trim());
  return m?.[1]?.toLowerCase();
}

function allowedBy(rule: string, uri: string, host: string): boolean {
  const r = rule.trim().toLowerCase();
  if (r === "") return false;
  if (r.startsWith("sip:") || r.startsWith("sips:")) return r === uri.trim().toLowerCase();
  if (r.startsWith("*.")) return host.endsWith(r.slice(1)) && host.length > r.length - 1;
  return host === r;
}

/** `pbxHosts`: where the call's SIP peer is (the SIP target's host, the agent INVITE's source). */
export function checkReferTarget(uri: string, policy: ReferPolicy, pbxHosts: readonly string[]): ReferDecision {
  if (policy.mode === "reject") return { ok: false, status: 603, reason: "Decline", detail: "transfers are off (SIP_REFER=reject)" };
  if (uri.length > 512) return { ok: false, status: 400, reason: "Bad Refer-To", detail: "Refer-To longer than 512 characters" };
  const host = sipUriHost(uri);
  if (host === undefined) return { ok: false, status: 400, reason: "Bad Refer-To", detail: "Refer-To is not a sip: or sips: URI" };
  const rules = policy.allow.length > 0 ? policy.allow : pbxHosts;
  if (rules.some((rule) => allowedBy(rule, uri, host))) return { ok: true, uri: uri.trim() };
  return { ok: false, status: 403, reason: "Transfer Target Not Allowed", detail: `Refer-To host ${host} is not in SIP_REFER_ALLOW` };
}
