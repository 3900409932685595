import type { Logger } from "pino";
import type { CallEndInfo, CallOutcome } from "../call/meta-call.js";
import { GraphApiError } from "./graph-errors.js";

/**
 * Meta's `end_call_reason` values that its metrics page names (meta-calling-api.md §1.1); the
 * page's full enum is not published, so only these are sent and the detail goes in
 * `end_call_subreason`.
 */
export type EndCallReason = "Hangup_Call" | "WebRTC_Error" | "Connection_Dropped" | "Inactive_Timeout";

/** How our outcome reads as Meta's reason: a party ending it, a media failure, a drop, a silent leg. */
export function endCallReason(outcome: CallOutcome): EndCallReason {
  switch (outcome) {
    case "media-timeout":
      return "Inactive_Timeout";
    case "consumer-gone":
      return "Connection_Dropped";
    case "media-failed":
    case "accept-failed":
    case "connect-failed":
    case "error":
      return "WebRTC_Error";
    default:
      return "Hangup_Call";
  }
}

export interface CallMetricsBody {
  platform: "messenger";
  call_id: string;
  end_call_reason: EndCallReason;
  end_call_subreason: string;
  /** Unix seconds. */
  call_ended_time: number;
  first_audio_packet_received_time?: number;
  audio_stats: {
    call_ended_time: number;
    jitter_sec: number;
    packets_lost: number;
    packets_received: number;
    round_trip_time_sec: number;
    jitter_buffer_delay_sec: number;
    concealed_samples: number;
    silent_concealed_samples: number;
    total_samples_duration_sec: number;
  };
  [key: string]: unknown;
}

/** Samples per ms on Opus's 48 kHz clock, the unit WebRTC's sample counts use for Opus. */
const SAMPLES_PER_MS = 48;
const SUBREASON_MAX = 200;

/**
 * The report for one ended call, with WebRTC stats semantics (what Meta's script reads from an
 * RTCStatsReport): the consumer's audio as it reached us (jitter, lost, received), the RTCP round
 * trip, the jitter-buffer delay summed over emitted samples, concealed and silence samples on the
 * 48 kHz clock. Names follow the page's sample body (`_sec`). A round trip never measured is 0.
 */
export function callMetricsBody(info: CallEndInfo): CallMetricsBody {
  const q = info.quality;
  const received = q.meta.received;
  const jb = q.jitterBuffer;
  const endedSec = Math.floor(info.endedAt / 1000);
  const firstAudio = q.firstAudioMs.fromConsumer;
  const concealed = Math.round((jb?.concealedMs ?? 0) * SAMPLES_PER_MS);
  const silent = Math.round((jb?.silenceMs ?? 0) * SAMPLES_PER_MS);
  const emitted = jb ? jb.emittedSamples : received.packetsReceived * 20 * SAMPLES_PER_MS;
  const body: CallMetricsBody = {
    platform: "messenger",
    call_id: info.callId,
    end_call_reason: endCallReason(info.outcome),
    end_call_subreason: `${info.outcome}: ${info.detail}`.slice(0, SUBREASON_MAX),
    call_ended_time: endedSec,
    audio_stats: {
      call_ended_time: endedSec,
      jitter_sec: round(received.jitterMs / 1000, 6),
      packets_lost: received.packetsLost,
      packets_received: received.packetsReceived,
      round_trip_time_sec: round((q.meta.roundTripMs ?? 0) / 1000, 6),
      jitter_buffer_delay_sec: round(((jb?.meanDelayMs ?? 0) / 1000) * (jb?.emittedSamples ?? 0), 3),
      concealed_samples: concealed,
      silent_concealed_samples: silent,
      total_samples_duration_sec: round((emitted + concealed + silent) / (SAMPLES_PER_MS * 1000), 3),
    },
  };
  if (firstAudio !== undefined) body.first_audio_packet_received_time = Math.floor((info.startedAt + firstAudio) / 1000);
  return body;
}

export interface CallMetricsReporterOptions {
  /** Posts one report to the call's Page (`pageId`). */
  send: (body: CallMetricsBody, pageId: string) => Promise<void>;
  log: Logger;
  maxPending?: number;
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  onResult?: (result: "sent" | "retried" | "failed" | "dropped") => void;
}

/**
 * Sends each ended call's report once, off the call path: queued, sent in the background, retried
 * with exponential back-off while the failure is transient. An answer saying the report is already
 * there (a retry after a timeout that had landed) counts as sent.
 */
export class CallMetricsReporter {
  private readonly pending = new Set<Promise<void>>();
  /** Back-off waits in progress, with the way to cut them short at shutdown. */
  private readonly sleeping = new Map<NodeJS.Timeout, (completed: boolean) => void>();
  private readonly reported = new Set<string>();
  private closed = false;
  private waiting = 0;

  constructor(private readonly o: CallMetricsReporterOptions) {}

  /**
   * Reports a Messenger call that reached Meta (its id is Meta's, `c_…`); others have nothing to
   * report (WhatsApp has no call_metrics API).
   */
  report(info: CallEndInfo): void {
    if (this.closed || info.platform !== "messenger" || !info.callId.startsWith("c_") || this.reported.has(info.callId)) return;
    if (this.waiting >= (this.o.maxPending ?? 1000)) {
      this.o.onResult?.("dropped");
      this.o.log.warn({ callId: info.callId }, "call_metrics not sent: too many reports pending");
      return;
    }
    this.reported.add(info.callId);
    // A bounded memory of what was reported: enough to stop a duplicate end record, not a history.
    if (this.reported.size > 10_000) this.reported.delete(this.reported.values().next().value!);
    this.waiting++;
    const body = callMetricsBody(info);
    const run = this.attempt(body, info.businessId, 1).finally(() => {
      this.waiting--;
      this.pending.delete(run);
    });
    this.pending.add(run);
  }

  /** Waits up to `graceMs` for reports in flight, then drops retries still scheduled. */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    const until = Date.now() + graceMs;
    while (this.waiting > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const [t, wake] of this.sleeping) {
      clearTimeout(t);
      wake(false);
    }
    this.sleeping.clear();
  }

  /** Resolves true after `ms`, or false when shutdown cut the wait short. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.sleeping.delete(t);
        resolve(true);
      }, ms);
      t.unref();
      this.sleeping.set(t, resolve);
    });
  }

  private async attempt(body: CallMetricsBody, pageId: string, attempt: number): Promise<void> {
    const { log } = this.o;
    try {
      await this.o.send(body, pageId);
      this.o.onResult?.("sent");
      log.info({ callId: body.call_id, attempt }, "call_metrics sent");
      return;
    } catch (err) {
      const g = err instanceof GraphApiError ? err : undefined;
      if (attempt > 1 && g?.kind === "graph" && /already/i.test(g.message)) {
        this.o.onResult?.("sent");
        log.info({ callId: body.call_id, attempt }, "call_metrics already recorded by an earlier attempt");
        return;
      }
      const transient = g ? g.isTransient : false;
      if (!transient || attempt >= (this.o.maxAttempts ?? 5) || this.closed) {
        this.o.onResult?.("failed");
        log.warn({ callId: body.call_id, attempt, err: g ? { kind: g.kind, code: g.code, message: g.message } : String(err) }, "call_metrics not sent");
        return;
      }
      this.o.onResult?.("retried");
      const delay = Math.min(this.o.maxBackoffMs ?? 60_000, (this.o.initialBackoffMs ?? 1000) * 2 ** (attempt - 1));
      log.debug({ callId: body.call_id, attempt, retryInMs: delay, kind: g?.kind }, "call_metrics failed transiently; retrying");
      if (!(await this.sleep(delay))) {
        this.o.onResult?.("dropped");
        log.warn({ callId: body.call_id, attempt }, "call_metrics not sent before shutdown");
        return;
      }
      await this.attempt(body, pageId, attempt + 1);
    }
  }
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
