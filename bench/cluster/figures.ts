/** Figures of one instance from its /metrics text, for the cluster bench. Pure. */

export const BENCH_CLUSTER_SECRET = "bench-cluster-secret-0123456789";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus exposition text as samples (comments and malformed lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line.trim());
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export interface Quantiles {
  p50: number;
  p99: number;
}

export interface RoutingFigures {
  instance: string;
  /** Calls this instance ran to their end. */
  callsTaken: number;
  /** Seconds from a webhook's arrival to the call manager here (the call is owned here). */
  local: Quantiles;
  /** Seconds from a webhook's arrival to the owner's 200 (the call is owned elsewhere). */
  forwarded: Quantiles;
  /** Seconds of the forward itself (POST to the owner's 200): what forwarding adds. */
  hop: Quantiles;
  forwards: number;
  handoffs: number;
}

const ROUTING = "gateway_cluster_webhook_routing_seconds";
const HOP = "gateway_cluster_forward_hop_seconds";

function quantiles(samples: Sample[], name: string, path?: string): Quantiles {
  const q = (which: string): number =>
    samples.find((s) => s.name === name && (path === undefined || s.labels.path === path) && s.labels.quantile === which)?.value ?? Number.NaN;
  return { p50: q("0.5"), p99: q("0.99") };
}

const sum = (samples: Sample[], name: string, where: (l: Record<string, string>) => boolean = () => true): number =>
  samples.filter((s) => s.name === name && where(s.labels)).reduce((a, s) => a + s.value, 0);

export function routingFigures(instance: string, samples: Sample[]): RoutingFigures {
  return {
    instance,
    callsTaken: sum(samples, "gateway_calls_ended_total"),
    local: quantiles(samples, ROUTING, "local"),
    forwarded: quantiles(samples, ROUTING, "forwarded"),
    hop: quantiles(samples, HOP),
    forwards: sum(samples, "gateway_cluster_forwards_total", (l) => l.result === "ok"),
    handoffs: sum(samples, "gateway_cluster_handoffs_total"),
  };
}
