import { describe, expect, it } from "vitest";
import { parseCallPermission } from "../../gateway/meta/call-permission.js";

describe("parseCallPermission", () => {
  it("reads the guide's shape", () => {
    expect(
      parseCallPermission({
        permission: { status: "no_permission" },
        actions: [
          { action_name: "send_call_permission_request", can_perform_action: true },
          { action_name: "start_call", can_perform_action: false },
        ],
      }),
    ).toEqual({ status: "no_permission", canStartCall: false, canRequestPermission: true });
  });

  it("reads the OpenAPI shape: data[] wrapper, upper case, can_perform", () => {
    expect(
      parseCallPermission({
        data: [{ permission: { status: "HAS_PERMISSION", expiration_time: "1700000000" }, actions: [{ action_name: "start_call", can_perform: "true" }] }],
      }),
    ).toEqual({ status: "has_permission", canStartCall: true, canRequestPermission: false, expiresAt: 1_700_000_000 });
  });

  it("derives the request flag from usage limits when no flag is given, in either spelling", () => {
    const withLimits = (limit: Record<string, unknown>) =>
      parseCallPermission({ permission: { status: "no_permission" }, actions: [{ action_name: "send_call_permission_request", limits: [limit] }] });
    expect(withLimits({ max_allowed_per_user: 2, current_usage: 1 })?.canRequestPermission).toBe(true);
    expect(withLimits({ max_allowed_per_user: 2, current_usage: 2 })?.canRequestPermission).toBe(false);
    expect(withLimits({ max_allowed: 2, current_usage: 0 })?.canRequestPermission).toBe(true);
    expect(withLimits({ max_allowed: 2, current_usage: 3 })?.canRequestPermission).toBe(false);
  });

  it("falls back to the status when actions are absent", () => {
    expect(parseCallPermission({ permission: { status: "has_permission" } })).toEqual({ status: "has_permission", canStartCall: true, canRequestPermission: false });
    expect(parseCallPermission({ permission: { status: "no_permission" } })).toEqual({ status: "no_permission", canStartCall: false, canRequestPermission: false });
  });

  it("returns undefined for unrecognisable bodies", () => {
    expect(parseCallPermission(null)).toBeUndefined();
    expect(parseCallPermission({ data: [] })).toBeUndefined();
    expect(parseCallPermission({ permission: { status: "sometimes" } })).toBeUndefined();
  });

  it("reads WhatsApp's statuses: temporary and permanent grant, no_permission and the OpenAPI's pending/denied/expired do not", () => {
    const wa = (status: string) =>
      parseCallPermission({
        permission: { status, expiration_time: 1767225600 },
        actions: [
          { action_name: "send_call_permission_request", can_perform_action: true, limits: [{ time_period: "PT24H", max_allowed: 1, current_usage: 0 }] },
          { action_name: "start_call", can_perform_action: status !== "no_permission" },
        ],
      });
    expect(wa("temporary")).toEqual({ status: "has_permission", canStartCall: true, canRequestPermission: true, expiresAt: 1767225600 });
    expect(wa("permanent")?.status).toBe("has_permission");
    expect(wa("GRANTED")?.status).toBe("has_permission");
    expect(wa("no_permission")).toEqual({ status: "no_permission", canStartCall: false, canRequestPermission: true, expiresAt: 1767225600 });
    for (const s of ["pending", "denied", "expired"]) expect(wa(s)?.status).toBe("no_permission");
  });
});
