import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * The Grafana dashboard in deploy/grafana queries only what the gateway exports: every metric a
 * panel names exists in a real gateway's /metrics after a call, and every label a query groups or
 * filters by is on that metric's samples. No Grafana is at hand here; its JSON is checked for the
 * structure Grafana imports (ids, datasource input, non-overlapping grid).
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DASHBOARD = resolve(ROOT, "deploy/grafana/meta-sip-gateway.json");

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { uid: string } }[];
}

/** Metric families of an exposition: type, and the label names seen on their samples. */
function readExposition(text: string): Map<string, { type: string; labels: Set<string> }> {
  const families = new Map<string, { type: string; labels: Set<string> }>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1]!, { type: type[2]!, labels: new Set() });
  }
  for (const line of text.split("\n")) {
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /.exec(line);
    if (!sample) continue;
    const name = sample[1]!;
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ""));
    for (const m of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) family?.labels.add(m[1]!);
  }
  return families;
}

/** The family a name in a query refers to (a histogram's _bucket/_sum/_count included). */
function familyOf(name: string, families: Map<string, { type: string; labels: Set<string> }>): string | undefined {
  if (families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  return base !== name && families.get(base)?.type === "histogram" ? base : undefined;
}

describe("Grafana dashboard", () => {
  let h: Harness;
  let receiver: Server;
  let exposition: string;
  /** Scraped while the call was live (live-call gauges have samples only then). */
  let duringCall: string;
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { uid: string; title: string; panels: Panel[]; __inputs: { name: string }[] };

  beforeAll(async () => {
    // An events receiver, so delivery metrics have samples too.
    receiver = createServer((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    h = await startHarness({
      env: { EVENTS_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/e`, EVENTS_SECRET: "dashboard-test-secret-123" },
    });
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await sleep(2500);
    // The round-trip histogram needs an SR of ours answered by Meta's RR: wait for one, not for luck.
    await waitFor(() => h.gateway.monitor.live().some((v) => v.quality.meta.roundTripMs !== undefined), 10_000, "an RTCP round trip on the Meta leg");
    duringCall = await (await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/metrics`)).text();
    await call.hangup();
    await waitFor(() => call.metricsReport !== undefined, 5000, "the call's report to Meta");
    await waitFor(() => h.gateway.events.stats().delivery?.queued === 0, 5000, "events delivered");
    exposition = await (await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/metrics`)).text();
  }, 40_000);
  afterAll(async () => {
    await h?.stop();
    receiver?.closeAllConnections();
    await new Promise<void>((r) => receiver?.close(() => r()));
  });

  it("names only metrics the gateway exports, with labels its samples carry", () => {
    const families = readExposition(exposition);
    for (const [name, live] of readExposition(duringCall)) for (const l of live.labels) families.get(name)?.labels.add(l);
    expect(duringCall).toMatch(/gateway_calls_by_state\{direction="inbound",state="active"\} 1/);
    const problems: string[] = [];
    let checked = 0;
    for (const panel of dashboard.panels) {
      for (const t of panel.targets ?? []) {
        const names = [...t.expr.matchAll(/\b(gateway_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
        if (names.length === 0) problems.push(`${panel.title}: no gateway metric in ${t.expr}`);
        const resolved = names.map((n) => [n, familyOf(n, families)] as const);
        for (const [n, f] of resolved) if (!f) problems.push(`${panel.title}: ${n} is not exported`);
        const labels = new Set<string>();
        for (const m of t.expr.matchAll(/\bby\s*\(([^)]*)\)/g)) for (const l of m[1]!.split(",")) labels.add(l.trim());
        for (const m of t.expr.matchAll(/\{([^}]*)\}/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*[!=]~?/g)) labels.add(l[1]!);
        labels.delete("le");
        for (const label of labels) {
          const carried = resolved.some(([, f]) => f !== undefined && families.get(f)!.labels.has(label));
          if (!carried) problems.push(`${panel.title}: no sample of ${names.join(", ")} has the label ${label}`);
        }
        checked++;
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(15);
  });

  it("shows the quality, setup, Graph and delivery metrics this issue is about", () => {
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join("\n");
    for (const name of [
      "gateway_call_mos_bucket",
      "gateway_call_packet_loss_ratio_bucket",
      "gateway_call_setup_seconds_bucket",
      "gateway_graph_request_duration_seconds_bucket",
      "gateway_calls_by_state",
      "gateway_event_deliveries_total",
      "gateway_call_metrics_reports_total",
    ]) {
      expect(exprs, name).toContain(name);
    }
    // And the call produced samples for them.
    expect(exposition).toMatch(/gateway_call_mos_count\{path="consumer_to_agent"\} 1/);
    expect(exposition).toMatch(/gateway_call_setup_seconds_count\{direction="inbound",phase="accept_to_media"\} 1/);
    expect(exposition).toMatch(/gateway_graph_request_duration_seconds_count\{action="call_metrics",result="ok"\} 1/);
    expect(exposition).toMatch(/gateway_event_deliveries_total\{result="delivered"\} 3/);
    expect(exposition).toMatch(/gateway_call_metrics_reports_total\{result="sent"\} 1/);
  });

  it("is a dashboard Grafana imports: unique ids, a Prometheus datasource input, panels that do not overlap", () => {
    expect(dashboard.uid).toBe("meta-sip-gateway");
    expect(dashboard.__inputs.map((i) => i.name)).toEqual(["DS_PROMETHEUS"]);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h: height } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + height; j++) {
          const cell = `${i},${j}`;
          expect(cells.has(cell), `${p.title} overlaps at ${cell}`).toBe(false);
          cells.add(cell);
        }
      }
      if (p.type !== "row") {
        expect(p.datasource?.uid, p.title).toBe("${DS_PROMETHEUS}");
        expect(p.targets?.length, p.title).toBeGreaterThan(0);
      }
    }
  });
});
