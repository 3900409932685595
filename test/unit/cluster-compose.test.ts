import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../../gateway/config/config.js";

/** compose.yaml's "scaled" profile against deploy/haproxy.cfg and the configuration schema. */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const read = (path: string): string => readFileSync(resolve(ROOT, path), "utf8");

interface Service {
  image?: string;
  profiles?: string[];
  extends?: { service: string };
  network_mode?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
}
const services = (parseYaml(read("compose.yaml")) as { services: Record<string, Service> }).services;
const VARS: Record<string, string> = {
  DRACHTIO_SECRET: "s3cret-token",
  META_APP_SECRET: "app-secret",
  META_VERIFY_TOKEN: "verify-token",
  META_PAGE_ID: "123456789012345",
  META_PAGE_ACCESS_TOKEN: "EAAtoken",
  REDIS_URL: "redis://127.0.0.1:6379",
  CLUSTER_SECRET: "cluster-secret-0123456789",
};
const interpolate = (v: string, vars: Record<string, string>): string =>
  v.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::[?-]([^}]*))?\}/g, (_m, name: string, dflt: string | undefined) => vars[name] || (dflt ?? ""));

/** A gateway service's environment as compose gives it (extends merged). */
function gatewayEnv(name: string, vars: Record<string, string>): Record<string, string> {
  const s = services[name]!;
  const base = s.extends ? (services[s.extends.service]!.environment ?? {}) : {};
  return Object.fromEntries(Object.entries({ ...base, ...s.environment }).map(([k, v]) => [k, interpolate(String(v), vars)]));
}

describe('compose.yaml, profile "scaled"', () => {
  const scaledGateways = ["gateway", ...Object.keys(services).filter((n) => services[n]!.extends?.service === "gateway")];

  it("adds Redis, a webhook balancer and more gateways, only in the profile", () => {
    for (const name of ["redis", "webhooks", ...scaledGateways.slice(1)]) expect(services[name]?.profiles, name).toEqual(["scaled"]);
    expect(services.gateway!.profiles).toBeUndefined();
    expect(scaledGateways.length).toBeGreaterThanOrEqual(3);
    for (const name of scaledGateways.slice(1)) expect(services[name]!.depends_on?.redis?.condition).toBe("service_healthy");
  });

  it("without REDIS_URL the gateway stays one instance on its own; with it every gateway joins", () => {
    expect(loadConfig(gatewayEnv("gateway", { ...VARS, REDIS_URL: "", CLUSTER_SECRET: "" })).cluster).toBeUndefined();
    for (const name of scaledGateways) expect(loadConfig(gatewayEnv(name, VARS)).cluster?.redisUrl, name).toBe(VARS.REDIS_URL);
  });

  it("gives each gateway its own HTTP port and RTP range, each port behind the balancer, each healthcheck on its own port", () => {
    const cfg = read("deploy/haproxy.cfg");
    const ranges: [number, number][] = [];
    for (const name of scaledGateways) {
      const c = loadConfig(gatewayEnv(name, VARS));
      expect(cfg, name).toMatch(new RegExp(`^\\s*server \\S+ 127\\.0\\.0\\.1:${c.http.port} check`, "m"));
      expect(services[name]!.healthcheck?.test?.join(" ") ?? services.gateway!.healthcheck!.test!.join(" "), name).toContain(`127.0.0.1:${c.http.port}/readyz`);
      for (const [lo, hi] of ranges) expect(c.media.rtpPortMax < lo || c.media.rtpPortMin > hi, `${name} RTP overlaps`).toBe(true);
      ranges.push([c.media.rtpPortMin, c.media.rtpPortMax]);
    }
    expect(new Set(scaledGateways.map((n) => loadConfig(gatewayEnv(n, VARS)).http.port)).size).toBe(scaledGateways.length);
  });

  it("the balancer serves only Meta's webhook path and checks liveness, not readiness", () => {
    const cfg = read("deploy/haproxy.cfg");
    expect(cfg).toMatch(/acl meta_webhook path \/webhooks\/meta/);
    expect(cfg).toMatch(/http-request deny .* unless meta_webhook/);
    expect(cfg).toMatch(/option httpchk GET \/healthz/);
    expect(services.webhooks!.volumes).toContain("./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro");
  });
});
