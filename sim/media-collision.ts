import type { VideoSendOptions } from "./consumer-video.js";
import { graphErrors } from "./graph-errors.js";
import type { CallsSuccess } from "./graph-server.js";

/**
 * How Meta answers a business media_update that crossed one of its own (meta-calling-api.md §6.1):
 * - `no-sdp`: 200 `{success:true}` without a session;
 * - `error`: the "conflicting media status" error (code 100).
 */
export type CollisionMode = "no-sdp" | "error";

/** Whether the business hears the answer or Meta's media_update webhook first. */
export type CollisionOrder = "answer-first" | "webhook-first";

/** The consumer's own change that wins the race: a plain re-offer (mute/unmute), or the camera going on or off. */
export type ConsumerChange = "reoffer" | "stopVideo" | { startVideo: VideoSendOptions };

export interface CollisionOptions {
  mode: CollisionMode;
  /** Default "reoffer". */
  consumerChange?: ConsumerChange;
  /** Default "answer-first": the webhook follows the answer after the simulator's event delay. */
  order?: CollisionOrder;
  /** Only a request on this call collides; any call's when left out. */
  callId?: string;
}

export type ConsumerChangeKind = "reoffer" | "start-video" | "stop-video";

/** One collision as it happened, for tests to compare with what the business did. */
export interface CollisionRecord {
  callId: string;
  mode: CollisionMode;
  order: CollisionOrder;
  consumerChange: ConsumerChangeKind;
  /** The versions the losing business request carried (valid when it was sent). */
  businessFromVersion: number;
  businessToVersion: number;
  /** The version of Meta's own offer, sent by webhook: the business must retry from here. */
  metaVersion: number;
  at: number;
  /** HTTP status the business answered the webhook with, once delivered (0 = no answer). */
  webhookStatus: number | undefined;
}

export function consumerChangeKind(change: ConsumerChange): ConsumerChangeKind {
  if (change === "reoffer") return "reoffer";
  if (change === "stopVideo") return "stop-video";
  return "start-video";
}

/** Collisions armed by tests, taken by the first business media_update they apply to. */
export class CollisionSwitch {
  private readonly armed: CollisionOptions[] = [];

  arm(options: CollisionOptions): void {
    this.armed.push(options);
  }

  /** The first armed collision for `callId`, removed; undefined when none applies. */
  take(callId: string): CollisionOptions | undefined {
    const index = this.armed.findIndex((c) => c.callId === undefined || c.callId === callId);
    if (index < 0) return undefined;
    return this.armed.splice(index, 1)[0];
  }

  get pending(): number {
    return this.armed.length;
  }
}

/**
 * Meta's answer to the request that lost: a bare success for `no-sdp`; for `error`, the conflicting media
 * status error naming Meta's version, which is already past the one the request started from.
 */
export function collisionAnswer(mode: CollisionMode, metaVersion: number, requestFromVersion: number): CallsSuccess {
  if (mode === "error") throw graphErrors.conflictingMediaStatus(metaVersion, requestFromVersion);
  return { success: true };
}
