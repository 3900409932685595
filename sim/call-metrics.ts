import { graphErrors, type GraphApiError } from "./graph-errors.js";

/**
 * `POST /{page-id}/call_metrics` as Meta's metrics page describes it (meta-calling-api.md §1.1):
 * `platform` (messenger), `call_id`, `end_call_reason` (enum), `end_call_subreason` (free text),
 * `call_ended_time` and `first_audio_packet_received_time` (Unix timestamps), and `audio_stats` with
 * call_ended_time, jitter, packets_lost, packets_received, round-trip time, jitter-buffer delay,
 * concealed_samples, silent_concealed_samples and total samples duration. The page spells four of
 * those two ways (its list: `jitter`, `…_ms`; its sample body: `jitter_sec`, `…_sec`): either
 * spelling is taken, exactly one per value. Allowed once per call, after it ended, within 24 h.
 */

/** The reasons the page names; its full enum is not published, so anything else is refused as a likely typo. */
export const END_CALL_REASONS = ["Hangup_Call", "WebRTC_Error", "Connection_Dropped", "Inactive_Timeout"] as const;
export type EndCallReason = (typeof END_CALL_REASONS)[number];

const TOP_LEVEL_KEYS = new Set(["platform", "call_id", "end_call_reason", "end_call_subreason", "call_ended_time", "first_audio_packet_received_time", "audio_stats", "access_token"]);

/** Each audio_stats value: its accepted spellings, and whether it must be a whole number. */
const AUDIO_STATS: readonly { names: readonly string[]; integer: boolean }[] = [
  { names: ["call_ended_time"], integer: true },
  { names: ["jitter", "jitter_sec"], integer: false },
  { names: ["packets_lost"], integer: true },
  { names: ["packets_received"], integer: true },
  { names: ["round_trip_time_ms", "round_trip_time_sec"], integer: false },
  { names: ["jitter_buffer_delay_ms", "jitter_buffer_delay_sec"], integer: false },
  { names: ["concealed_samples"], integer: true },
  { names: ["silent_concealed_samples"], integer: true },
  { names: ["total_samples_duration_ms", "total_samples_duration_sec"], integer: false },
];
const AUDIO_STATS_KEYS = new Set(AUDIO_STATS.flatMap((s) => s.names));

export interface CallMetricsReport {
  callId: string;
  endCallReason: EndCallReason;
  endCallSubreason: string | undefined;
  /** Unix seconds. */
  callEndedTime: number;
  firstAudioPacketReceivedTime: number | undefined;
  /** audio_stats as sent. */
  audioStats: Record<string, number>;
  receivedAt: number;
}

/** What the simulator knows of the call the report is about. */
export interface ReportedCallFacts {
  startedAt: number;
  /** When it ended at Meta; undefined while it goes on. */
  endedAt: number | undefined;
  alreadyReported: boolean;
}

const DAY_MS = 24 * 3600 * 1000;
/** Clock slack between the business's timestamps and ours, in seconds. */
const SLACK_S = 5;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function unixSeconds(body: Record<string, unknown>, key: string, where = ""): number {
  const v = body[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw graphErrors.invalidParameter(`Param ${where}${key} must be a Unix timestamp (whole seconds)`);
  // Milliseconds are the likely mistake: a timestamp past the year 5000 is one.
  if (v > 100_000_000_000) throw graphErrors.invalidParameter(`Param ${where}${key} looks like milliseconds, not a Unix timestamp`);
  return v;
}

/** The call id named by a body, before anything else is checked (to find the call). */
export function callIdOf(body: unknown): string {
  if (!isRecord(body)) throw graphErrors.invalidParameter("The request body must be a JSON object");
  const id = body["call_id"];
  if (typeof id !== "string" || id.trim().length === 0) throw graphErrors.invalidParameter("Param call_id is required");
  return id;
}

/** Checks a report against the documented fields and the call's facts; the Graph error Meta would answer, or the report. */
export function validateCallMetrics(body: unknown, call: ReportedCallFacts, now = Date.now()): CallMetricsReport {
  const callId = callIdOf(body);
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!TOP_LEVEL_KEYS.has(key)) throw graphErrors.invalidParameter(`Unknown param ${key}`);
  if (b["platform"] !== "messenger") throw graphErrors.invalidParameter(`Param platform must be "messenger", got ${JSON.stringify(b["platform"]) ?? "nothing"}`);
  if (call.endedAt === undefined) throw refusal("Call metrics can only be submitted after the call has ended");
  if (call.alreadyReported) throw refusal("Call metrics were already submitted for this call");
  if (now - call.endedAt > DAY_MS) throw refusal("Call metrics must be submitted within 24 hours of the call");
  const reason = b["end_call_reason"];
  if (typeof reason !== "string" || !(END_CALL_REASONS as readonly string[]).includes(reason)) {
    throw graphErrors.invalidParameter(`Param end_call_reason must be one of {${END_CALL_REASONS.join(", ")}}, got ${JSON.stringify(reason) ?? "nothing"}`);
  }
  const sub = b["end_call_subreason"];
  if (sub !== undefined && typeof sub !== "string") throw graphErrors.invalidParameter("Param end_call_subreason must be a string");
  const startS = Math.floor(call.startedAt / 1000);
  const endS = Math.ceil(call.endedAt / 1000);
  const ended = unixSeconds(b, "call_ended_time");
  // The business's end (our terminate answered, or its terminate webhook) is close to Meta's.
  if (ended < startS - SLACK_S || Math.abs(ended - endS) > SLACK_S) {
    throw graphErrors.invalidParameter(`Param call_ended_time ${ended} is not when the call ended (${endS})`);
  }
  let firstAudio: number | undefined;
  if (b["first_audio_packet_received_time"] !== undefined) {
    firstAudio = unixSeconds(b, "first_audio_packet_received_time");
    if (firstAudio < startS - SLACK_S || firstAudio > ended + SLACK_S) {
      throw graphErrors.invalidParameter("Param first_audio_packet_received_time must fall within the call");
    }
  }
  const stats = b["audio_stats"];
  if (!isRecord(stats)) throw graphErrors.invalidParameter("Param audio_stats must be an object");
  for (const key of Object.keys(stats)) if (!AUDIO_STATS_KEYS.has(key)) throw graphErrors.invalidParameter(`Unknown audio_stats field ${key}`);
  const audioStats: Record<string, number> = {};
  for (const spec of AUDIO_STATS) {
    const present = spec.names.filter((n) => stats[n] !== undefined);
    if (present.length === 0) throw graphErrors.invalidParameter(`Param audio_stats.${spec.names.join(" or audio_stats.")} is required`);
    if (present.length > 1) throw graphErrors.invalidParameter(`Param audio_stats has both ${present.join(" and ")}`);
    const name = present[0]!;
    const v = stats[name];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (spec.integer && !Number.isInteger(v))) {
      throw graphErrors.invalidParameter(`Param audio_stats.${name} must be a non-negative ${spec.integer ? "integer" : "number"}`);
    }
    audioStats[name] = v;
  }
  if (audioStats["call_ended_time"] !== ended) throw graphErrors.invalidParameter("Param audio_stats.call_ended_time differs from call_ended_time");
  return {
    callId,
    endCallReason: reason as EndCallReason,
    endCallSubreason: sub as string | undefined,
    callEndedTime: ended,
    firstAudioPacketReceivedTime: firstAudio,
    audioStats,
    receivedAt: now,
  };
}

function refusal(message: string): GraphApiError {
  return graphErrors.invalidParameter(message);
}
