import { AggregatorRegistry, type Aggregator } from "prom-client";

/** One registry's metrics as `getMetricsAsJSON()` gives them (what crosses from a worker). */
export interface MetricJson {
  name: string;
  aggregator: Aggregator;
  values: unknown[];
}

const PROCESS_PREFIX = "gateway_process_";

/**
 * How a worker's own runtime metric is merged, or undefined when it is process-wide (CPU, memory,
 * descriptors): those come from the owner thread once, not once per thread.
 */
export function perThreadAggregator(name: string): Aggregator | undefined {
  if (!name.startsWith(PROCESS_PREFIX)) return undefined;
  const rest = name.slice(PROCESS_PREFIX.length);
  if (rest.startsWith("nodejs_eventloop_lag_min")) return "min";
  // The machine's worst loop: whichever thread's media waited longest.
  if (rest.startsWith("nodejs_eventloop_lag")) return "max";
  // Each thread has its own V8 heap and collector: the process's is their sum.
  if (rest.startsWith("nodejs_heap_") || rest.startsWith("nodejs_gc_") || rest === "nodejs_external_memory_bytes") return "sum";
  return undefined;
}

/**
 * One exposition for the machine: the owner's metrics (process figures, webhooks) and every
 * worker's calls, summed across workers; per-thread loop delays are the worst thread's.
 */
export async function mergedExposition(owner: MetricJson[], workers: MetricJson[][]): Promise<{ contentType: string; body: string }> {
  // A runtime figure merges the same way from every thread, the owner's included.
  const perThread = (m: MetricJson): MetricJson => {
    const aggregator = perThreadAggregator(m.name);
    return aggregator ? { ...m, aggregator } : m;
  };
  const fromWorkers = workers.map((list) => list.filter((m) => !m.name.startsWith(PROCESS_PREFIX) || perThreadAggregator(m.name) !== undefined).map(perThread));
  const registry = AggregatorRegistry.aggregate([owner.map(perThread), ...fromWorkers]);
  return { contentType: registry.contentType, body: await registry.metrics() };
}
