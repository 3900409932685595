import { describe, expect, it } from "vitest";
import { loadConfig } from "../../gateway/config/config.js";

const base = { META_APP_SECRET: "s3cret", META_VERIFY_TOKEN: "verify-me", META_PAGE_ID: "1234567890", META_PAGE_ACCESS_TOKEN: "EAAtoken" };
const drachtio = { ...base, SIP_BACKEND: "drachtio", DRACHTIO_HOST: "127.0.0.1", DRACHTIO_SECRET: "cymru" };

describe("SIP_KEEPALIVE_INTERVAL", () => {
  it("defaults to 30 s, and 0 turns keep-alives off", () => {
    expect(loadConfig(base).sip.keepAliveS).toBe(30);
    expect(loadConfig({ ...base, SIP_KEEPALIVE_INTERVAL: "0" }).sip.keepAliveS).toBe(0);
    expect(loadConfig({ ...base, SIP_KEEPALIVE_INTERVAL: "120" }).sip.keepAliveS).toBe(120);
  });

  it("refuses what is not whole seconds up to an hour, naming the setting", () => {
    for (const bad of ["-1", "abc", "1.5", "3601"]) expect(() => loadConfig({ ...base, SIP_KEEPALIVE_INTERVAL: bad })).toThrow(/SIP_KEEPALIVE_INTERVAL/);
  });

  it("is refused with SIP_BACKEND=drachtio, whose server keeps its own connections alive", () => {
    expect(() => loadConfig({ ...drachtio, SIP_KEEPALIVE_INTERVAL: "30" })).toThrow(/SIP_KEEPALIVE_INTERVAL.*drachtio-server's own configuration/);
  });
});
