import { randomUUID } from "node:crypto";
import type { CallOutcome } from "../call/meta-call.js";
import type { CallQuality } from "../quality/call-quality.js";

export type CallEventType = "call.ringing" | "call.answered" | "call.ended";

/** Both legs' identities: what an integrator joins its own records on. */
export interface CallParties {
  /** Meta's call id (`c_…`, or `wacid.…` on WhatsApp); null for an agent's call that never reached Meta. */
  metaCallId: string | null;
  /** The SIP Call-ID of the PBX leg; null until there is one (or for the echo target). */
  sipCallId: string | null;
  psid: string;
  direction: "inbound" | "outbound";
  /** The Page (Messenger) or the phone-number id (WhatsApp) the call belongs to. */
  pageId: string;
  /** The SIP side: the URI consumer calls ring, or the agent who placed the call; "echo" for the echo target. */
  sipPeer: string | null;
}

/** The quality figures a CDR needs, from the full CallQuality. */
export interface QualitySummary {
  mos: { consumerToAgent: number; agentToConsumer: number };
  /** Whether either estimate lacked a leg's loss or delay (no RTCP). */
  partial: boolean;
  meta: { receivedLossRatio: number; sentLossRatio: number | null; jitterMs: number; roundTripMs: number | null; maxLossBurst: number };
  pbx: { receivedLossRatio: number; sentLossRatio: number | null; jitterMs: number; roundTripMs: number | null; maxLossBurst: number; codec: string | null } | null;
  firstAudioMs: { fromConsumer: number | null; fromPbx: number | null };
  concealedMs: number;
}

export interface CallEndedData {
  outcome: CallOutcome;
  detail: string;
  startedAt: string;
  /** When the called side picked up; null when it never did. */
  answeredAt: string | null;
  endedAt: string;
  durationMs: number;
  /** From answer to end: the billable part. */
  talkMs: number;
  mediaFlowed: boolean;
  quality: QualitySummary;
}

interface EventBase<T extends CallEventType, D> {
  /** Unique per event: receivers de-duplicate retried deliveries on it. */
  id: string;
  type: T;
  time: string;
  /** 1, 2, 3… within one call, in the order the events happened. */
  sequence: number;
  call: CallParties;
  data: D;
}

export type CallEvent =
  | EventBase<"call.ringing", { startedAt: string }>
  | EventBase<"call.answered", { startedAt: string; answeredAt: string }>
  | EventBase<"call.ended", CallEndedData>;

export function newEventId(): string {
  return `evt_${randomUUID()}`;
}

export function summarizeQuality(q: CallQuality): QualitySummary {
  const round = (v: number, d = 4): number => Math.round(v * 10 ** d) / 10 ** d;
  const opt = (v: number | undefined, d = 4): number | null => (v === undefined ? null : round(v, d));
  return {
    mos: { consumerToAgent: q.consumerToAgent.mos, agentToConsumer: q.agentToConsumer.mos },
    partial: q.consumerToAgent.partial || q.agentToConsumer.partial,
    meta: {
      receivedLossRatio: round(q.meta.received.lossRatio),
      sentLossRatio: opt(q.meta.sent.lossRatio),
      jitterMs: round(q.meta.received.jitterMs, 2),
      roundTripMs: opt(q.meta.roundTripMs, 1),
      maxLossBurst: q.meta.received.maxBurstPackets,
    },
    pbx: q.pbx
      ? {
          receivedLossRatio: round(q.pbx.received.lossRatio),
          sentLossRatio: opt(q.pbx.sent.lossRatio),
          jitterMs: round(q.pbx.received.jitterMs, 2),
          roundTripMs: opt(q.pbx.roundTripMs, 1),
          maxLossBurst: q.pbx.received.maxBurstPackets,
          codec: q.pbx.codec ?? null,
        }
      : null,
    firstAudioMs: { fromConsumer: opt(q.firstAudioMs.fromConsumer, 0), fromPbx: opt(q.firstAudioMs.fromPbx, 0) },
    concealedMs: q.jitterBuffer?.concealedMs ?? 0,
  };
}
