import type { SrtpProfileName } from "./loadgen/consumer-peer.js";
import type { HistogramData } from "./stats/histogram.js";

/** What a load generator plays against, and the SRTP profile its consumers pick. */
export type LoadgenInit = { srtpProfile: SrtpProfileName } & (
  | { mode: "gateway"; pageId: string; appSecret: string; pageAccessToken: string; graphVersion: string }
  | { mode: "rtpengine"; ngHost: string; ngPort: number }
);

export interface LoadgenReady {
  /** Gateway mode: where the gateway must send Graph requests and INVITEs. */
  graphUrl?: string;
  sipPort?: number;
}

/** Signalling milestones of one call, in ms (undefined where the mode has none). */
export interface SetupSample {
  /** Webhook POST sent → INVITE arrived at the PBX. */
  inviteMs?: number;
  /** PBX 200 OK sent → accept arrived at the Graph API. */
  acceptMs?: number;
  /** Call placed → both directions mapped end to end. */
  mediaUpMs?: number;
}

export interface AddCallsResult {
  up: number;
  failed: number;
  errors: string[];
  setup: SetupSample[];
}

export interface HangupResult {
  ended: number;
  failed: number;
  errors: string[];
}

export interface DirectionCounters {
  sent: number;
  received: number;
  lost: number;
  mapped: number;
  unmapped: number;
  reanchored: number;
}

/** Delay variation over a window: mapped packets within their own stream's median + the budget. */
export interface JitterCount {
  samples: number;
  withinBudget: number;
}

export interface WindowReport {
  durationMs: number;
  activeCalls: number;
  /** Calls that failed (ended without being asked to) during the window. */
  failedCalls: number;
  toPbx: { latency: HistogramData; counters: DirectionCounters; jitter: JitterCount };
  toMeta: { latency: HistogramData; counters: DirectionCounters; jitter: JitterCount };
  /** The load generator's own event-loop delay: how late its timestamps may be. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export interface ChurnResult {
  completed: number;
  failed: number;
  errors: string[];
  durationMs: number;
}

/** Requests the orchestrator sends, each with its argument and result type. */
export interface LoadgenApi {
  init: { args: LoadgenInit; result: LoadgenReady };
  setWebhookUrl: { args: { url: string }; result: null };
  addCalls: { args: { count: number; concurrency: number; timeoutMs: number }; result: AddCallsResult };
  hangupAll: { args: { concurrency: number; timeoutMs: number }; result: HangupResult };
  windowStart: { args: { jitterBudgetMs: number }; result: null };
  windowEnd: { args: null; result: WindowReport };
  churn: { args: { count: number; lanes: number; packets: number; timeoutMs: number }; result: ChurnResult };
  /**
   * New calls while the live ones go on: `count` calls, one every `intervalMs` (0: all at once),
   * each hung up once its media is up both ways. The live calls are not touched.
   */
  arrivals: { args: { count: number; intervalMs: number; timeoutMs: number }; result: AddCallsResult };
  shutdown: { args: null; result: null };
}

export type LoadgenCommand = keyof LoadgenApi;

export interface RpcRequest<C extends LoadgenCommand = LoadgenCommand> {
  id: number;
  command: C;
  args: LoadgenApi[C]["args"];
}

export type RpcResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
