/**
 * `npm run bench -- --cluster [--instances 3] [--calls 24] [--concurrency 6]`: several gateway
 * processes behind one webhook URL sharing a real redis-server, Meta's webhooks (each delivered
 * twice, as Meta's duplicates) at a random instance each time. Prints the calls each instance took
 * and what routing adds to webhook handling: p50/p99 from arrival to the call manager when the
 * call is owned where the webhook landed (Redis dedupe and look-up), to the owner's 200 when it is
 * forwarded, and the difference, the forwarding overhead.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { MetaSimulator } from "../sim/index.js";
import { RedisServer, freeTcpPort } from "../test/support/redis.js";
import { RandomBalancer } from "./cluster/balancer.js";
import { BENCH_CLUSTER_SECRET, parseMetrics, routingFigures, type RoutingFigures } from "./cluster/figures.js";

const GATEWAY_MAIN = fileURLToPath(new URL("../gateway/main.js", import.meta.url));
const META = { pageId: "100000000000778", appSecret: "bench-cluster-app-secret", pageAccessToken: "bench-cluster-token", verifyToken: "bench-verify" };
const RTP_BASE = 30000;
const RTP_SPAN = 1000;

interface Instance {
  name: string;
  httpPort: number;
  child: ChildProcess;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function waitReady(i: Instance, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (i.child.exitCode !== null) throw new Error(`${i.name} exited (${i.child.exitCode})`);
    const ok = await fetch(`http://127.0.0.1:${i.httpPort}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > until) throw new Error(`${i.name} not ready within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startInstance(index: number, redisUrl: string, graphUrl: string, keyPrefix: string): Promise<Instance> {
  const httpPort = await freeTcpPort();
  const rtpMin = RTP_BASE + index * RTP_SPAN;
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    env: {
      PATH: process.env.PATH,
      META_APP_SECRET: META.appSecret,
      META_VERIFY_TOKEN: META.verifyToken,
      META_PAGE_ID: META.pageId,
      META_PAGE_ACCESS_TOKEN: META.pageAccessToken,
      META_GRAPH_URL: graphUrl,
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(httpPort),
      PUBLIC_IP: "127.0.0.1",
      MEDIA_BIND_IP: "127.0.0.1",
      RTP_PORT_MIN: String(rtpMin),
      RTP_PORT_MAX: String(rtpMin + RTP_SPAN - 1),
      SIP_TARGET: "echo",
      SIP_LISTEN: "127.0.0.1:0",
      CALL_METRICS: "off",
      EVENTS_LOG: "off",
      LOG_LEVEL: "warn",
      REDIS_URL: redisUrl,
      CLUSTER_SECRET: BENCH_CLUSTER_SECRET,
      CLUSTER_INSTANCE_ID: `bench-${index}`,
      REDIS_KEY_PREFIX: keyPrefix,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return { name: `bench-${index}`, httpPort, child };
}

async function oneCall(sim: MetaSimulator, holdMs: number): Promise<boolean> {
  const call = await sim.placeCall();
  try {
    await call.waitForState("media", 20_000);
    await new Promise((r) => setTimeout(r, holdMs));
    await call.hangup();
    await call.waitForState("ended", 10_000);
    return true;
  } catch {
    return false;
  }
}

/** Runs `calls` calls, `concurrency` at a time; resolves with how many went through to media and back. */
async function runCalls(sim: MetaSimulator, calls: number, concurrency: number, holdMs: number): Promise<number> {
  let next = 0;
  let ok = 0;
  const worker = async (): Promise<void> => {
    while (next < calls) {
      next++;
      if (await oneCall(sim, holdMs)) ok++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ok;
}

const ms = (s: number | undefined): string => (s === undefined || Number.isNaN(s) ? "—" : `${(s * 1000).toFixed(2)} ms`);

function report(figures: RoutingFigures[], okCalls: number, calls: number, hits: Map<string, number>): void {
  out("");
  out(`calls through to media and back: ${okCalls} of ${calls}`);
  out("| instance | calls taken | webhooks received | routed here p50 / p99 | forwarded p50 / p99 | forward hop p50 / p99 | forwards | handed off |");
  out("|---|---|---|---|---|---|---|---|");
  for (const f of figures) {
    out(
      `| ${f.instance} | ${f.callsTaken} | ${hits.get(f.instance) ?? 0} | ${ms(f.local.p50)} / ${ms(f.local.p99)} | ${ms(f.forwarded.p50)} / ${ms(f.forwarded.p99)} | ${ms(f.hop.p50)} / ${ms(f.hop.p99)} | ${f.forwards} | ${f.handoffs} |`,
    );
  }
  const known = (xs: number[]): number[] => xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const median = (xs: number[]): number => {
    const s = known(xs);
    return s.length ? s[Math.floor((s.length - 1) / 2)]! : Number.NaN;
  };
  const worst = (xs: number[]): number => known(xs).at(-1) ?? Number.NaN;
  out("");
  out(`routing where the call is owned (Redis dedupe + look-up): p50 ${ms(median(figures.map((f) => f.local.p50)))}, p99 ${ms(worst(figures.map((f) => f.local.p99)))}`);
  out(`routing to another instance (the same + the forward): p50 ${ms(median(figures.map((f) => f.forwarded.p50)))}, p99 ${ms(worst(figures.map((f) => f.forwarded.p99)))}`);
  out(`forwarding overhead (one signed POST to the owner, to its 200): p50 ${ms(median(figures.map((f) => f.hop.p50)))}, p99 ${ms(worst(figures.map((f) => f.hop.p99)))}`);
  out("(p50: median over instances; p99: the worst instance's; figures include event-loop waits of processes carrying media on the same cores)");
}

export async function runClusterBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      instances: { type: "string", default: "3" },
      calls: { type: "string", default: "24" },
      concurrency: { type: "string", default: "6" },
      "hold-ms": { type: "string", default: "1000" },
    },
  });
  const count = (name: string, v: string | undefined, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} takes 1–${max}, not ${v}`);
    return n;
  };
  const instances = count("instances", values.instances, 8);
  const calls = count("calls", values.calls, 10_000);
  const concurrency = count("concurrency", values.concurrency, 200);
  const holdMs = count("hold-ms", values["hold-ms"], 600_000);

  const redis = await RedisServer.start();
  const sim = await MetaSimulator.start({ ...META, webhookDelivery: { duplicates: 1 } });
  const gws: Instance[] = [];
  const balancer = new RandomBalancer(() => gws.filter((g) => g.child.exitCode === null).map((g) => ({ name: g.name, httpPort: g.httpPort })));
  try {
    const prefix = `bench${Date.now()}:`;
    for (let i = 0; i < instances; i++) gws.push(await startInstance(i, redis.url, sim.graphUrl, prefix));
    await Promise.all(gws.map((g) => waitReady(g, 20_000)));
    sim.setWebhookUrl(await balancer.listen());
    out(`cluster bench: ${instances} instances, ${calls} calls, ${concurrency} at a time, each held ${holdMs} ms; every webhook delivered twice, each copy to a random instance`);
    const ok = await runCalls(sim, calls, concurrency, holdMs);
    // The last terminates' copies are still being routed for a moment.
    await new Promise((r) => setTimeout(r, 500));
    const figures = await Promise.all(gws.map(async (g) => routingFigures(g.name, parseMetrics(await (await fetch(`http://127.0.0.1:${g.httpPort}/metrics`)).text()))));
    report(figures, ok, calls, balancer.hits);
    return ok === calls ? 0 : 1;
  } finally {
    for (const g of gws) if (g.child.exitCode === null) g.child.kill("SIGTERM");
    await Promise.all(gws.map((g) => (g.child.exitCode === null ? new Promise((r) => g.child.once("exit", r)) : undefined)));
    await balancer.close();
    await sim.stop();
    await redis.stop();
  }
}
