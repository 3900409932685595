import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, readConfigFile, redactConfig } from "../../gateway/config/config.js";

const base = {
  META_APP_SECRET: "s3cret",
  META_VERIFY_TOKEN: "verify-me",
  META_PAGE_ID: "1234567890",
  META_PAGE_ACCESS_TOKEN: "EAAtoken",
};

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("configuration", () => {
  it("applies documented defaults", () => {
    const c = loadConfig(base);
    expect(c.meta.graphUrl).toBe("https://graph.facebook.com");
    expect(c.meta.graphVersion).toBe("v26.0");
    expect(c.http.port).toBe(8080);
    expect(c.sip.target).toEqual({ kind: "echo" });
    expect(c.media.stunUrls).toEqual([]);
    expect(c.media.rtpPortMin).toBeLessThan(c.media.rtpPortMax);
    expect(c.logLevel).toBe("info");
  });

  it("names the missing setting", () => {
    const { META_APP_SECRET: _, ...rest } = base;
    const err = configError(() => loadConfig(rest));
    expect(err.setting).toBe("META_APP_SECRET");
    expect(err.message).toMatch(/required/);
  });

  it.each([
    ["HTTP_PORT", "eighty", /whole number/],
    ["HTTP_PORT", "70000", /between/],
    ["META_PAGE_ID", "my-page", /numeric/],
    ["PUBLIC_IP", "example.com", /IP address/],
    ["STUN_URLS", "turn:x.example:3478", /stun:/],
    ["SIP_TARGET", "pbx.example.com", /SIP URI/],
    ["SIP_LISTEN", "5060", /host:port/],
    ["LOG_LEVEL", "loud", /one of/],
    ["META_GRAPH_URL", "graph.facebook.com", /http/],
  ])("rejects %s=%s", (key, value, pattern) => {
    const err = configError(() => loadConfig({ ...base, [key]: value }));
    expect(err.setting).toBe(key);
    expect(err.message).toMatch(pattern);
  });

  it("takes agent credentials as a pair, with a realm, and never logs the password", () => {
    expect(loadConfig(base).sip.agentAuth).toBeUndefined();
    const c = loadConfig({ ...base, SIP_AGENT_AUTH_USER: "agents", SIP_AGENT_AUTH_PASSWORD: "pw" });
    expect(c.sip.agentAuth).toEqual({ username: "agents", password: "pw", realm: "meta-sip-gateway", algorithms: ["SHA-256", "MD5"] });
    expect(JSON.stringify(redactConfig(c))).not.toContain('"pw"');
    expect(configError(() => loadConfig({ ...base, SIP_AGENT_AUTH_USER: "agents" })).setting).toBe("SIP_AGENT_AUTH_PASSWORD");
    expect(configError(() => loadConfig({ ...base, SIP_AGENT_AUTH_PASSWORD: "pw" })).setting).toBe("SIP_AGENT_AUTH_USER");
    const realm = configError(() => loadConfig({ ...base, SIP_AGENT_AUTH_USER: "a", SIP_AGENT_AUTH_PASSWORD: "b", SIP_AGENT_AUTH_REALM: 'x"y' }));
    expect(realm.setting).toBe("SIP_AGENT_AUTH_REALM");
  });

  it("rejects an inverted RTP port range", () => {
    const err = configError(() => loadConfig({ ...base, RTP_PORT_MIN: "50000", RTP_PORT_MAX: "40000" }));
    expect(err.setting).toBe("RTP_PORT_MAX");
  });

  it("parses SIP targets, STUN lists and listen addresses", () => {
    const c = loadConfig({
      ...base,
      SIP_TARGET: "sip:support@pbx.example.com:5080",
      STUN_URLS: "stun:127.0.0.1:3478, stun:stun.internal",
      SIP_LISTEN: "127.0.0.1:5070",
    });
    expect(c.sip.target).toEqual({ kind: "uri", uri: "sip:support@pbx.example.com:5080" });
    expect(c.media.stunUrls).toEqual(["stun:127.0.0.1:3478", "stun:stun.internal"]);
    expect(c.sip.listen).toEqual({ host: "127.0.0.1", port: 5070 });
  });

  it("reads a YAML file and lets the environment override it", () => {
    const dir = mkdtempSync(join(tmpdir(), "gwcfg-"));
    const file = join(dir, "gateway.yaml");
    writeFileSync(file, `META_APP_SECRET: fromfile\nMETA_VERIFY_TOKEN: v\nMETA_PAGE_ID: 42\nMETA_PAGE_ACCESS_TOKEN: t\nHTTP_PORT: 9000\nSTUN_URLS:\n  - stun:127.0.0.1:3478\n`);
    const c = loadConfig({ HTTP_PORT: "9100" }, readConfigFile(file));
    expect(c.meta.appSecret).toBe("fromfile");
    expect(c.meta.pageId).toBe("42");
    expect(c.http.port).toBe(9100);
    expect(c.media.stunUrls).toEqual(["stun:127.0.0.1:3478"]);
  });

  it("rejects unknown keys in the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "gwcfg-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "META_APP_SECRETT: typo\n");
    expect(configError(() => readConfigFile(file)).setting).toBe("META_APP_SECRETT");
  });

  it("validates DRAIN_SECONDS, default 30, from the environment or the file", () => {
    expect(loadConfig(base).calls.drainSeconds).toBe(30);
    expect(loadConfig({ ...base, DRAIN_SECONDS: "0" }).calls.drainSeconds).toBe(0);
    for (const bad of ["soon", "-5", "1.5", "100000"]) {
      const err = configError(() => loadConfig({ ...base, DRAIN_SECONDS: bad }));
      expect(err.setting).toBe("DRAIN_SECONDS");
    }
    const dir = mkdtempSync(join(tmpdir(), "gwcfg-"));
    const file = join(dir, "drain.yaml");
    writeFileSync(file, "DRAIN_SECONDS: 90\n");
    expect(loadConfig(base, readConfigFile(file)).calls.drainSeconds).toBe(90);
  });

  it("turns admission under load off by default and bounds its limits", () => {
    expect(loadConfig(base).calls.overload).toEqual({ maxLoopDelayMs: 0, minIdleCpuPercent: 0 });
    expect(loadConfig({ ...base, OVERLOAD_LOOP_DELAY_MS: "20", OVERLOAD_MIN_IDLE_CPU: "10" }).calls.overload).toEqual({ maxLoopDelayMs: 20, minIdleCpuPercent: 10 });
    for (const [key, bad] of [["OVERLOAD_LOOP_DELAY_MS", "1001"], ["OVERLOAD_LOOP_DELAY_MS", "-1"], ["OVERLOAD_LOOP_DELAY_MS", "soon"], ["OVERLOAD_MIN_IDLE_CPU", "95"], ["OVERLOAD_MIN_IDLE_CPU", "2.5"]] as const) {
      expect(configError(() => loadConfig({ ...base, [key]: bad })).setting).toBe(key);
    }
  });

  it("validates FFMPEG_PATH: an executable file, or a name found on PATH", () => {
    const dir = mkdtempSync(join(tmpdir(), "gwcfg-"));
    const exe = join(dir, "my-ffmpeg");
    writeFileSync(exe, "#!/bin/sh\nexit 0\n");
    chmodSync(exe, 0o755);
    const plain = join(dir, "not-executable");
    writeFileSync(plain, "");
    mkdirSync(join(dir, "a-directory"));

    expect(loadConfig(base).media.ffmpegPath).toBeUndefined();
    expect(loadConfig({ ...base, FFMPEG_PATH: exe }).media.ffmpegPath).toBe(exe);
    expect(loadConfig({ ...base, FFMPEG_PATH: "my-ffmpeg", PATH: `/nonexistent:${dir}` }).media.ffmpegPath).toBe("my-ffmpeg");
    for (const [value, pattern] of [
      [join(dir, "missing"), /not an executable file/],
      [plain, /not an executable file/],
      [join(dir, "a-directory"), /not an executable file/],
      ["no-such-ffmpeg-anywhere", /not an executable on PATH/],
    ] as const) {
      const err = configError(() => loadConfig({ ...base, FFMPEG_PATH: value, PATH: dir }));
      expect(err.setting).toBe("FFMPEG_PATH");
      expect(err.message).toMatch(pattern);
    }
    const file = join(dir, "ffmpeg.yaml");
    writeFileSync(file, `FFMPEG_PATH: ${exe}\n`);
    expect(loadConfig(base, readConfigFile(file)).media.ffmpegPath).toBe(exe);
  });

  it("orders agent digest algorithms as configured and refuses unknown ones", () => {
    const auth = { ...base, SIP_AGENT_AUTH_USER: "a", SIP_AGENT_AUTH_PASSWORD: "b" };
    expect(loadConfig({ ...auth, SIP_AGENT_AUTH_ALGORITHMS: "md5, SHA-256, MD5" }).sip.agentAuth?.algorithms).toEqual(["MD5", "SHA-256"]);
    expect(loadConfig({ ...auth, SIP_AGENT_AUTH_ALGORITHMS: "SHA-256" }).sip.agentAuth?.algorithms).toEqual(["SHA-256"]);
    const err = configError(() => loadConfig({ ...auth, SIP_AGENT_AUTH_ALGORITHMS: "SHA-1" }));
    expect(err.setting).toBe("SIP_AGENT_AUTH_ALGORITHMS");
    expect(err.message).toMatch(/"SHA-1" is not one of SHA-256, MD5/);
  });
});
