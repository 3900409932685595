/**
 * A call's record in Redis beyond its lease, as one string the claim scripts can compare by
 * prefix: `live\t<owner>\t<tag>` while some instance holds it, `ended` once it is over.
 */
export type CallState = { kind: "live"; owner: string; tag: string } | { kind: "ended" };

export function encodeLive(owner: string, tag: string): string {
  return `live\t${owner}\t${tag}`;
}

export const ENDED = "ended";

export function decodeCallState(raw: string | null): CallState | undefined {
  if (raw === null) return undefined;
  if (raw === ENDED) return { kind: "ended" };
  const parts = raw.split("\t");
  if (parts[0] !== "live" || parts.length < 3 || !parts[1]) return undefined;
  return { kind: "live", owner: parts[1], tag: parts.slice(2).join("\t") };
}

/** Where one call's webhooks go, from its claim and its record. */
export type CallLocation =
  | { kind: "self" }
  | { kind: "peer"; owner: string }
  /** Its owner's lease ran out: the owner is gone and the call with it. */
  | { kind: "orphan"; owner: string }
  | { kind: "ended" }
  /** Nobody holds it and nothing is known of it: a new call, or one whose claim has not landed yet. */
  | { kind: "unclaimed" };

export function locate(selfId: string, owner: string | null, state: CallState | undefined): CallLocation {
  if (owner !== null) return owner === selfId ? { kind: "self" } : { kind: "peer", owner };
  if (state?.kind === "ended") return { kind: "ended" };
  if (state?.kind === "live") return state.owner === selfId ? { kind: "self" } : { kind: "orphan", owner: state.owner };
  return { kind: "unclaimed" };
}
