import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { CallEvent } from "../../gateway/observe/call-events.js";
import { EVENT_SIGNATURE_HEADER } from "../../gateway/observe/event-delivery.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

const SECRET = "integrator-secret-0123456789";

/** The integrator's endpoint: verifies signatures, fails the first attempt of some events. */
class Integrator {
  readonly delivered: CallEvent[] = [];
  readonly attempts: { id: string; status: number }[] = [];
  badSignatures = 0;
  /** Event types whose first attempt is answered 503. */
  failFirst = new Set<string>();
  private constructor(private readonly server: Server) {}

  static async start(): Promise<Integrator> {
    const server = createServer();
    const it = new Integrator(server);
    server.on("request", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const sig = `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;
        if (req.headers[EVENT_SIGNATURE_HEADER] !== sig) it.badSignatures++;
        const event = JSON.parse(body.toString("utf8")) as CallEvent;
        const first = !it.attempts.some((a) => a.id === event.id);
        const status = first && it.failFirst.has(event.type) ? 503 : 200;
        it.attempts.push({ id: event.id, status });
        if (status === 200) it.delivered.push(event);
        res.writeHead(status);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    return it;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/calls`;
  }

  forCall(metaCallId: string): CallEvent[] {
    return this.delivered.filter((e) => e.call.metaCallId === metaCallId);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe("integrator events and Meta's call_metrics", () => {
  let h: Harness;
  let integrator: Integrator;

  beforeAll(async () => {
    integrator = await Integrator.start();
    h = await startHarness({
      env: { EVENTS_URL: integrator.url, EVENTS_SECRET: SECRET, SIP_ALLOW_FROM: "127.0.0.1", RING_TIMEOUT_MS: "5000" },
      sim: { outboundPickup: "manual" },
    });
  });
  afterAll(async () => {
    await h?.stop();
    await integrator?.close();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });

  it("a consumer's call (echo target): ringing, answered, ended in order, signed, a failed delivery retried; one call_metrics retried past a 5xx", async () => {
    integrator.failFirst = new Set(["call.answered"]);
    // Graph fails the first report transiently: the gateway retries with back-off.
    h.sim.failNext("call_metrics", { httpStatus: 500, code: 2, message: "Service temporarily unavailable" });
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await sleep(1500);
    await call.hangup();
    await waitFor(() => integrator.forCall(call.id).some((e) => e.type === "call.ended"), 10_000, "call.ended at the integrator");
    const events = integrator.forCall(call.id);
    expect(events.map((e) => e.type)).toEqual(["call.ringing", "call.answered", "call.ended"]);
    expect(events.map((e) => e.sequence)).toEqual([1, 2, 3]);
    expect(integrator.badSignatures).toBe(0);
    // The answered event failed once and went again, before ended (order per call kept).
    const answeredId = events[1]!.id;
    expect(integrator.attempts.filter((a) => a.id === answeredId).map((a) => a.status)).toEqual([503, 200]);
    const ended = events[2]!;
    expect(ended.call).toMatchObject({ metaCallId: call.id, psid: call.psid, direction: "inbound", sipPeer: "echo", sipCallId: null });
    if (ended.type !== "call.ended") throw new Error("not an end event");
    expect(ended.data.outcome).toBe("completed-consumer-hangup");
    expect(ended.data.answeredAt).not.toBeNull();
    expect(ended.data.talkMs).toBeGreaterThan(1000);
    expect(ended.data.talkMs).toBeLessThanOrEqual(ended.data.durationMs);
    expect(ended.data.quality.mos.consumerToAgent).toBeGreaterThan(4);
    expect(ended.data.quality.pbx).toBeNull();
    // The same events as JSON lines on their own log stream.
    const lines = h.logs.lines.filter((l) => l.stream === "call-events" && (l.event as CallEvent).call.metaCallId === call.id);
    expect(lines.map((l) => (l.event as CallEvent).id)).toEqual(events.map((e) => e.id));

    await waitFor(() => call.metricsReport !== undefined, 8000, "call_metrics accepted after the retry");
    const posts = h.sim.requests.filter((r) => r.path.endsWith("/call_metrics"));
    expect(posts.map((r) => r.response?.status)).toEqual([500, 200]);
    expect(call.metricsReport!.endCallReason).toBe("Hangup_Call");
    expect(call.metricsReport!.audioStats.packets_received).toBeGreaterThan(50);
    // Sent once: nothing more arrives later.
    await sleep(1500);
    expect(h.sim.requests.filter((r) => r.path.endsWith("/call_metrics"))).toHaveLength(2);
  }, 40_000);

  it("an agent's call: events carry Meta's call id, the agent's SIP Call-ID and URI; call_metrics sent once", async () => {
    const psid = "7100000999";
    const port = await freePort();
    const sipp = startSipp({
      scenario: "gw-agent-call.xml",
      port,
      remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
      service: psid,
      vars: { talk_ms: "2000" },
      timeoutS: 25,
      extraArgs: ["-rtp_echo"],
    });
    await sipp.ready;
    await waitFor(() => h.logs.find("consumer ringing").some((l) => l.psid === psid), 5000, "the consumer to ring");
    const call = h.sim.calls().find((c) => c.psid === psid)!;
    await call.answer();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    await waitFor(() => integrator.forCall(call.id).some((e) => e.type === "call.ended"), 10_000, "call.ended at the integrator");
    const events = integrator.forCall(call.id);
    expect(events.map((e) => e.type)).toEqual(["call.ringing", "call.answered", "call.ended"]);
    for (const e of events) {
      expect(e.call.direction).toBe("outbound");
      expect(e.call.psid).toBe(psid);
      expect(e.call.sipCallId).toMatch(/\S+/);
      expect(e.call.sipPeer).toMatch(/^sip:/);
    }
    const ended = events[2]!;
    if (ended.type !== "call.ended") throw new Error("not an end event");
    expect(ended.data.outcome).toBe("completed-target-hangup");
    expect(ended.data.quality.pbx?.codec).toBeDefined();
    await waitFor(() => call.metricsReport !== undefined, 5000, "call_metrics for the agent's call");
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    expect(h.sim.requests.filter((r) => r.path.endsWith("/call_metrics") && (r.body as { call_id?: string }).call_id === call.id)).toHaveLength(1);
  }, 40_000);

  it("live calls are listed with both legs' ids while they run, and gone once they end", async () => {
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const res = await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/calls`);
    const { calls } = (await res.json()) as { calls: { callId: string; state: string; parties: { psid: string } }[] };
    expect(calls.find((c) => c.callId === call.id)).toMatchObject({ state: "active", parties: { psid: call.psid } });
    await call.hangup();
    await waitFor(() => h.gateway.monitor.size === 0, 5000, "the monitor to forget the call");
    const after = (await (await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/calls`)).json()) as { calls: unknown[] };
    expect(after.calls).toEqual([]);
  }, 30_000);
});
