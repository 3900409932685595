import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { CallManagerStats } from "./call/call-manager.js";
import type { CallEndInfo } from "./call/messenger-call.js";
import type { RegistryStats } from "./call/registry.js";
import type { WebhookResult } from "./http/server.js";
import type { GraphClientStats } from "./meta/graph-client.js";

export interface MetricsSources {
  registry: () => RegistryStats;
  manager: () => CallManagerStats;
  graph: () => GraphClientStats;
}

/**
 * Prometheus metrics. Counters that subsystems already keep in their stats snapshots are read at
 * scrape time rather than mirrored on every event, so the hot paths carry no metrics code.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly webhooks: Counter<"result">;
  private readonly callsEnded: Counter<"outcome">;
  private readonly callDuration: Histogram<"outcome">;

  constructor(sources: MetricsSources) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: "gateway_process_" });
    this.webhooks = new Counter({ name: "gateway_webhooks_total", help: "Webhook deliveries by result", labelNames: ["result"], registers: [r] });
    this.callsEnded = new Counter({ name: "gateway_calls_ended_total", help: "Calls ended, by outcome", labelNames: ["outcome"], registers: [r] });
    this.callDuration = new Histogram({
      name: "gateway_call_duration_seconds",
      help: "Call duration from connect webhook to end",
      labelNames: ["outcome"],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers: [r],
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
    this.callsEnded.inc({ outcome: info.outcome });
    this.callDuration.observe({ outcome: info.outcome }, info.durationMs / 1000);
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
