import type { GraphApiError } from "./graph-errors.js";
import { waErrors } from "./wa-errors.js";

/** The call permission statuses of the permissions guide (§2.4). */
export type WaPermissionStatus = "no_permission" | "temporary" | "permanent";

export interface WaPermissionLimits {
  /** Permission requests per user: 1 per 24 h and 2 per 7 days (§2.4). */
  requestsPerDay: number;
  requestsPerWeek: number;
  /** Connected business-initiated calls per user per 24 h (100 since the 2025-12-19 changelog). */
  callsPerDay: number;
  /** A temporary permission lasts 7 days. */
  temporaryLifetimeMs: number;
}

export const DEFAULT_PERMISSION_LIMITS: WaPermissionLimits = {
  requestsPerDay: 1,
  requestsPerWeek: 2,
  callsPerDay: 100,
  temporaryLifetimeMs: 7 * 24 * 3600 * 1000,
};

const DAY_MS = 24 * 3600 * 1000;
const WEEK_MS = 7 * DAY_MS;

interface Limit {
  time_period: "PT24H" | "P7D";
  max_allowed: number;
  current_usage: number;
  limit_expiration_time?: number;
}

/** `GET /{phone-number-id}/call_permissions` as the reference page shows it. */
export interface WaCallPermissionsResponse {
  messaging_product: "whatsapp";
  permission: { status: WaPermissionStatus; expiration_time?: number };
  actions: Array<{ action_name: "send_call_permission_request" | "start_call"; can_perform_action: boolean; limits: Limit[] }>;
}

interface UserState {
  status: WaPermissionStatus;
  expiresAt: number | undefined;
  requests: number[];
  connectedCalls: number[];
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/** Permission state per user (keyed by BSUID) for one business number, with the documented limits; time is passed in. */
export class WhatsAppPermissions {
  private readonly users = new Map<string, UserState>();

  constructor(
    private readonly defaultStatus: WaPermissionStatus,
    private readonly limits: WaPermissionLimits = DEFAULT_PERMISSION_LIMITS,
  ) {}

  private state(userId: string, now: number): UserState {
    let state = this.users.get(userId);
    if (!state) {
      const expires = this.defaultStatus === "temporary" ? now + this.limits.temporaryLifetimeMs : undefined;
      state = { status: this.defaultStatus, expiresAt: expires, requests: [], connectedCalls: [] };
      this.users.set(userId, state);
    }
    if (state.status === "temporary" && state.expiresAt !== undefined && state.expiresAt <= now) {
      state.status = "no_permission";
      state.expiresAt = undefined;
    }
    return state;
  }

  status(userId: string, now: number): { status: WaPermissionStatus; expiresAt: number | undefined } {
    const state = this.state(userId, now);
    return { status: state.status, expiresAt: state.expiresAt };
  }

  set(userId: string, status: WaPermissionStatus, now: number, expiresAt?: number): void {
    const state = this.state(userId, now);
    state.status = status;
    state.expiresAt = status === "temporary" ? (expiresAt ?? now + this.limits.temporaryLifetimeMs) : undefined;
  }

  /** The error a permission request gets now, or undefined when it may be sent. */
  requestError(userId: string, now: number): GraphApiError | undefined {
    const usage = this.requestUsage(userId, now);
    if (usage.day.current_usage >= usage.day.max_allowed) return waErrors.permissionRequestLimit("24 hours");
    if (usage.week.current_usage >= usage.week.max_allowed) return waErrors.permissionRequestLimit("7 days");
    return undefined;
  }

  recordRequest(userId: string, now: number): void {
    this.state(userId, now).requests.push(now);
  }

  /** The error a business-initiated connect gets now, or undefined. */
  callError(userId: string, now: number): GraphApiError | undefined {
    const state = this.state(userId, now);
    if (state.status === "no_permission") return waErrors.noCallPermission();
    const calls = this.callUsage(userId, now);
    if (calls.current_usage >= calls.max_allowed) return waErrors.dailyCallLimit(calls.limit_expiration_time ?? seconds(now + DAY_MS));
    return undefined;
  }

  /** A connected call resets the permission request counters and counts toward the daily call limit. */
  recordConnectedCall(userId: string, now: number, businessInitiated: boolean): void {
    const state = this.state(userId, now);
    state.requests = [];
    if (businessInitiated) state.connectedCalls.push(now);
  }

  response(userId: string, now: number): WaCallPermissionsResponse {
    const state = this.state(userId, now);
    const usage = this.requestUsage(userId, now);
    const calls = this.callUsage(userId, now);
    const requestAllowed = state.status !== "permanent" && usage.day.current_usage < usage.day.max_allowed && usage.week.current_usage < usage.week.max_allowed;
    return {
      messaging_product: "whatsapp",
      permission: {
        status: state.status,
        ...(state.expiresAt !== undefined ? { expiration_time: seconds(state.expiresAt) } : {}),
      },
      actions: [
        { action_name: "send_call_permission_request", can_perform_action: requestAllowed, limits: [usage.day, usage.week] },
        {
          action_name: "start_call",
          can_perform_action: state.status !== "no_permission" && calls.current_usage < calls.max_allowed,
          limits: [calls],
        },
      ],
    };
  }

  private requestUsage(userId: string, now: number): { day: Limit; week: Limit } {
    const requests = this.state(userId, now).requests;
    return {
      day: limit("PT24H", this.limits.requestsPerDay, requests, now, DAY_MS),
      week: limit("P7D", this.limits.requestsPerWeek, requests, now, WEEK_MS),
    };
  }

  private callUsage(userId: string, now: number): Limit {
    return limit("PT24H", this.limits.callsPerDay, this.state(userId, now).connectedCalls, now, DAY_MS);
  }
}

function limit(period: Limit["time_period"], max: number, times: readonly number[], now: number, windowMs: number): Limit {
  const inWindow = times.filter((t) => t > now - windowMs);
  const out: Limit = { time_period: period, max_allowed: max, current_usage: inWindow.length };
  const oldest = inWindow[0];
  if (inWindow.length >= max && oldest !== undefined) out.limit_expiration_time = seconds(oldest + windowMs);
  return out;
}
