import { stateOf, type InstanceLoad } from "../cluster/admission.js";

/**
 * What `/readyz` is decided from, the same for a single-thread gateway and one with media workers:
 * the load the instance publishes to its cluster, and the rest.
 */
export interface ReadinessFacts extends InstanceLoad {
  /** The SIP side listens (and, with a registrar, is registered). */
  sipReady: boolean;
  /** Redis answers, when the instance is in a cluster. */
  clusterHealthy: boolean;
  /** Media worker threads not up (starting again after a crash); empty without workers. */
  workersDown: readonly number[];
  /** Why the machine has no room for another call's media (OVERLOAD_*), while `overloaded`. */
  overloadReason: string | undefined;
}

/**
 * Why the instance takes no new calls now, or undefined when it does. The reason is `/readyz`'s
 * body, so an operator (or a balancer's log) sees which condition holds without reading metrics.
 */
export function notReadyReason(f: ReadinessFacts): string | undefined {
  // The load's part of the verdict is the one the cluster publishes for this instance.
  const load = stateOf(f);
  if (load === "draining") return "draining";
  if (f.workersDown.length > 0) return `media worker ${f.workersDown.join(", ")} not up`;
  if (!f.sipReady) return "SIP side not ready (not listening, or not registered)";
  if (!f.clusterHealthy) return "Redis unreachable";
  if (load === "full") return `full: ${f.liveCalls} of ${f.maxCalls} calls`;
  if (load === "overloaded") return `overloaded: ${f.overloadReason ?? "over a load limit"}`;
  return undefined;
}
