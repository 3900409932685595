import { isRecord, readBoolean, readNonNegativeInteger, readNumber, readString, type JsonRecord } from "./wire-values.js";

export type PermissionStatus = "has_permission" | "no_permission";

export interface CallPermission {
  status: PermissionStatus;
  canStartCall: boolean;
  /** Whether a `calling_optin` request may be sent now (at most 2 per thread per day). */
  canRequestPermission: boolean;
  /** As sent by Meta (epoch seconds). */
  expiresAt?: number;
}

/**
 * Reads `GET /{page-id}/messenger_call_permissions`. The guide and the OpenAPI reference
 * disagree (a `data[]` wrapper, upper-case statuses, `can_perform` vs `can_perform_action`,
 * `max_allowed` vs `max_allowed_per_user`), so every spelling is accepted.
 * Returns undefined when the body holds no recognisable permission status.
 */
export function parseCallPermission(body: unknown): CallPermission | undefined {
  const root = unwrapData(body);
  if (root === undefined) return undefined;

  const permission = isRecord(root.permission) ? root.permission : root;
  const status = readStatus(permission.status);
  if (status === undefined) return undefined;

  const actions = Array.isArray(root.actions) ? root.actions.filter(isRecord) : [];
  const result: CallPermission = {
    status,
    canStartCall: canPerform(findAction(actions, "start_call")) ?? status === "has_permission",
    // Unknown means no: a request beyond the daily limit only annoys the consumer.
    canRequestPermission: canPerform(findAction(actions, "send_call_permission_request")) ?? false,
  };
  const expiresAt = readNumber(permission.expiration_time) ?? readNumber(permission.expiration_timestamp);
  if (expiresAt !== undefined) result.expiresAt = expiresAt;
  return result;
}

function unwrapData(body: unknown): JsonRecord | undefined {
  if (!isRecord(body)) return undefined;
  if (Array.isArray(body.data)) {
    const first: unknown = body.data[0];
    return isRecord(first) ? first : undefined;
  }
  if (isRecord(body.data)) return body.data;
  return body;
}

/**
 * Messenger says has_permission/no_permission; WhatsApp's guide temporary/permanent/no_permission,
 * and its OpenAPI granted/pending/denied/expired.
 */
function readStatus(value: unknown): PermissionStatus | undefined {
  const status = readString(value)?.toLowerCase();
  switch (status) {
    case "has_permission":
    case "temporary":
    case "permanent":
    case "granted":
      return "has_permission";
    case "no_permission":
    case "pending":
    case "denied":
    case "expired":
      return "no_permission";
    default:
      return undefined;
  }
}

function findAction(actions: JsonRecord[], name: string): JsonRecord | undefined {
  return actions.find((a) => readString(a.action_name ?? a.name)?.toLowerCase() === name);
}

function canPerform(action: JsonRecord | undefined): boolean | undefined {
  if (action === undefined) return undefined;
  const flag = readBoolean(action.can_perform_action) ?? readBoolean(action.can_perform);
  if (flag !== undefined) return flag;
  return withinLimits(action.limits);
}

/** Falls back to the usage counters when the action carries no explicit flag. */
function withinLimits(limits: unknown): boolean | undefined {
  if (!Array.isArray(limits)) return undefined;
  let evaluated = false;
  for (const limit of limits) {
    if (!isRecord(limit)) continue;
    const max = readNonNegativeInteger(limit.max_allowed_per_user) ?? readNonNegativeInteger(limit.max_allowed);
    const used = readNonNegativeInteger(limit.current_usage);
    if (max === undefined || used === undefined) continue;
    if (used >= max) return false;
    evaluated = true;
  }
  return evaluated ? true : undefined;
}
