import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../../gateway/config/config.js";

const base = {
  META_APP_SECRET: "s3cret",
  META_VERIFY_TOKEN: "verify-me",
  META_PAGE_ID: "1234567890",
  META_PAGE_ACCESS_TOKEN: "EAAtoken",
};
const drachtio = { ...base, SIP_BACKEND: "drachtio", DRACHTIO_HOST: "127.0.0.1", DRACHTIO_SECRET: "cymru" };

function settingOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.setting;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("SIP_BACKEND and DRACHTIO_*", () => {
  it("default to the embedded stack", () => {
    expect(loadConfig(base).sip.backend).toEqual({ kind: "embedded" });
    expect(loadConfig({ ...base, SIP_BACKEND: "EMBEDDED" }).sip.backend).toEqual({ kind: "embedded" });
  });

  it("select drachtio-server with its control address, port 9022 by default", () => {
    expect(loadConfig(drachtio).sip.backend).toEqual({ kind: "drachtio", host: "127.0.0.1", port: 9022, secret: "cymru" });
    expect(loadConfig({ ...drachtio, DRACHTIO_HOST: "drachtio.internal", DRACHTIO_PORT: "9023" }).sip.backend).toMatchObject({
      host: "drachtio.internal",
      port: 9023,
    });
  });

  it("name the setting that is wrong", () => {
    expect(settingOf(() => loadConfig({ ...base, SIP_BACKEND: "kamailio" }))).toBe("SIP_BACKEND");
    expect(settingOf(() => loadConfig({ ...drachtio, DRACHTIO_HOST: undefined }))).toBe("DRACHTIO_HOST");
    expect(settingOf(() => loadConfig({ ...drachtio, DRACHTIO_HOST: "not a host" }))).toBe("DRACHTIO_HOST");
    expect(settingOf(() => loadConfig({ ...drachtio, DRACHTIO_SECRET: undefined }))).toBe("DRACHTIO_SECRET");
    expect(settingOf(() => loadConfig({ ...drachtio, DRACHTIO_SECRET: "a|b" }))).toBe("DRACHTIO_SECRET");
    for (const port of ["0", "65536", "90x", "-1"]) {
      expect(settingOf(() => loadConfig({ ...drachtio, DRACHTIO_PORT: port })), port).toBe("DRACHTIO_PORT");
    }
  });

  it("refuse settings the chosen backend would ignore", () => {
    expect(settingOf(() => loadConfig({ ...base, DRACHTIO_HOST: "127.0.0.1" }))).toBe("DRACHTIO_HOST");
    expect(settingOf(() => loadConfig({ ...base, DRACHTIO_SECRET: "cymru" }))).toBe("DRACHTIO_SECRET");
    expect(settingOf(() => loadConfig({ ...drachtio, SIP_LISTEN: "0.0.0.0:5060" }))).toBe("SIP_LISTEN");
    expect(settingOf(() => loadConfig({ ...drachtio, SIP_TRANSPORTS: "udp" }))).toBe("SIP_TRANSPORTS");
  });

  it("keep the secret out of the start-up log", () => {
    const text = JSON.stringify(redactConfig(loadConfig(drachtio)));
    expect(text).not.toContain("cymru");
    expect(text).toContain('"kind":"drachtio"');
  });
});
