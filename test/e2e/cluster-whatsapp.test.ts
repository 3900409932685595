import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MetaSimulator, type WhatsAppCall } from "../../sim/index.js";
import { buildGatewayOnce, clusterCounter, clusterMemberEnv, clusterUp, killCluster, GatewayProcess, GraphHoldingProxy, invitesPerCall, RandomBalancer } from "../support/cluster.js";
import { graphRequests, sleep, TEST_APP_SECRET, TEST_VERIFY_TOKEN, waitFor } from "../support/harness.js";
import { RedisServer, freeTcpPort, requireRedis } from "../support/redis.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startEchoPbx, startSipp, type SippProcess, type SippResult } from "../support/sipp.js";

const LEASE_MS = 3_000;
const CLUSTER_SECRET = "cluster-test-secret-0123456789";
const WABA_ID = "556677889900";
const TOKEN = "EAAwhatsappclustertoken";
/** Two business numbers: a dead instance's call must be ended through its own. */
const NUMBER_A = "109876543210";
const NUMBER_B = "109876543211";

/**
 * WhatsApp Business calls through three gateway processes behind one webhook URL, sharing a real
 * redis-server: every webhook Meta sends (the simulator's, each twice) reaches a random instance,
 * a SIPp PBX answers the users' calls and SIPp agents call users through any instance.
 */
describe("WhatsApp calls through three gateways behind one webhook URL", () => {
  let redis: RedisServer;
  let redisClient: Redis;
  let sim: MetaSimulator;
  let graph: GraphHoldingProxy;
  let balancer: RandomBalancer;
  let pbxPort: number;
  let pbx: SippProcess | undefined;
  let keyPrefix: string;
  let userSeq = 0;
  const gateways: GatewayProcess[] = [];

  const live = (): GatewayProcess[] => gateways.filter((g) => g.alive);
  const logged = (g: GatewayProcess, msg: string, callId: string): boolean => g.find(msg, (l) => l.callId === callId).length > 0;
  /** The instance that took a user's call (its log says so), undefined while none has. */
  const ownerOf = (callId: string): GatewayProcess | undefined => gateways.find((g) => logged(g, "consumer call received", callId));
  const nextUser = (): string => `4477008${String(++userSeq).padStart(5, "0")}`;
  const businessCallTo = (phone: string): WhatsAppCall | undefined => sim.whatsapp.calls().find((c) => c.user.waId === phone);
  const okActions = (call: WhatsAppCall, action: string): number => call.actionLog.filter((a) => a.action === action && a.outcome === "ok").length;

  beforeAll(async () => {
    requireRedis();
    requireSipp();
    buildGatewayOnce();
    redis = await RedisServer.start();
    redisClient = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    sim = await MetaSimulator.start({
      appSecret: TEST_APP_SECRET,
      pageId: "1234567890",
      pageAccessToken: TOKEN,
      // Every webhook Meta sends arrives twice, each copy at a random instance.
      webhookDelivery: { duplicates: 1 },
      whatsapp: {
        numbers: [
          { wabaId: WABA_ID, phoneNumberId: NUMBER_A, displayPhoneNumber: "15550001111", accessToken: TOKEN },
          { wabaId: WABA_ID, phoneNumberId: NUMBER_B, displayPhoneNumber: "15550002222", accessToken: TOKEN },
        ],
        outboundPickup: { afterMs: 400 },
      },
    });
    graph = new GraphHoldingProxy(sim.graphUrl);
    const graphUrl = await graph.listen();
    pbxPort = await freePort();
    keyPrefix = `wa${Date.now()}:`;
    for (let i = 0; i < 3; i++) {
      const httpPort = await freeTcpPort();
      const sipPort = await freePort();
      gateways.push(
        new GatewayProcess(`gw-${i}`, httpPort, sipPort, {
          META_APP_SECRET: TEST_APP_SECRET,
          META_VERIFY_TOKEN: TEST_VERIFY_TOKEN,
          META_GRAPH_URL: graphUrl,
          META_GRAPH_TIMEOUT_MS: "5000",
          WHATSAPP_PHONE_NUMBERS: `${NUMBER_A},${NUMBER_B}`,
          WHATSAPP_ACCESS_TOKEN: TOKEN,
          WHATSAPP_WABA_ID: WABA_ID,
          ...clusterMemberEnv({ index: i, httpPort, sipPort, rtpBase: 44200, pbxPort, redisUrl: redis.url, secret: CLUSTER_SECRET, leaseMs: LEASE_MS, keyPrefix }),
        }),
      );
    }
    await clusterUp(gateways);
    balancer = new RandomBalancer(() => live());
    sim.setWebhookUrl(await balancer.listen());
  }, 180_000);

  afterAll(async () => {
    await killAllSipp();
    await killCluster(gateways);
    await balancer?.close();
    await graph?.close();
    await sim?.stop();
    redisClient?.disconnect();
    await redis?.stop();
  });

  beforeEach(() => requireSipp());

  /** A fresh SIPp PBX answering the users' calls (and echoing their audio). */
  async function startPbx(): Promise<SippProcess> {
    await pbx?.kill();
    const started = await startEchoPbx(pbxPort, 50);
    pbx = started;
    return started;
  }

  const forwardedTotal = (): Promise<number> => clusterCounter(live(), /^gateway_cluster_forwards_total\{result="ok"\} (\d+)/m);
  const duplicatesTotal = (): Promise<number> => clusterCounter(live(), /^gateway_cluster_duplicates_total (\d+)/m);

  /** Users call the business numbers in turn; resolves once each call's media flows. */
  async function placeUserCalls(numbers: string[]): Promise<WhatsAppCall[]> {
    const calls: WhatsAppCall[] = [];
    for (const phoneNumberId of numbers) calls.push(await sim.placeWhatsAppCall({ phoneNumberId, fromPhone: nextUser() }));
    await Promise.all(calls.map((c) => c.waitForState("media", 15_000)));
    return calls;
  }

  /** The exact bytes of the connect webhook Meta sent for a call. */
  function connectBody(callId: string): string {
    const body = sim.whatsapp.webhookPosts.map((p) => p.body).find((b) => {
      const value = (JSON.parse(b) as { entry: { changes: { value: { calls?: { id: string; event: string }[] } }[] }[] }).entry[0]?.changes[0]?.value;
      return value?.calls?.some((c) => c.id === callId && c.event === "connect");
    });
    if (body === undefined) throw new Error(`no connect webhook sent for ${callId}`);
    return body;
  }

  async function agentCall(g: GatewayProcess, phone: string, fromNumber: string, talkMs: number): Promise<SippProcess> {
    const port = await freePort();
    const sipp = startSipp({
      scenario: "gw-agent-call-from-number.xml",
      port,
      remote: `127.0.0.1:${g.sipPort}`,
      service: `+${phone}`,
      vars: { talk_ms: String(talkMs), number: fromNumber },
      timeoutS: 25,
      extraArgs: ["-rtp_echo"],
    });
    await sipp.ready;
    return sipp;
  }

  /** The user's own 440 Hz came back to them through the agent's echoing phone. */
  function expectEchoHeard(call: WhatsAppCall): void {
    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 440), `${call.id} heard ${JSON.stringify(heard)}`).toBeLessThan(10);
  }

  it("user calls: one pre_accept, one accept and one INVITE per call wherever the connect, its copy and a late retry land; every terminate honoured within a second", async () => {
    const answering = await startPbx();
    const duplicatesBefore = await duplicatesTotal();
    const calls = await placeUserCalls([NUMBER_A, NUMBER_B, NUMBER_A, NUMBER_B]);
    // Meta retries a connect whose 200 it missed: the same bytes again, once the call is up.
    for (const call of calls) expect(await sim.sendRawWebhook(connectBody(call.id))).toBe(200);
    await sleep(500);
    // Each connect's copy and its retry were dropped by the cluster, wherever they landed.
    expect(await duplicatesTotal()).toBeGreaterThanOrEqual(duplicatesBefore + 2 * calls.length);
    for (const call of calls) {
      expect(gateways.filter((g) => logged(g, "consumer call received", call.id)), `instances that took ${call.id}`).toHaveLength(1);
      expect(okActions(call, "pre_accept")).toBe(1);
      expect(okActions(call, "accept")).toBe(1);
      expect(graphRequests(sim, "pre_accept", call.id)).toHaveLength(1);
      expect(graphRequests(sim, "accept", call.id)).toHaveLength(1);
      expect(graphRequests(sim, "accept", call.id)[0]!.path).toContain(`/${call.phoneNumberId}/calls`);
    }
    for (const call of calls) {
      await call.hangup();
      await waitFor(() => logged(ownerOf(call.id)!, "call ended", call.id), 1000, `the owner to end ${call.id} within a second of its terminate`);
    }
    await answering.kill();
    const result = await answering.done;
    const invites = invitesPerCall(result.messages);
    for (const call of calls) expect(invites.get(call.id)?.size, describeSipp(result)).toBe(1);
    expect(balancer.hits.size).toBeGreaterThan(1);
  });

  it("agent calls through each instance: Meta's answer, RINGING and ACCEPTED reach the placing instance wherever they land; the call answers and audio flows", async () => {
    const agents = gateways.map((g) => ({ g, phone: nextUser() }));
    const forwardedBefore = await forwardedTotal();
    const running = await Promise.all(agents.map(({ g, phone }, i) => agentCall(g, phone, i % 2 === 0 ? NUMBER_A : NUMBER_B, 2000)));
    const results: SippResult[] = await Promise.all(running.map((s) => finish(s, 25_000)));
    results.forEach((r, i) => {
      expect(r.code, describeSipp(r)).toBe(0);
      const { g, phone } = agents[i]!;
      const call = businessCallTo(phone)!;
      expect(call.phoneNumberId).toBe(i % 2 === 0 ? NUMBER_A : NUMBER_B);
      expect(logged(g, "Meta's answer applied", call.id), `${g.name} applied Meta's answer to ${call.id}`).toBe(true);
      expect(g.find("consumer ringing", (l) => l.psid === `+${phone}`), `${g.name} rang +${phone}`).toHaveLength(1);
      for (const other of gateways.filter((x) => x !== g)) {
        expect(other.find("agent call received", (l) => l.psid === `+${phone}`)).toHaveLength(0);
        expect(logged(other, "Meta's answer applied", call.id)).toBe(false);
      }
      expectEchoHeard(call);
    });
    for (const { phone } of agents) {
      const call = businessCallTo(phone)!;
      await call.waitForState("ended", 5000);
      expect(call.actionLog.map((a) => a.action)).toEqual(["connect", "terminate"]);
    }
    // Each call's webhooks (and their copies) went to random instances: some had to be forwarded.
    expect(await forwardedTotal()).toBeGreaterThan(forwardedBefore);
  });

  it("Meta's answer webhook overtakes the Graph answer that names the call: it waits at another instance until the placing one has claimed the call", async () => {
    const [placing, receiving] = [gateways[0]!, gateways[1]!];
    const phone = nextUser();
    // The placing instance's connect answer is kept back; every webhook goes to another instance.
    const hold = graph.holdNext((body) => body.includes('"action":"connect"') && body.includes(phone));
    sim.setWebhookUrl(`${receiving.url}/webhooks/meta`);
    let released = false;
    try {
      const agent = await agentCall(placing, phone, NUMBER_B, 2000);
      await hold.held;
      await waitFor(() => businessCallTo(phone)?.connectWebhookStatus === 200, 5000, "Meta's connect webhook (its answer) to be taken by the other instance");
      const call = businessCallTo(phone)!;
      // Taken while nobody has claimed the call: the placing instance does not know its id yet.
      expect(await redisClient.exists(`${keyPrefix}own:${call.id}`)).toBe(0);
      await sleep(300);
      expect(logged(placing, "Meta's answer applied", call.id)).toBe(false);
      hold.release();
      released = true;
      const result = await finish(agent, 25_000);
      expect(result.code, describeSipp(result)).toBe(0);
      expect(logged(placing, "consumer call placed", call.id)).toBe(true);
      expect(logged(placing, "Meta's answer applied", call.id)).toBe(true);
      expect(placing.find("consumer ringing", (l) => l.psid === `+${phone}`)).toHaveLength(1);
      expect(gateways.filter((g) => g !== placing).some((g) => logged(g, "Meta's answer applied", call.id) || logged(g, "call ended", call.id))).toBe(false);
      expect(call.statuses).toEqual(expect.arrayContaining(["RINGING", "ACCEPTED"]));
      expectEchoHeard(call);
      await call.waitForState("ended", 5000);
      expect(call.actionLog.map((a) => a.action)).toEqual(["connect", "terminate"]);
    } finally {
      if (!released) hold.release();
      sim.setWebhookUrl(await balancer.url());
    }
  });

  it("kill -9 of the instance owning WhatsApp calls: each is terminated at Meta through its own number within lease + 5 s, the others go on", async () => {
    await startPbx();
    const calls = await placeUserCalls([NUMBER_B, NUMBER_A, NUMBER_B, NUMBER_B]);
    const owners = new Map(calls.map((c) => [c.id, ownerOf(c.id)!]));
    // The victim owns a call of the second number, so ending it through the first would fail.
    const counts = gateways.map((g) => calls.filter((c) => c.phoneNumberId === NUMBER_B && owners.get(c.id) === g).length);
    const victim = gateways[counts.indexOf(Math.max(...counts))]!;
    // An agent's call placed at the victim too, from the second number.
    const phone = nextUser();
    await agentCall(victim, phone, NUMBER_B, 20_000);
    await waitFor(() => businessCallTo(phone) !== undefined, 10_000, "the agent's call to reach Meta");
    await businessCallTo(phone)!.waitForState("media", 10_000);
    const doomed = [...calls.filter((c) => owners.get(c.id) === victim), businessCallTo(phone)!];
    const spared = calls.filter((c) => owners.get(c.id) !== victim);
    victim.kill("SIGKILL");
    await victim.exited;
    const killedAt = Date.now();
    const terminated = (c: WhatsAppCall): boolean => graphRequests(sim, "terminate", c.id).some((r) => r.response?.status === 200);
    await waitFor(() => doomed.every(terminated), LEASE_MS + 5000, "the dead instance's calls to be terminated at Meta");
    expect(Date.now() - killedAt).toBeLessThan(LEASE_MS + 5000);
    for (const c of doomed) {
      await c.waitForState("ended", 2000);
      // One terminate, through the call's own number: the claim's tag names it.
      const sent = graphRequests(sim, "terminate", c.id);
      expect(sent.map((r) => r.response?.status), `terminates of ${c.id}`).toEqual([200]);
      expect(sent[0]!.path).toContain(`/${c.phoneNumberId}/calls`);
      expect(c.end).toMatchObject({ by: "business", reason: "business-terminated" });
    }
    for (const c of spared) {
      expect(c.state).not.toBe("ended");
      await c.hangup();
      await waitFor(() => logged(owners.get(c.id)!, "call ended", c.id), 1000, `${c.id}'s terminate to be honoured`);
    }
  });
});
