import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../../gateway/config/config.js";

const base = { META_APP_SECRET: "s3cret", META_VERIFY_TOKEN: "verify-me", META_PAGE_ID: "1234567890", META_PAGE_ACCESS_TOKEN: "EAAtoken" };
const dir = mkdtempSync(join(tmpdir(), "cfg-tls-"));
const cert = join(dir, "cert.pem");
const key = join(dir, "key.pem");
// Shapes only: the configuration checks the files are PEM of the right kind, TLS checks the rest.
writeFileSync(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
writeFileSync(key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");

describe("SIP_TRANSPORTS=tls and SIP_TLS_*", () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the certificate, key and CA, verifies by default, and keeps the key out of the logged config", () => {
    const c = loadConfig({ ...base, SIP_TRANSPORTS: "udp,tls", SIP_TLS_CERT: cert, SIP_TLS_KEY: key, SIP_TLS_CA: cert });
    expect(c.sip.transports).toEqual(["udp", "tls"]);
    expect(c.sip.tls?.verify).toBe(true);
    expect(c.sip.tls?.key).toContain("PRIVATE KEY");
    expect(c.sip.tls?.ca).toContain("CERTIFICATE");
    expect(JSON.stringify(redactConfig(c))).not.toContain("PRIVATE KEY");
    expect(loadConfig({ ...base, SIP_TRANSPORTS: "tls", SIP_TLS_CERT: cert, SIP_TLS_KEY: key, SIP_TLS_VERIFY: "false" }).sip.tls?.verify).toBe(false);
    expect(loadConfig(base).sip.tls).toBeUndefined();
  });

  it("names the setting that is missing, unreadable or of the wrong kind", () => {
    const fails = (env: Record<string, string>, key: string): void => {
      let err: unknown;
      try {
        loadConfig({ ...base, ...env });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(key);
    };
    fails({ SIP_TRANSPORTS: "tls" }, "SIP_TLS_CERT");
    fails({ SIP_TRANSPORTS: "tls", SIP_TLS_CERT: cert }, "SIP_TLS_KEY");
    fails({ SIP_TRANSPORTS: "tls", SIP_TLS_CERT: join(dir, "nope.pem"), SIP_TLS_KEY: key }, "SIP_TLS_CERT");
    fails({ SIP_TRANSPORTS: "tls", SIP_TLS_CERT: key, SIP_TLS_KEY: key }, "SIP_TLS_CERT");
    fails({ SIP_TRANSPORTS: "tls", SIP_TLS_CERT: cert, SIP_TLS_KEY: cert }, "SIP_TLS_KEY");
    fails({ SIP_TLS_CERT: cert }, "SIP_TLS_CERT");
    fails({ SIP_TRANSPORTS: "udp,sctp" }, "SIP_TRANSPORTS");
  });
});

describe("SIP_OUTBOUND_PROXY", () => {
  it("takes a SIP URI of a host and refuses anything else by name", () => {
    expect(loadConfig(base).sip.outboundProxy).toBeUndefined();
    expect(loadConfig({ ...base, SIP_OUTBOUND_PROXY: "sip:proxy.example.com:5060;lr" }).sip.outboundProxy).toBe("sip:proxy.example.com:5060;lr");
    expect(() => loadConfig({ ...base, SIP_OUTBOUND_PROXY: "proxy.example.com" })).toThrow(/SIP_OUTBOUND_PROXY/);
    expect(() => loadConfig({ ...base, SIP_OUTBOUND_PROXY: "<sip:proxy>" })).toThrow(ConfigError);
  });
});

describe("SIP_REGISTRAR and SIP_REGISTER_*", () => {
  it("reads a registration, defaults to one hour, and keeps the password out of the logged config", () => {
    expect(loadConfig(base).sip.register).toBeUndefined();
    const c = loadConfig({ ...base, SIP_REGISTRAR: "sip:pbx.example.com", SIP_REGISTER_USER: "gw1", SIP_REGISTER_PASSWORD: "pa55word" });
    expect(c.sip.register).toEqual({ registrar: "sip:pbx.example.com", user: "gw1", password: "pa55word", expiresS: 3600 });
    expect(JSON.stringify(redactConfig(c))).not.toContain("pa55word");
    expect(loadConfig({ ...base, SIP_REGISTRAR: "sips:pbx.example.com:5061", SIP_REGISTER_USER: "gw1", SIP_REGISTER_EXPIRES: "600" }).sip.register?.expiresS).toBe(600);
  });

  it("names what is missing or wrong", () => {
    expect(() => loadConfig({ ...base, SIP_REGISTRAR: "sip:pbx.example.com" })).toThrow(/SIP_REGISTER_USER/);
    expect(() => loadConfig({ ...base, SIP_REGISTER_USER: "gw1" })).toThrow(/SIP_REGISTER_USER/);
    expect(() => loadConfig({ ...base, SIP_REGISTRAR: "pbx.example.com", SIP_REGISTER_USER: "gw1" })).toThrow(/SIP_REGISTRAR/);
    expect(() => loadConfig({ ...base, SIP_REGISTRAR: "sip:pbx", SIP_REGISTER_USER: "gw 1" })).toThrow(/SIP_REGISTER_USER/);
    expect(() => loadConfig({ ...base, SIP_REGISTRAR: "sip:pbx", SIP_REGISTER_USER: "gw1", SIP_REGISTER_EXPIRES: "10" })).toThrow(/SIP_REGISTER_EXPIRES/);
  });
});

describe("SIP settings with SIP_BACKEND=drachtio", () => {
  const drachtio = { ...base, SIP_BACKEND: "drachtio", DRACHTIO_HOST: "127.0.0.1", DRACHTIO_SECRET: "cymru" };

  it("refuses by name, rather than ignores, what drachtio-server's own configuration sets", () => {
    expect(() => loadConfig({ ...drachtio, SIP_TLS_CERT: cert })).toThrow(/SIP_TLS_CERT.*drachtio-server's own configuration/);
  });

  it("takes a registration and an outbound proxy, checked as on the embedded stack", () => {
    const c = loadConfig({ ...drachtio, SIP_REGISTRAR: "sip:pbx", SIP_REGISTER_USER: "gw1", SIP_REGISTER_PASSWORD: "pw", SIP_OUTBOUND_PROXY: "sip:proxy:5060" });
    expect(c.sip.register).toEqual({ registrar: "sip:pbx", user: "gw1", password: "pw", expiresS: 3600 });
    expect(c.sip.outboundProxy).toBe("sip:proxy:5060");
    expect(() => loadConfig({ ...drachtio, SIP_REGISTRAR: "sip:pbx" })).toThrow(/SIP_REGISTER_USER/);
    expect(() => loadConfig({ ...drachtio, SIP_OUTBOUND_PROXY: "proxy" })).toThrow(/SIP_OUTBOUND_PROXY/);
  });
});
