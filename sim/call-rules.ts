import { GraphApiError, graphErrors } from "./graph-errors.js";
import type { CallAction } from "./graph-request.js";
import type { CallDirection, TerminateStatus } from "./webhook-events.js";

/**
 * Lifecycle of a simulated call on Meta's side:
 * - `ringing`: the consumer is calling (or being called) and nobody has connected yet;
 * - `accepting`: an accept is being negotiated; a second accept must already fail;
 * - `accepted`: connected (business accepted, or the consumer picked up an outbound call);
 * - `ended`: terminated, rejected, timed out or failed.
 */
export type CallPhase = "ringing" | "accepting" | "accepted" | "ended";

/** Why a call ended, in the simulator's words; the webhook only carries Completed/Failed. */
export type CallEndReason =
  | "business-terminated"
  | "business-rejected"
  | "consumer-hung-up"
  | "consumer-declined"
  | "not-answered"
  | "failed"
  | "simulator-stopped";

export interface CallEnd {
  reason: CallEndReason;
  status: TerminateStatus;
  at: number;
}

export interface CallFacts {
  phase: CallPhase;
  direction: CallDirection;
  end: CallEnd | undefined;
}

function endedError(end: CallEnd | undefined): GraphApiError {
  return end?.status === "Failed" ? graphErrors.failedCall() : graphErrors.endedCall();
}

/**
 * The error Meta answers when the business attempts `action` on a call in this state, or
 * undefined when the action is allowed. `connect` creates calls and is never checked here.
 */
export function businessActionError(call: CallFacts, action: Exclude<CallAction, "connect">): GraphApiError | undefined {
  if (call.phase === "ended") return endedError(call.end);
  switch (action) {
    case "accept":
      if (call.direction !== "user_initiated") return graphErrors.invalidParameter("Only consumer-initiated calls can be accepted");
      return call.phase === "ringing" ? undefined : graphErrors.alreadyAccepted();
    case "reject":
      if (call.direction !== "user_initiated") return graphErrors.notConsumerInitiated();
      return call.phase === "ringing" ? undefined : graphErrors.alreadyAccepted();
    case "terminate":
      return undefined;
    case "media_update":
      return call.phase === "accepted" || call.direction === "business_initiated" ? undefined : graphErrors.invalidParameter("The call is not connected yet");
  }
}

/** Meta's media version rule: a business media_update must move from the current version to the next one. */
export function mediaVersionError(current: number, fromVersion: number, toVersion: number): GraphApiError | undefined {
  if (fromVersion !== current || toVersion !== fromVersion + 1) return graphErrors.conflictingMediaStatus(current, fromVersion);
  return undefined;
}

/**
 * A media_update with `tracks` and no session renegotiates nothing, so it keeps the version. Meta does not
 * document its versions; the simulator only checks `from_version` when one is sent, against the current one.
 */
export function tracksOnlyVersionError(current: number, fromVersion: number | undefined): GraphApiError | undefined {
  if (fromVersion !== undefined && fromVersion !== current) return graphErrors.conflictingMediaStatus(current, fromVersion);
  return undefined;
}
