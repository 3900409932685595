import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { CONFIG_KEYS, loadConfig } from "../../gateway/config/config.js";

/**
 * compose.yaml against the code and the README: every setting it gives the gateway is one the
 * configuration schema knows and accepts, the pair agrees on the control port and secret, and the
 * README's "Running with drachtio-server" names the same settings and ports.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const read = (path: string): string => readFileSync(resolve(ROOT, path), "utf8");

interface Service {
  image?: string;
  build?: unknown;
  network_mode?: string;
  ports?: string[];
  command?: string[];
  volumes?: string[];
  environment?: Record<string, string | number>;
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
}

const compose = parseYaml(read("compose.yaml")) as { services: Record<string, Service> };
const drachtio = compose.services.drachtio!;
const gateway = compose.services.gateway!;
const env = Object.fromEntries(Object.entries(gateway.environment ?? {}).map(([k, v]) => [k, String(v)]));

/** What compose makes of `${VAR:?…}` and `${VAR:-default}` with these variables set. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::([?-])([^}]*))?\}/g, (_m, name: string, op: string | undefined, rest: string | undefined) => {
    const value = vars[name];
    if (value !== undefined && value !== "") return value;
    if (op === "?") throw new Error(`compose would refuse to start: ${name} unset (${rest})`);
    return op === "-" ? (rest ?? "") : "";
  });
}

const SAMPLE_VARS = {
  DRACHTIO_SECRET: "s3cret-token",
  META_APP_SECRET: "app-secret",
  META_VERIFY_TOKEN: "verify-token",
  META_PAGE_ID: "123456789012345",
  META_PAGE_ACCESS_TOKEN: "EAAtoken",
  SIP_TARGET: "sip:support@pbx.example.com",
  PUBLIC_IP: "203.0.113.10",
};

/** The README section between its heading and the next one. */
function readmeSection(title: string): string {
  const text = read("README.md");
  const start = text.indexOf(`## ${title}\n`);
  if (start < 0) return "";
  const end = text.indexOf("\n## ", start + 4);
  return text.slice(start, end < 0 ? undefined : end);
}

function optionAfter(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

describe("compose.yaml", () => {
  it("pins drachtio-server's official image to a version tag and gives it the repository's configuration", () => {
    expect(drachtio.image).toMatch(/^drachtio\/drachtio-server:\d+\.\d+\.\d+$/);
    const mount = (drachtio.volumes ?? []).find((v) => v.endsWith(":/etc/drachtio.conf.xml:ro"));
    expect(mount).toBeDefined();
    const file = mount!.split(":")[0]!;
    expect(existsSync(resolve(ROOT, file)), `${file} exists`).toBe(true);
    expect(optionAfter(drachtio.command ?? [], "-f")).toBe("/etc/drachtio.conf.xml");
  });

  it("gives the gateway only settings the configuration schema knows, and they load", () => {
    const unknown = Object.keys(env).filter((k) => !(CONFIG_KEYS as readonly string[]).includes(k));
    expect(unknown).toEqual([]);
    const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v, SAMPLE_VARS)]));
    const config = loadConfig(resolved);
    expect(config.sip.backend).toEqual({ kind: "drachtio", host: "127.0.0.1", port: Number(env.DRACHTIO_PORT), secret: SAMPLE_VARS.DRACHTIO_SECRET });
    expect(config.http.port).toBe(8080);
    expect(config.media.publicIp).toBe(SAMPLE_VARS.PUBLIC_IP);
    // Without the secrets compose must refuse to start rather than run a half-configured gateway.
    expect(() => interpolate(env.DRACHTIO_SECRET ?? "", {})).toThrow(/DRACHTIO_SECRET/);
    expect(() => interpolate(env.META_APP_SECRET ?? "", {})).toThrow(/META_APP_SECRET/);
  });

  it("has the pair agree on the control port, address and secret", () => {
    const conf = read(drachtio.volumes!.find((v) => v.endsWith(":/etc/drachtio.conf.xml:ro"))!.split(":")[0]!);
    const admin = /<admin\s+port="(\d+)"[^>]*>([^<]+)<\/admin>/.exec(conf);
    expect(admin, "an <admin> element in the drachtio configuration").not.toBeNull();
    const port = optionAfter(drachtio.command ?? [], "--port") ?? admin![1];
    expect(port).toBe(env.DRACHTIO_PORT);
    expect(admin![1]).toBe(env.DRACHTIO_PORT);
    // The control port stays on loopback; the gateway reaches it there because both share the host's network.
    expect(admin![2]!.trim()).toBe("127.0.0.1");
    expect(env.DRACHTIO_HOST).toBe("127.0.0.1");
    expect(drachtio.network_mode).toBe("host");
    expect(gateway.network_mode).toBe("host");
    expect(optionAfter(drachtio.command ?? [], "--secret")).toMatch(/^\$\{DRACHTIO_SECRET[:}]/);
    expect(env.DRACHTIO_SECRET).toMatch(/^\$\{DRACHTIO_SECRET[:}]/);
    expect(env.SIP_BACKEND).toBe("drachtio");
  });

  it("has healthchecks, and the gateway waits for a healthy drachtio-server", () => {
    expect(drachtio.healthcheck?.test?.join(" ")).toContain(`/dev/tcp/127.0.0.1/${env.DRACHTIO_PORT}`);
    expect(gateway.healthcheck?.test?.join(" ")).toContain(`127.0.0.1:${env.HTTP_PORT}/readyz`);
    expect(gateway.depends_on?.drachtio?.condition).toBe("service_healthy");
  });

  describe('matches the README\'s "Running with drachtio-server"', () => {
    const section = readmeSection("Running with drachtio-server");

    it("exists", () => {
      expect(section.length).toBeGreaterThan(500);
    });

    it("names every drachtio setting compose gives the gateway, and the image", () => {
      for (const key of Object.keys(env).filter((k) => k === "SIP_BACKEND" || k.startsWith("DRACHTIO_"))) {
        expect(section, key).toMatch(new RegExp(`\`${key}[\`=]`));
      }
      expect(section).toContain(drachtio.image!);
      expect(section).toContain("compose.yaml");
    });

    it("lists the ports compose and drachtio's configuration use", () => {
      const conf = read("deploy/drachtio.conf.xml");
      const sipPort = /<contact>sip:[^:<]+:(\d+);transport=([a-z,]+)<\/contact>/.exec(conf);
      expect(sipPort, "a SIP contact with a port in the drachtio configuration").not.toBeNull();
      const rows = section.split("\n").filter((l) => l.startsWith("| "));
      const row = (port: string): string | undefined => rows.find((r) => r.startsWith(`| ${port} |`));
      expect(row(sipPort![1]!), `SIP port ${sipPort![1]}`).toMatch(/UDP and TCP/);
      expect(row(env.HTTP_PORT!), `HTTP port ${env.HTTP_PORT}`).toMatch(/TCP/);
      expect(row(`${env.RTP_PORT_MIN}–${env.RTP_PORT_MAX}`), `RTP range ${env.RTP_PORT_MIN}–${env.RTP_PORT_MAX}`).toMatch(/UDP/);
      expect(row(env.DRACHTIO_PORT!), `control port ${env.DRACHTIO_PORT}`).toMatch(/loopback only/);
    });
  });

  it("the README's configuration table names every setting compose uses", () => {
    const table = readmeSection("Configuration");
    for (const key of Object.keys(env)) expect(table, key).toContain(`\`${key}\``);
  });
});
