import { createSocket, type Socket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MetaSimulator, type SimCall } from "../../sim/index.js";
import { buildGatewayOnce, GatewayProcess, loopbackGatewayEnv } from "../support/cluster.js";
import { graphRequests, sleep, TEST_APP_SECRET, TEST_PAGE_ID, TEST_PAGE_TOKEN, waitFor } from "../support/harness.js";
import { gatewayBackends, startDrachtio, type DrachtioServer } from "../support/drachtio.js";
import { freeTcpPort } from "../support/redis.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startEchoPbx, startSipp } from "../support/sipp.js";

const WORKERS = 2;
/** For the whole process, not per worker. */
const MAX_CALLS = 4;
const AGENT_PASSWORD = "pw-for-agents-0123";

/** The value of one sample line of a Prometheus exposition, NaN when absent. */
function sample(text: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text)?.[1] ?? NaN);
}

/** The simulator and one gateway process with WORKERS media workers, Meta's webhooks pointed at it. */
interface WorkerRig {
  sim: MetaSimulator;
  gw: GatewayProcess;
  stop(): Promise<void>;
}

async function startRig(name: string, o: { pbxPort: number; rtp: [number, number]; listenSip: boolean; env?: Record<string, string> }): Promise<WorkerRig> {
  requireSipp();
  buildGatewayOnce();
  const sim = await MetaSimulator.start({ appSecret: TEST_APP_SECRET, pageId: TEST_PAGE_ID, pageAccessToken: TEST_PAGE_TOKEN });
  const httpPort = await freeTcpPort();
  const sipPort = o.listenSip ? await freePort() : undefined;
  const gw = new GatewayProcess(name, httpPort, sipPort ?? 0, {
    ...loopbackGatewayEnv({ graphUrl: sim.graphUrl, httpPort, rtp: o.rtp, pbxPort: o.pbxPort, sipPort }),
    MEDIA_WORKERS: String(WORKERS),
    ...o.env,
  });
  await gw.started();
  sim.setWebhookUrl(`${gw.url}/webhooks/meta`);
  return {
    sim,
    gw,
    stop: async () => {
      await killAllSipp();
      gw.kill("SIGKILL");
      await gw.exited;
      await sim.stop();
    },
  };
}

/**
 * One gateway process with two media worker threads (MEDIA_WORKERS=2), as operators run it:
 * consumers' calls and agents' calls are spread over the workers, each call's audio goes both
 * ways on its own worker (a SIPp PBX and SIPp agents echo it back), and /metrics, /calls and
 * /readyz speak for the whole process.
 */
describe("one gateway process, calls on media worker threads", () => {
  let rig: WorkerRig;
  let sim: MetaSimulator;
  let gw: GatewayProcess;

  /** The worker whose log says it took this consumer call. */
  const workerOf = (callId: string): unknown => gw.find("consumer call received", (l) => l.callId === callId)[0]?.worker;

  beforeAll(async () => {
    requireSipp();
    const pbxPort = await freePort();
    await startEchoPbx(pbxPort, 50, 120);
    rig = await startRig("gw", {
      pbxPort,
      rtp: [47000, 47799],
      listenSip: true,
      env: {
        MAX_CONCURRENT_CALLS: String(MAX_CALLS),
        SIP_AGENT_AUTH_USER: "agent42",
        SIP_AGENT_AUTH_PASSWORD: AGENT_PASSWORD,
        // SIPp answers only the topmost challenge, with MD5.
        SIP_AGENT_AUTH_ALGORITHMS: "MD5,SHA-256",
      },
    });
    ({ sim, gw } = rig);
  }, 120_000);

  afterAll(async () => {
    await rig?.stop();
  });

  it("starts the configured number of workers and says so", () => {
    expect(gw.find("gateway started")[0]?.workers).toBe(WORKERS);
  });

  it("consumers' calls are spread over the workers; each consumer hears its own tone back, never another call's", async () => {
    const tones = [440, 620, 820, 1020];
    const calls: SimCall[] = [];
    for (const toneHz of tones) calls.push(await sim.placeCall({ toneHz }));
    await Promise.all(calls.map((c) => c.waitForState("media", 15_000)));
    await sleep(1500);
    // Each tone went Opus → worker → PCMU → SIPp echo → worker → Opus: what comes back is that call's.
    calls.forEach((call, i) => {
      const heard = call.consumer.detectTone(1);
      expect(Math.abs(heard.hz - tones[i]!), `${call.id} heard ${heard.hz} Hz`).toBeLessThan(10);
      expect(heard.snrDb, `${call.id}: a clean tone, not a mix of calls`).toBeGreaterThan(15);
    });
    const workers = new Set(calls.map((c) => workerOf(c.id)));
    expect(workers).toEqual(new Set([0, 1]));
    // MAX_CONCURRENT_CALLS counts the process's calls: a fifth call is refused at Meta, never rung.
    const refused = await sim.placeCall();
    await waitFor(() => graphRequests(sim, "reject", refused.id).length === 1, 5000, "the fifth call to be refused at Meta");
    expect(graphRequests(sim, "accept", refused.id)).toHaveLength(0);
    expect(await gw.readyz()).toBe(503);

    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(sample(metrics, "gateway_calls_active")).toBe(tones.length);
    // Process figures once for the process; the event loop figure is the worst thread's.
    expect(metrics.match(/^gateway_process_process_cpu_seconds_total /gm)).toHaveLength(1);
    expect(metrics.match(/^gateway_process_process_resident_memory_bytes /gm)).toHaveLength(1);
    expect(metrics.match(/^gateway_process_nodejs_eventloop_lag_max_seconds /gm)).toHaveLength(1);
    expect(Number(/^gateway_webhooks_total\{result="accepted"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(tones.length);
    // The machine's load, from the workers' reports, once for the process (no OVERLOAD_* limit set: measured, never refusing).
    // The owner carries no media and measures no loop of its own: a figure above 0 is a worker's
    // report (a timer never runs exactly on time).
    expect(metrics.match(/^gateway_media_loop_delay_seconds /gm)).toHaveLength(1);
    expect(sample(metrics, "gateway_media_loop_delay_seconds")).toBeGreaterThan(0);
    expect(sample(metrics, "gateway_media_loop_delay_seconds")).toBeLessThan(1);
    expect(sample(metrics, "gateway_idle_cpu_ratio")).toBeLessThanOrEqual(1);
    expect(sample(metrics, "gateway_overloaded")).toBe(0);
    const live = (await (await fetch(`${gw.url}/calls`)).json()) as { calls: { callId: string }[] };
    expect(live.calls.map((c) => c.callId).sort()).toEqual(calls.map((c) => c.id).sort());

    for (const call of calls) {
      await call.hangup();
      await waitFor(() => gw.find("call ended", (l) => l.callId === call.id).length > 0, 2000, `${call.id} to end`);
    }
    const after = await (await fetch(`${gw.url}/metrics`)).text();
    expect(sample(after, "gateway_calls_active")).toBe(0);
    expect(Number(/^gateway_calls_ended_total\{[^}]*outcome="completed-consumer-hangup"[^}]*\} (\d+)/m.exec(after)?.[1])).toBe(tones.length);
  });

  it("agents' INVITEs are spread over the workers; a digest challenge from one worker is answered at another; ringing, answer, audio both ways and the BYE reach the call's worker", async () => {
    const psids = ["7300001", "7300002"];
    const agents = await Promise.all(
      psids.map(async (psid) => {
        const sipp = startSipp({
          scenario: "gw-agent-call-auth.xml",
          port: await freePort(),
          remote: `127.0.0.1:${gw.sipPort}`,
          service: psid,
          vars: { talk_ms: "2500" },
          timeoutS: 25,
          extraArgs: ["-rtp_echo", "-au", "agent42", "-ap", AGENT_PASSWORD],
        });
        await sipp.ready;
        return sipp;
      }),
    );
    const simCalls = await Promise.all(
      psids.map(async (psid) => {
        await waitFor(() => gw.find("consumer ringing", (l) => l.psid === psid).length > 0, 8000, `${psid} to ring`);
        const call = sim.calls().find((c) => c.psid === psid)!;
        await call.answer();
        await call.waitForState("media", 10_000);
        return call;
      }),
    );
    await sleep(1200);
    for (const call of simCalls) {
      // The consumer's 440 Hz went to the agent's phone as G.711 and came back as Opus.
      expect(Math.abs(call.consumer.detectTone(1).hz - 440)).toBeLessThan(10);
    }
    const results = await Promise.all(agents.map((a) => finish(a, 25_000)));
    for (const r of results) expect(r.code, describeSipp(r)).toBe(0);
    for (const call of simCalls) {
      await call.waitForState("ended", 5000);
      expect(graphRequests(sim, "terminate", call.id)).toHaveLength(1);
    }
    const workers = new Set(psids.map((psid) => gw.find("agent call received", (l) => l.psid === psid)[0]?.worker));
    expect(workers).toEqual(new Set([0, 1]));
  });

  it("SIGTERM: live calls are ended at Meta and at the PBX, the workers stop and the process exits 0", async () => {
    const call = await sim.placeCall();
    await call.waitForState("media", 15_000);
    gw.kill("SIGTERM");
    // DRAIN_SECONDS (30 s) would let the call go on; end it from the consumer's side meanwhile.
    await sleep(500);
    expect(await gw.readyz().catch(() => 503)).toBe(503);
    await call.hangup();
    expect(await gw.exited).toBe(0);
    expect(gw.find("gateway stopped", (l) => l.worker === undefined)).toHaveLength(1);
    expect(gw.find("gateway stopped", (l) => l.worker !== undefined)).toHaveLength(WORKERS);
    expect(gw.find("call ended", (l) => l.callId === call.id)).toHaveLength(1);
  });
});

const drachtioBackend = gatewayBackends().find((b) => b.name === "drachtio")!;

/** The same process on drachtio-server: the SIP port between threads in front of drachtio-srf. */
describe.skipIf(drachtioBackend.skipReason !== undefined)("media worker threads with SIP_BACKEND=drachtio", () => {
  let rig: WorkerRig;
  let sim: MetaSimulator;
  let gw: GatewayProcess;
  let drachtio: DrachtioServer;

  beforeAll(async () => {
    requireSipp();
    drachtio = await startDrachtio();
    const pbxPort = await freePort();
    await startEchoPbx(pbxPort, 10);
    rig = await startRig("gw-drachtio", {
      pbxPort,
      rtp: [48400, 48999],
      listenSip: false,
      env: { SIP_BACKEND: "drachtio", DRACHTIO_HOST: drachtio.host, DRACHTIO_PORT: String(drachtio.port), DRACHTIO_SECRET: drachtio.secret },
    });
    ({ sim, gw } = rig);
    let ready = 0;
    await waitFor(() => {
      void gw.readyz().then((s) => (ready = s));
      return ready === 200;
    }, 10_000, "the gateway to be connected to drachtio-server");
  }, 120_000);

  afterAll(async () => {
    await rig?.stop();
    await drachtio?.stop();
  });

  it("consumers' calls on both workers reach the PBX through drachtio-server, audio both ways, ended by the consumer", async () => {
    const tones = [540, 900];
    const calls: SimCall[] = [];
    for (const toneHz of tones) calls.push(await sim.placeCall({ toneHz }));
    await Promise.all(calls.map((c) => c.waitForState("media", 15_000)));
    await sleep(1500);
    calls.forEach((call, i) => expect(Math.abs(call.consumer.detectTone(1).hz - tones[i]!), call.id).toBeLessThan(10));
    expect(new Set(calls.map((c) => gw.find("consumer call received", (l) => l.callId === c.id)[0]?.worker))).toEqual(new Set([0, 1]));
    for (const call of calls) {
      await call.hangup();
      await waitFor(() => gw.find("call ended", (l) => l.callId === call.id).length > 0, 3000, `${call.id} to end`);
    }
  });
});

/** A transfer from the PBX (REFER) reaches the call's worker through the SIP port, and its NOTIFYs go back out. */
describe("a blind transfer of a call on a media worker", () => {
  let rig: WorkerRig;
  let pbxPort: number;
  const sockets: Socket[] = [];

  async function phone(): Promise<number> {
    const sock = createSocket("udp4");
    sockets.push(sock);
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    return sock.address().port;
  }

  beforeAll(async () => {
    pbxPort = await freePort();
    rig = await startRig("gw-transfer", { pbxPort, rtp: [49000, 49599], listenSip: true });
  }, 120_000);

  afterAll(async () => {
    await rig?.stop();
    for (const s of sockets) s.close();
  });

  it("202, NOTIFY 100 then 200, the new party answers and the consumer's call goes on; nothing ended at Meta", async () => {
    const newPartyPort = await freePort();
    const a = startSipp({
      scenario: "gw-refer.xml",
      port: pbxPort,
      vars: { audio_port: String(await phone()), refer_after_ms: "1000", refer_to: `sip:b@127.0.0.1:${newPartyPort}` },
      timeoutS: 30,
    });
    const b = startSipp({ scenario: "gw-transfer-target.xml", port: newPartyPort, vars: { audio_port: String(await phone()), answer_after_ms: "0" }, timeoutS: 30 });
    await Promise.all([a.ready, b.ready]);
    const call = await rig.sim.placeCall();
    await call.waitForState("media", 10_000);
    await waitFor(() => rig.gw.find("transfer complete: the consumer is with the new party", (l) => l.callId === call.id).length > 0, 10_000, "the transfer");
    const resultA = await finish(a);
    expect(resultA.code, describeSipp(resultA)).toBe(0);
    expect(resultA.logs).toContain("NOTIFY SIP/2.0 100 Trying");
    expect(resultA.logs).toContain("NOTIFY SIP/2.0 200 OK");
    expect(graphRequests(rig.sim, "terminate", call.id)).toHaveLength(0);
    await call.hangup();
    const resultB = await finish(b);
    expect(resultB.code, describeSipp(resultB)).toBe(0);
    expect(resultB.logs).toMatch(/transfer INVITE Referred-By: <sip:agent@127\.0\.0\.1:\d+> X-Meta-PSID: \d+/);
  }, 40_000);
});
