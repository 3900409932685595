import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { CallManagerStats } from "./call/call-manager.js";
import type { CallEndInfo } from "./call/meta-call.js";
import type { RegistryStats } from "./call/registry.js";
import type { WebhookResult } from "./http/server.js";
import type { GraphAction } from "./meta/graph-errors.js";
import type { GraphClientStats } from "./meta/graph-client.js";
import type { SetupPhase } from "./observe/call-monitor.js";
import type { LoadSnapshot } from "./observe/load-monitor.js";

export interface MetricsSources {
  registry: () => RegistryStats;
  manager: () => CallManagerStats;
  graph: () => GraphClientStats;
  /** Live calls by direction and named state. */
  callsByState?: () => { direction: string; state: string; count: number }[];
  /** Integrator events waiting for delivery. */
  eventsQueued?: () => number;
  /** ffmpeg video transcoders of this process. */
  transcoders?: () => { running: number; started: number; cpuSeconds: number };
}

export type EventDeliveryResult = "delivered" | "retried" | "failed" | "dropped";
export type CallMetricsResult = "sent" | "retried" | "failed" | "dropped";

const PROCESS_PREFIX = "gateway_process_";

/** What a process serving HTTP counts of Meta's webhooks (the gateway, or a worker pool's owner). */
export function webhookCounter(r: Registry): Counter<"result"> {
  return new Counter({ name: "gateway_webhooks_total", help: "Webhook deliveries by result", labelNames: ["result"], registers: [r] });
}

/** The runtime's own figures (CPU, memory, event loop, GC), under the gateway's prefix. */
export function runtimeMetrics(r: Registry): void {
  collectDefaultMetrics({ register: r, prefix: PROCESS_PREFIX });
}

/** The machine's load as the process owner samples it each second, and the admission verdict from it. */
export function loadMetrics(r: Registry, load: () => LoadSnapshot): void {
  new Gauge({
    name: "gateway_media_loop_delay_seconds",
    help: "How late the media threads' event loops ran a 10 ms timer: p99 over the last second, worst thread",
    registers: [r],
    collect() {
      this.set(load().loopDelayMs / 1000);
    },
  });
  new Gauge({
    name: "gateway_idle_cpu_ratio",
    help: "Idle share of all cores' time over the last second",
    registers: [r],
    collect() {
      this.set(load().idleCpuPercent / 100);
    },
  });
  new Gauge({
    name: "gateway_overloaded",
    help: "1 while new calls are refused for load (OVERLOAD_LOOP_DELAY_MS, OVERLOAD_MIN_IDLE_CPU), else 0",
    registers: [r],
    collect() {
      this.set(load().state === "overloaded" ? 1 : 0);
    },
  });
  let reported = 0;
  new Counter({
    name: "gateway_overloads_total",
    help: "Times the load went over a limit and new calls began to be refused",
    registers: [r],
    collect() {
      const n = load().overloads;
      if (n > reported) this.inc(n - reported);
      reported = Math.max(reported, n);
    },
  });
}

const MOS_BUCKETS = [1, 1.5, 2, 2.5, 3, 3.5, 3.8, 4, 4.2, 4.3, 4.4, 4.5];
const LOSS_BUCKETS = [0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1];
const SECONDS_SMALL = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1];

/**
 * Prometheus metrics. Counters that subsystems already keep in their stats snapshots are read at
 * scrape time rather than mirrored on every event, so the hot paths carry no metrics code.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly webhooks: Counter<"result">;
  private readonly callsEnded: Counter<"outcome" | "platform">;
  private readonly callDuration: Histogram<"outcome">;
  private readonly setup: Histogram<"direction" | "phase">;
  private readonly mos: Histogram<"path">;
  private readonly loss: Histogram<"leg" | "stream">;
  private readonly jitter: Histogram<"leg">;
  private readonly roundTrip: Histogram<"leg">;
  private readonly graphDuration: Histogram<"action" | "result">;
  private readonly eventDeliveries: Counter<"result">;
  private readonly callMetricsReports: Counter<"result">;

  constructor(sources: MetricsSources) {
    const r = this.registry;
    runtimeMetrics(r);
    this.webhooks = webhookCounter(r);
    this.callsEnded = new Counter({ name: "gateway_calls_ended_total", help: "Calls ended, by outcome and platform", labelNames: ["outcome", "platform"], registers: [r] });
    this.callDuration = new Histogram({
      name: "gateway_call_duration_seconds",
      help: "Call duration from connect webhook to end",
      labelNames: ["outcome"],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers: [r],
    });
    this.setup = new Histogram({
      name: "gateway_call_setup_seconds",
      help: "Call setup phases: webhook to INVITE, PBX answer to accept answered, accept to media (consumer calls); agent INVITE to connect answered, pickup to media (agent calls)",
      labelNames: ["direction", "phase"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [r],
    });
    this.mos = new Histogram({
      name: "gateway_call_mos",
      help: "E-model (ITU-T G.107) MOS estimate at call end, per listening direction, for calls whose media flowed",
      labelNames: ["path"],
      buckets: MOS_BUCKETS,
      registers: [r],
    });
    this.loss = new Histogram({
      name: "gateway_call_packet_loss_ratio",
      help: "Audio packet loss over the call, per leg: received = measured by the gateway, sent = as the far end reported it (RTCP)",
      labelNames: ["leg", "stream"],
      buckets: LOSS_BUCKETS,
      registers: [r],
    });
    this.jitter = new Histogram({
      name: "gateway_call_jitter_seconds",
      help: "Interarrival jitter (RFC 3550) of the audio received on each leg, at call end",
      labelNames: ["leg"],
      buckets: SECONDS_SMALL,
      registers: [r],
    });
    this.roundTrip = new Histogram({
      name: "gateway_call_round_trip_seconds",
      help: "RTCP round-trip time on each leg, at call end",
      labelNames: ["leg"],
      buckets: SECONDS_SMALL,
      registers: [r],
    });
    this.graphDuration = new Histogram({
      name: "gateway_graph_request_duration_seconds",
      help: "Graph API request latency by action and result",
      labelNames: ["action", "result"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.eventDeliveries = new Counter({
      name: "gateway_event_deliveries_total",
      help: "Integrator event deliveries (EVENTS_URL) by result: delivered, retried (an attempt failed and was retried), failed (given up), dropped (queue full or shutdown)",
      labelNames: ["result"],
      registers: [r],
    });
    this.callMetricsReports = new Counter({
      name: "gateway_call_metrics_reports_total",
      help: "Meta call_metrics reports by result: sent, retried, failed (given up), dropped (queue full or shutdown)",
      labelNames: ["result"],
      registers: [r],
    });
    new Gauge({
      name: "gateway_calls_by_state",
      help: "Live calls by direction and named state",
      labelNames: ["direction", "state"],
      registers: [r],
      collect() {
        this.reset();
        for (const c of sources.callsByState?.() ?? []) this.set({ direction: c.direction, state: c.state }, c.count);
      },
    });
    new Gauge({
      name: "gateway_transcoder_processes",
      help: "ffmpeg video transcoder processes running",
      registers: [r],
      collect() {
        this.set(sources.transcoders?.().running ?? 0);
      },
    });
    // Totals kept by the transcoders themselves, turned into counters at scrape time.
    let reportedStarts = 0;
    let reportedCpu = 0;
    new Counter({
      name: "gateway_transcoder_processes_started_total",
      help: "ffmpeg video transcoder processes started (restarts included)",
      registers: [r],
      collect() {
        const started = sources.transcoders?.().started ?? 0;
        if (started > reportedStarts) this.inc(started - reportedStarts);
        reportedStarts = Math.max(reportedStarts, started);
      },
    });
    new Counter({
      name: "gateway_transcoder_cpu_seconds_total",
      help: "CPU time of ffmpeg video transcoder processes (user + system, read from /proc at scrape time and when they stop)",
      registers: [r],
      collect() {
        const cpu = sources.transcoders?.().cpuSeconds ?? 0;
        if (cpu > reportedCpu) this.inc(cpu - reportedCpu);
        reportedCpu = Math.max(reportedCpu, cpu);
      },
    });
    new Gauge({
      name: "gateway_events_queued",
      help: "Integrator events waiting for delivery",
      registers: [r],
      collect() {
        this.set(sources.eventsQueued?.() ?? 0);
      },
    });
    new Gauge({
      name: "gateway_calls_active",
      help: "Calls in progress",
      registers: [r],
      collect() {
        this.set(sources.registry().active);
      },
    });
    new Gauge({
      name: "gateway_webhook_events_dropped",
      help: "Webhook events dropped, by reason (cumulative)",
      labelNames: ["reason"],
      registers: [r],
      collect() {
        const s = sources.manager();
        this.set({ reason: "duplicate" }, s.duplicatesDropped);
        this.set({ reason: "stale" }, s.staleDropped);
        this.set({ reason: "unknown_call" }, s.unknownCallEvents);
        this.set({ reason: "other_page" }, s.otherPageDropped);
        this.set({ reason: "admission" }, s.admissionRejected);
        this.set({ reason: "sip_refused" }, s.sipRefused);
      },
    });
    new Gauge({
      name: "gateway_sip_transfers",
      help: "Transfers asked by the PBX (REFER), by result (cumulative)",
      labelNames: ["result"],
      registers: [r],
      collect() {
        const t = sources.manager().transfers;
        this.set({ result: "succeeded" }, t.succeeded);
        this.set({ result: "failed" }, t.failed);
        this.set({ result: "refused" }, t.refused);
      },
    });
    new Gauge({
      name: "gateway_sip_holds",
      help: "Times a PBX put a call on hold, counted at call end (cumulative)",
      registers: [r],
      collect() {
        this.set(sources.manager().holds);
      },
    });
    new Gauge({
      name: "gateway_sip_session_refreshes",
      help: "Session refreshes (RFC 4028) that succeeded, by either side, counted at call end (cumulative)",
      registers: [r],
      collect() {
        this.set(sources.manager().sessionRefreshes);
      },
    });
    new Gauge({
      name: "gateway_graph_requests",
      help: "Graph API requests by action and result (cumulative)",
      labelNames: ["action", "result"],
      registers: [r],
      collect() {
        const s = sources.graph();
        for (const [action, n] of Object.entries(s.requests)) this.set({ action, result: "sent" }, n);
        for (const [action, n] of Object.entries(s.errors)) this.set({ action, result: "error" }, n);
      },
    });
    new Gauge({
      name: "gateway_graph_latency_seconds_avg",
      // Media workers each report their own mean; their merged figure is the mean of those.
      aggregator: "average",
      help: "Mean Graph API latency by action",
      labelNames: ["action"],
      registers: [r],
      collect() {
        const s = sources.graph();
        for (const [action, l] of Object.entries(s.latencyMs)) {
          if (l.count > 0) this.set({ action }, l.sum / l.count / 1000);
        }
      },
    });
  }

  webhook(result: WebhookResult): void {
    this.webhooks.inc({ result });
  }

  callEnded(info: CallEndInfo): void {
    this.callsEnded.inc({ outcome: info.outcome, platform: info.platform });
    this.callDuration.observe({ outcome: info.outcome }, info.durationMs / 1000);
    // A call that never carried audio has no quality to speak of; it would only pull the figures toward 4.4.
    if (!info.mediaFlowed) return;
    const q = info.quality;
    this.mos.observe({ path: "consumer_to_agent" }, q.consumerToAgent.mos);
    this.mos.observe({ path: "agent_to_consumer" }, q.agentToConsumer.mos);
    const legs = [["meta", q.meta], ["pbx", q.pbx]] as const;
    for (const [leg, l] of legs) {
      if (!l) continue;
      if (l.received.packetsExpected > 0) {
        this.loss.observe({ leg, stream: "received" }, l.received.lossRatio);
        this.jitter.observe({ leg }, l.received.jitterMs / 1000);
      }
      if (l.sent.lossRatio !== undefined) this.loss.observe({ leg, stream: "sent" }, l.sent.lossRatio);
      if (l.roundTripMs !== undefined) this.roundTrip.observe({ leg }, l.roundTripMs / 1000);
    }
  }

  setupPhase(direction: "inbound" | "outbound", phase: SetupPhase, seconds: number): void {
    this.setup.observe({ direction, phase }, seconds);
  }

  graphRequest(action: GraphAction, seconds: number, ok: boolean): void {
    this.graphDuration.observe({ action, result: ok ? "ok" : "error" }, seconds);
  }

  eventDelivery(result: EventDeliveryResult): void {
    this.eventDeliveries.inc({ result });
  }

  callMetricsReport(result: CallMetricsResult): void {
    this.callMetricsReports.inc({ result });
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
