import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../../gateway/config/config.js";

const base = {
  META_APP_SECRET: "s3cret",
  META_VERIFY_TOKEN: "verify-me",
  META_PAGE_ID: "1234567890",
  META_PAGE_ACCESS_TOKEN: "EAAtoken",
};

function settingOf(fn: () => unknown): { setting: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return { setting: err.setting, message: err.message };
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("call metrics and event settings", () => {
  it("defaults: call_metrics on, event lines on the log, no event URL", () => {
    const c = loadConfig(base);
    expect(c.meta.callMetrics).toBe(true);
    expect(c.events).toEqual({ log: { kind: "log" }, url: undefined, secret: undefined });
  });

  it("CALL_METRICS is on or off, nothing else", () => {
    expect(loadConfig({ ...base, CALL_METRICS: "off" }).meta.callMetrics).toBe(false);
    expect(loadConfig({ ...base, CALL_METRICS: "ON" }).meta.callMetrics).toBe(true);
    expect(settingOf(() => loadConfig({ ...base, CALL_METRICS: "yes" }))).toMatchObject({ setting: "CALL_METRICS", message: expect.stringMatching(/on, off/) });
  });

  it("EVENTS_URL needs a long enough EVENTS_SECRET, and a secret alone is a mistake", () => {
    const ok = loadConfig({ ...base, EVENTS_URL: "https://crm.example/hooks/calls", EVENTS_SECRET: "0123456789abcdef" });
    expect(ok.events.url).toBe("https://crm.example/hooks/calls");
    expect(settingOf(() => loadConfig({ ...base, EVENTS_URL: "https://crm.example/x" })).setting).toBe("EVENTS_SECRET");
    expect(settingOf(() => loadConfig({ ...base, EVENTS_URL: "https://crm.example/x", EVENTS_SECRET: "short" })).message).toMatch(/at least 16/);
    expect(settingOf(() => loadConfig({ ...base, EVENTS_SECRET: "0123456789abcdef" })).message).toMatch(/only used with EVENTS_URL/);
    expect(settingOf(() => loadConfig({ ...base, EVENTS_URL: "ftp://crm.example/x", EVENTS_SECRET: "0123456789abcdef" })).setting).toBe("EVENTS_URL");
    expect(settingOf(() => loadConfig({ ...base, EVENTS_URL: "not a url", EVENTS_SECRET: "0123456789abcdef" })).setting).toBe("EVENTS_URL");
  });

  it("EVENTS_LOG is log, off or an absolute path", () => {
    expect(loadConfig({ ...base, EVENTS_LOG: "off" }).events.log).toEqual({ kind: "off" });
    expect(loadConfig({ ...base, EVENTS_LOG: "/var/log/gw/events.jsonl" }).events.log).toEqual({ kind: "file", path: "/var/log/gw/events.jsonl" });
    expect(settingOf(() => loadConfig({ ...base, EVENTS_LOG: "events.jsonl" })).setting).toBe("EVENTS_LOG");
  });

  it("masks the events secret in the start-up line", () => {
    const c = loadConfig({ ...base, EVENTS_URL: "https://crm.example/x", EVENTS_SECRET: "0123456789abcdef-secret" });
    expect(JSON.stringify(redactConfig(c))).not.toContain("0123456789abcdef-secret");
  });
});
