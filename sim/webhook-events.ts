/**
 * Messenger `calls` webhook payloads as Meta documents them: `object:"page"`, `entry[].calls[]`
 * (no `changes[]`), integer timestamps. Event timestamps are Unix seconds; `entry[].time` is
 * Unix milliseconds.
 */

export type CallDirection = "user_initiated" | "business_initiated";
export type TerminateStatus = "Completed" | "Failed";
export type CallStatus = "ringing" | "accepted";

export interface ConnectEvent {
  id: string;
  to: string;
  from: string;
  event: "connect";
  timestamp: number;
  call_direction: CallDirection;
}

export interface CallStatusEvent {
  id: string;
  event: "call_status";
  timestamp: number;
  recipient_id: string;
  call_status: CallStatus;
}

export interface MediaUpdateEvent {
  id: string;
  event: "media_update";
  timestamp: number;
  session: {
    version: number;
    sdp_renegotiation: { sdp_type: "offer"; sdp: string };
  };
}

export interface TerminateEvent {
  id: string;
  event: "terminate";
  timestamp: number;
  status: TerminateStatus;
  start_time?: number;
  end_time?: number;
  /** Seconds since the business connected; absent when it never did. */
  duration?: number;
}

export type CallEvent = ConnectEvent | CallStatusEvent | MediaUpdateEvent | TerminateEvent;

export interface WebhookEntry {
  id: string;
  time: number;
  calls: CallEvent[];
}

export interface WebhookPayload {
  object: "page";
  entry: WebhookEntry[];
}

export function unixSeconds(epochMs: number): number {
  return Math.floor(epochMs / 1000);
}

export function connectEvent(args: {
  callId: string;
  pageId: string;
  psid: string;
  direction: CallDirection;
  at?: number;
}): ConnectEvent {
  const consumerCalls = args.direction === "user_initiated";
  return {
    id: args.callId,
    to: consumerCalls ? args.pageId : args.psid,
    from: consumerCalls ? args.psid : args.pageId,
    event: "connect",
    timestamp: unixSeconds(args.at ?? Date.now()),
    call_direction: args.direction,
  };
}

export function callStatusEvent(args: { callId: string; psid: string; status: CallStatus; at?: number }): CallStatusEvent {
  return {
    id: args.callId,
    event: "call_status",
    timestamp: unixSeconds(args.at ?? Date.now()),
    recipient_id: args.psid,
    call_status: args.status,
  };
}

export function mediaUpdateEvent(args: { callId: string; version: number; sdp: string; at?: number }): MediaUpdateEvent {
  return {
    id: args.callId,
    event: "media_update",
    timestamp: unixSeconds(args.at ?? Date.now()),
    session: { version: args.version, sdp_renegotiation: { sdp_type: "offer", sdp: args.sdp } },
  };
}

/**
 * `startedAt` is when the call began ringing, `connectedAt` when the business connected (accept,
 * or consumer pickup on outbound calls); the duration counts from the latter and is left out
 * when the business never connected.
 */
export function terminateEvent(args: {
  callId: string;
  status: TerminateStatus;
  startedAt: number;
  endedAt: number;
  connectedAt?: number;
}): TerminateEvent {
  const event: TerminateEvent = {
    id: args.callId,
    event: "terminate",
    timestamp: unixSeconds(args.endedAt),
    status: args.status,
    start_time: unixSeconds(args.startedAt),
    end_time: unixSeconds(args.endedAt),
  };
  if (args.connectedAt !== undefined) {
    event.duration = Math.max(0, Math.round((args.endedAt - args.connectedAt) / 1000));
  }
  return event;
}

/** One entry per element of `entries`, each holding its events, all in one POST body. */
export function webhookPayload(pageId: string, entries: CallEvent[][], timeMs: number = Date.now()): WebhookPayload {
  return {
    object: "page",
    entry: entries.map((calls) => ({ id: pageId, time: Math.floor(timeMs), calls })),
  };
}
