/**
 * What the cluster routes: any parsed webhook delivery whose events each name their call. The
 * router never looks further into an event than its call id and its kind, so every platform's
 * deliveries travel the same way.
 */
export interface RoutableEvent {
  callId: string;
  event: string;
  /** Set on connect events: only a consumer's (`user_initiated`) opens a call. */
  direction?: string;
}

/**
 * Whether an event opens a new call, to be admitted where there is room. A business-initiated
 * connect belongs to an agent's call that an instance already placed (on WhatsApp it carries
 * Meta's answer, and must reach that instance).
 */
export function opensCall(event: RoutableEvent): boolean {
  return event.event === "connect" && event.direction !== "business_initiated";
}

export interface Delivery<E extends RoutableEvent = RoutableEvent> {
  events: E[];
}

export interface CallGroup<E extends RoutableEvent> {
  callId: string;
  /** The call's events in the order the delivery carried them. */
  events: E[];
}

/** A delivery's events grouped by call, calls in order of first appearance, each call's events in order. */
export function groupByCall<E extends RoutableEvent>(events: readonly E[]): CallGroup<E>[] {
  const groups = new Map<string, CallGroup<E>>();
  for (const e of events) {
    let g = groups.get(e.callId);
    if (!g) groups.set(e.callId, (g = { callId: e.callId, events: [] }));
    g.events.push(e);
  }
  return [...groups.values()];
}

/**
 * The delivery with only `events`; every other list in it (permission replies, rejected items) is
 * emptied: those stay with the instance that received the delivery and are handled there once.
 */
export function withEvents<D extends Delivery>(delivery: D, events: D["events"]): D {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(delivery)) out[k] = Array.isArray(v) ? [] : v;
  out.events = events;
  return out as D;
}

/** The delivery without its events: what is left for the receiving instance itself. */
export function withoutEvents<D extends Delivery>(delivery: D): D {
  return { ...delivery, events: [] };
}

/** Whether anything but events is in the delivery (a list with items). */
export function hasNonEventItems(delivery: Delivery): boolean {
  return Object.entries(delivery).some(([k, v]) => k !== "events" && Array.isArray(v) && v.length > 0);
}
