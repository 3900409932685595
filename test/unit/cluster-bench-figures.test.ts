import { describe, expect, it } from "vitest";
import { parseMetrics, routingFigures } from "../../bench/cluster/figures.js";

describe("cluster bench figures", () => {
  it("reads an instance's calls, routing quantiles per path and forwards from its /metrics", () => {
    const text = [
      "# HELP gateway_calls_ended_total Calls ended, by outcome",
      'gateway_calls_ended_total{outcome="completed-consumer-hangup"} 5',
      'gateway_calls_ended_total{outcome="accept-failed"} 1',
      'gateway_cluster_webhook_routing_seconds{quantile="0.5",path="local"} 0.002',
      'gateway_cluster_webhook_routing_seconds{quantile="0.99",path="local"} 0.01',
      'gateway_cluster_webhook_routing_seconds{quantile="0.5",path="forwarded"} 0.004',
      'gateway_cluster_webhook_routing_seconds_sum{path="forwarded"} 0.5',
      'gateway_cluster_forward_hop_seconds{quantile="0.5"} 0.001',
      'gateway_cluster_forward_hop_seconds{quantile="0.99"} 0.003',
      'gateway_cluster_forwards_total{result="ok"} 7',
      'gateway_cluster_forwards_total{result="failed"} 2',
      "gateway_cluster_handoffs_total 3",
      "not a sample line at all",
    ].join("\n");
    const f = routingFigures("gw", parseMetrics(text));
    expect(f).toEqual({ instance: "gw", callsTaken: 6, local: { p50: 0.002, p99: 0.01 }, forwarded: { p50: 0.004, p99: Number.NaN }, hop: { p50: 0.001, p99: 0.003 }, forwards: 7, handoffs: 3 });
  });
});
