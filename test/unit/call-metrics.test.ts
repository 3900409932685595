import { describe, expect, it } from "vitest";
import type { CallEndInfo, CallOutcome } from "../../gateway/call/meta-call.js";
import { callMetricsBody, endCallReason } from "../../gateway/meta/call-metrics.js";
import { assessCallQuality } from "../../gateway/quality/call-quality.js";
import { StreamReception } from "../../gateway/quality/reception.js";
import { validateCallMetrics, type ReportedCallFacts } from "../../sim/call-metrics.js";

const STARTED = Date.UTC(2026, 5, 1, 12, 0, 0);
const ENDED = STARTED + 95_500;

function endInfo(o: { outcome?: CallOutcome; lostEvery?: number; pbx?: boolean } = {}): CallEndInfo {
  const r = new StreamReception(48000);
  for (let seq = 0; seq < 4000; seq++) if (o.lostEvery === undefined || seq % o.lostEvery !== 25) r.onPacket(1, seq, seq * 960, seq * 20);
  const quality = assessCallQuality({
    startedAt: STARTED,
    meta: { received: r.snapshot(), packetsSent: 4000, remoteReport: undefined, roundTripMs: 84.5, firstAudioInAt: STARTED + 2300, firstAudioOutAt: STARTED + 2250 },
    pbx: undefined,
    toPbx: o.pbx === false ? undefined : { jitterBufferDelayMs: 2, emittedSamples: 3900 * 960, concealedMs: 2000, concealments: 100, silenceMs: 400 },
    latencyToPbx: undefined,
    latencyToMeta: undefined,
  });
  return { callId: "c_abc123", platform: "messenger", businessId: "1029384756", outcome: o.outcome ?? "completed-consumer-hangup", detail: "terminate webhook (Completed)", durationMs: ENDED - STARTED, mediaFlowed: true, startedAt: STARTED, endedAt: ENDED, quality };
}

const facts = (o: Partial<ReportedCallFacts> = {}): ReportedCallFacts => ({ startedAt: STARTED, endedAt: ENDED - 200, alreadyReported: false, ...o });

describe("call_metrics body (gateway side)", () => {
  it("maps outcomes onto the reasons Meta's page names", () => {
    expect(endCallReason("completed-consumer-hangup")).toBe("Hangup_Call");
    expect(endCallReason("target-busy")).toBe("Hangup_Call");
    expect(endCallReason("media-timeout")).toBe("Inactive_Timeout");
    expect(endCallReason("consumer-gone")).toBe("Connection_Dropped");
    expect(endCallReason("media-failed")).toBe("WebRTC_Error");
    expect(endCallReason("accept-failed")).toBe("WebRTC_Error");
  });

  it("reports the consumer's audio with WebRTC stats semantics, times in Unix seconds", () => {
    const body = callMetricsBody(endInfo({ lostEvery: 50 }));
    expect(body).toMatchObject({
      platform: "messenger",
      call_id: "c_abc123",
      end_call_reason: "Hangup_Call",
      end_call_subreason: "completed-consumer-hangup: terminate webhook (Completed)",
      call_ended_time: Math.floor(ENDED / 1000),
      first_audio_packet_received_time: Math.floor((STARTED + 2300) / 1000),
    });
    const s = body.audio_stats;
    expect(s.call_ended_time).toBe(body.call_ended_time);
    expect(s.packets_received).toBe(3920);
    expect(s.packets_lost).toBe(80);
    expect(s.round_trip_time_sec).toBeCloseTo(0.0845, 6);
    // 2 ms mean over 3 744 000 emitted samples: 7 488 sample-seconds, as RTCStats' jitterBufferDelay sums it.
    expect(s.jitter_buffer_delay_sec).toBeCloseTo(0.002 * 3900 * 960, 3);
    expect(s.concealed_samples).toBe(2000 * 48);
    expect(s.silent_concealed_samples).toBe(400 * 48);
    expect(s.total_samples_duration_sec).toBeCloseTo(3900 * 0.02 + 2 + 0.4, 3);
    expect(Number.isInteger(s.packets_lost) && Number.isInteger(s.concealed_samples)).toBe(true);
  });

  it("passes the simulator's check of Meta's documented fields", () => {
    const body = callMetricsBody(endInfo());
    const report = validateCallMetrics(JSON.parse(JSON.stringify(body)), facts(), ENDED + 1000);
    expect(report.endCallReason).toBe("Hangup_Call");
    expect(report.audioStats.packets_received).toBe(4000);
    // The echo target has no jitter buffer: the duration comes from the packets received.
    const echo = callMetricsBody(endInfo({ pbx: false }));
    expect(echo.audio_stats.total_samples_duration_sec).toBeCloseTo(80, 3);
    expect(() => validateCallMetrics(echo, facts(), ENDED + 1000)).not.toThrow();
  });
});

describe("call_metrics validation (simulator side)", () => {
  const good = (): Record<string, unknown> => JSON.parse(JSON.stringify(callMetricsBody(endInfo()))) as Record<string, unknown>;
  const stats = (b: Record<string, unknown>): Record<string, unknown> => b["audio_stats"] as Record<string, unknown>;
  const refused = (b: unknown, f = facts(), now = ENDED + 1000): string => {
    try {
      validateCallMetrics(b, f, now);
    } catch (err) {
      return (err as Error).message;
    }
    return "accepted";
  };

  it("takes either spelling the page uses for the four doubly-named values, but not both", () => {
    const b = good();
    const s = stats(b);
    s["jitter"] = s["jitter_sec"];
    delete s["jitter_sec"];
    s["round_trip_time_ms"] = 84.5;
    delete s["round_trip_time_sec"];
    expect(refused(b)).toBe("accepted");
    s["jitter_sec"] = 0.01;
    expect(refused(b)).toMatch(/both jitter and jitter_sec/);
  });

  it("refuses a report before the call ended, a second one, and one after 24 h", () => {
    expect(refused(good(), facts({ endedAt: undefined }))).toMatch(/after the call has ended/);
    expect(refused(good(), facts({ alreadyReported: true }))).toMatch(/already submitted/);
    expect(refused(good(), facts(), ENDED + 25 * 3600 * 1000)).toMatch(/within 24 hours/);
  });

  it("refuses missing, mistyped, unknown and implausible fields", () => {
    const cases: [string, (b: Record<string, unknown>) => void, RegExp][] = [
      ["platform", (b) => (b["platform"] = "whatsapp"), /platform/],
      ["reason", (b) => (b["end_call_reason"] = "hangup"), /end_call_reason must be one of/],
      ["ms timestamp", (b) => (b["call_ended_time"] = ENDED), /milliseconds/],
      ["wrong end", (b) => (b["call_ended_time"] = Math.floor(ENDED / 1000) - 60), /not when the call ended/],
      ["first audio after end", (b) => (b["first_audio_packet_received_time"] = Math.floor(ENDED / 1000) + 60), /within the call/],
      ["unknown param", (b) => (b["call_duration"] = 1), /Unknown param call_duration/],
      ["stats missing", (b) => delete stats(b)["packets_lost"], /audio_stats.packets_lost is required/],
      ["fractional count", (b) => (stats(b)["concealed_samples"] = 1.5), /concealed_samples must be a non-negative integer/],
      ["negative", (b) => (stats(b)["jitter_sec"] = -1), /non-negative/],
      ["unknown stat", (b) => (stats(b)["mos"] = 4.2), /Unknown audio_stats field mos/],
      ["stats end differs", (b) => (stats(b)["call_ended_time"] = 1), /differs/],
    ];
    for (const [label, change, why] of cases) {
      const b = good();
      change(b);
      expect(refused(b), label).toMatch(why);
    }
  });
});
