/** One instance as the others see it, from what it last published. */
export interface InstanceSnapshot {
  id: string;
  /** Base URL of its HTTP port, where forwarded webhooks go. */
  url: string;
  liveCalls: number;
  maxCalls: number;
  state: InstanceState;
}

/**
 * `ready`: takes calls; `full`: at its call limit; `overloaded`: its machine has no room for more
 * media (OVERLOAD_*); `draining`: finishing its calls before it stops.
 */
export type InstanceState = "ready" | "full" | "overloaded" | "draining";

/** What an instance publishes about its own load. */
export interface InstanceLoad {
  draining: boolean;
  liveCalls: number;
  maxCalls: number;
  overloaded: boolean;
}

export function stateOf(l: InstanceLoad): InstanceState {
  if (l.draining) return "draining";
  if (l.liveCalls >= l.maxCalls) return "full";
  return l.overloaded ? "overloaded" : "ready";
}

/**
 * Where a new call goes when the instance that received it cannot take it: the live instance with
 * the most room left, ties to the lowest id so every instance makes the same choice. Undefined when
 * no one has room; the call is then refused where it landed.
 */
export function pickInstanceWithRoom(peers: readonly InstanceSnapshot[], selfId: string): InstanceSnapshot | undefined {
  let best: InstanceSnapshot | undefined;
  for (const p of peers) {
    if (p.id === selfId || p.state !== "ready" || p.liveCalls >= p.maxCalls) continue;
    const room = p.maxCalls - p.liveCalls;
    const bestRoom = best ? best.maxCalls - best.liveCalls : -1;
    if (room > bestRoom || (room === bestRoom && best !== undefined && p.id < best.id)) best = p;
  }
  return best;
}
