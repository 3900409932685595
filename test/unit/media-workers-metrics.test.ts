import { Counter, Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { runtimeMetrics, webhookCounter } from "../../gateway/metrics.js";
import { mergedExposition, perThreadAggregator, type MetricJson } from "../../gateway/workers/metrics-merge.js";

/** A worker's registry as the gateway builds it: runtime metrics, webhooks, and call figures. */
async function workerMetrics(active: number, ended: number, loopMaxS: number): Promise<MetricJson[]> {
  const r = new Registry();
  runtimeMetrics(r);
  webhookCounter(r);
  new Gauge({ name: "gateway_calls_active", help: "live calls", registers: [r] }).set(active);
  new Counter({ name: "gateway_calls_ended_total", help: "ended", labelNames: ["outcome"], registers: [r] }).inc({ outcome: "completed" }, ended);
  const json = (await r.getMetricsAsJSON()) as MetricJson[];
  // The loop delay of this thread, as if it had been measured.
  const lag = json.find((m) => m.name === "gateway_process_nodejs_eventloop_lag_max_seconds")!;
  lag.values = [{ value: loopMaxS, labels: {} }];
  return json;
}

function sample(text: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text)?.[1] ?? NaN);
}

describe("one /metrics for the process and its media workers", () => {
  it("sums call figures over workers, takes the worst thread's loop delay, and process figures once", async () => {
    const owner = new Registry();
    runtimeMetrics(owner);
    webhookCounter(owner).inc({ result: "accepted" }, 7);
    const ownerJson = (await owner.getMetricsAsJSON()) as MetricJson[];
    ownerJson.find((m) => m.name === "gateway_process_nodejs_eventloop_lag_max_seconds")!.values = [{ value: 0.004, labels: {} }];
    const { body } = await mergedExposition(ownerJson, [await workerMetrics(3, 5, 0.012), await workerMetrics(4, 2, 0.031)]);
    expect(sample(body, "gateway_calls_active")).toBe(7);
    expect(Number(/^gateway_calls_ended_total\{outcome="completed"\} (\d+)/m.exec(body)?.[1])).toBe(7);
    expect(Number(/^gateway_webhooks_total\{result="accepted"\} (\d+)/m.exec(body)?.[1])).toBe(7);
    expect(sample(body, "gateway_process_nodejs_eventloop_lag_max_seconds")).toBe(0.031);
    // The process's CPU and memory are the owner's figures alone, not three times over.
    const ownerCpu = ownerJson.find((m) => m.name === "gateway_process_process_cpu_seconds_total")!.values as { value: number }[];
    expect(sample(body, "gateway_process_process_cpu_seconds_total")).toBeCloseTo(ownerCpu[0]!.value, 6);
    expect(body.match(/^gateway_process_process_resident_memory_bytes /gm)).toHaveLength(1);
  });

  it("says how each runtime figure merges", () => {
    expect(perThreadAggregator("gateway_process_nodejs_eventloop_lag_max_seconds")).toBe("max");
    expect(perThreadAggregator("gateway_process_nodejs_eventloop_lag_p99_seconds")).toBe("max");
    expect(perThreadAggregator("gateway_process_nodejs_eventloop_lag_min_seconds")).toBe("min");
    expect(perThreadAggregator("gateway_process_nodejs_heap_size_used_bytes")).toBe("sum");
    expect(perThreadAggregator("gateway_process_process_cpu_seconds_total")).toBeUndefined();
    expect(perThreadAggregator("gateway_calls_active")).toBeUndefined();
  });
});
