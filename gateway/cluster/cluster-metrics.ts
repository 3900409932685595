import { Counter, Gauge, Registry, Summary } from "prom-client";

/** How a call's webhooks left the instance that received them. */
export type RoutePath = "local" | "forwarded";
export type ForwardResult = "ok" | "failed";
export type OrphanVia = "webhook" | "sweep";

/**
 * The cluster's own figures, in a registry of their own that the gateway appends to /metrics.
 * Routing time is from the delivery's arrival to its events being handed to the call manager here,
 * or to the owner's 200 when forwarded: the difference between the two paths is what forwarding
 * adds to webhook handling.
 */
export class ClusterMetrics {
  readonly registry = new Registry();
  private readonly routing = new Summary({
    name: "gateway_cluster_webhook_routing_seconds",
    help: "From a webhook's arrival to its events reaching the call's owner, by path",
    labelNames: ["path"],
    percentiles: [0.5, 0.99],
    maxAgeSeconds: 600,
    ageBuckets: 5,
    registers: [this.registry],
  });
  private readonly hop = new Summary({
    name: "gateway_cluster_forward_hop_seconds",
    help: "One forward to the owning instance, from the POST to its 200: what forwarding adds to a webhook",
    percentiles: [0.5, 0.99],
    maxAgeSeconds: 600,
    ageBuckets: 5,
    registers: [this.registry],
  });
  private readonly forwards = new Counter({ name: "gateway_cluster_forwards_total", help: "Webhooks forwarded to another instance, by result", labelNames: ["result"], registers: [this.registry] });
  private readonly orphans = new Counter({ name: "gateway_cluster_orphans_ended_total", help: "Calls of a gone instance ended at Meta, by what found them", labelNames: ["via"], registers: [this.registry] });
  private readonly handoffs = new Counter({ name: "gateway_cluster_handoffs_total", help: "New calls handed to an instance with room", registers: [this.registry] });
  private readonly duplicates = new Counter({ name: "gateway_cluster_duplicates_total", help: "Webhook events dropped as seen by some instance before", registers: [this.registry] });
  private readonly redisUp = new Gauge({ name: "gateway_cluster_redis_up", help: "1 while Redis answers", registers: [this.registry] });

  routed(path: RoutePath, seconds: number): void {
    this.routing.observe({ path }, seconds);
  }

  forwarded(result: ForwardResult, seconds?: number): void {
    this.forwards.inc({ result });
    if (result === "ok" && seconds !== undefined) this.hop.observe(seconds);
  }

  orphanEnded(via: OrphanVia): void {
    this.orphans.inc({ via });
  }

  handedOff(): void {
    this.handoffs.inc();
  }

  duplicate(n: number): void {
    if (n > 0) this.duplicates.inc(n);
  }

  setRedisUp(up: boolean): void {
    this.redisUp.set(up ? 1 : 0);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
