import { spawn } from "node:child_process";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GraphFront as Front } from "../../bench/loadgen/graph-front.js";
import { graphErrors } from "../../sim/graph-errors.js";
import { GraphServer, type GraphBackend } from "../../sim/graph-server.js";
import { buildGatewayOnce } from "../support/cluster.js";

/**
 * bench/loadgen/graph-front.ts: the bench's Graph API front, on a thread of its own, times each
 * request as it arrives while the load generator's own loop is busy, and hands requests and
 * answers through unchanged.
 */
const PAGE = "100000000000777";
const TOKEN = "page-token";

describe("the bench's Graph front", () => {
  // The built module: its thread starts from dist/bench/loadgen/graph-front-thread.js beside it.
  let GraphFront: typeof Front;
  beforeAll(async () => {
    buildGatewayOnce();
    const built: string = "../../dist/bench/loadgen/graph-front.js";
    ({ GraphFront } = (await import(built)) as { GraphFront: typeof Front });
  }, 120_000);
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function start(): Promise<Front> {
    const backend: GraphBackend = {
      handleCalls: async (request) => {
        const callId = "callId" in request ? request.callId : "";
        if (callId !== "known") throw graphErrors.invalidCallId(callId);
        return { success: true };
      },
      callPermissions: () => ({ permission: { status: "has_permission" }, actions: [] }),
      sendMessage: () => {
        throw graphErrors.invalidParameter("no messages here");
      },
      callMetrics: () => ({ success: true }),
    };
    const graph = await GraphServer.start({ host: "127.0.0.1", port: 0, pageId: PAGE, pageAccessToken: TOKEN }, backend);
    closers.push(() => graph.close());
    const front = await GraphFront.start(graph.url, ["terminate"]);
    closers.push(() => front.close());
    return front;
  }

  const request = (callId: string): RequestInit => ({
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ call_id: callId, action: "terminate" }),
  });

  it("notes a request's arrival while this thread is busy, and passes the answer through", async () => {
    const front = await start();
    // Another process sends while this thread is held, as a loaded load generator's would be.
    const sender = spawn(process.execPath, ["-e", `fetch(${JSON.stringify(`${front.url}/v26.0/${PAGE}/calls`)}, ${JSON.stringify(request("known"))}).then(async (r) => console.log(r.status, await r.text()))`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    sender.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => sender.once("exit", resolve));
    const busyUntil = performance.now() + 1500;
    while (performance.now() < busyUntil) {
      // held
    }
    await exited;
    expect(out.trim()).toBe('200 {"success":true}');
    const arrived = front.takeArrival("terminate", "known");
    expect(arrived).toBeDefined();
    // Timed by this thread's request handler, the arrival would come after the hold.
    expect(arrived!).toBeLessThan(busyUntil);
    expect(front.takeArrival("terminate", "known")).toBeUndefined();
  }, 15_000);

  it("passes Graph's errors through with their status, and times only the actions asked for", async () => {
    const front = await start();
    const res = await fetch(`${front.url}/v26.0/${PAGE}/calls`, request("unknown"));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error?: { code?: number } };
    expect(body.error?.code).toBe(2018390);
    expect(front.takeArrival("accept", "unknown")).toBeUndefined();
  }, 15_000);
});
