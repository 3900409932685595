import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MetaSimulator, type SimCall } from "../../sim/index.js";
import { buildGatewayOnce, GatewayProcess, invitesPerCall, RandomBalancer } from "../support/cluster.js";
import { graphRequests, sleep, TEST_APP_SECRET, TEST_PAGE_ID, TEST_PAGE_TOKEN, TEST_VERIFY_TOKEN, waitFor } from "../support/harness.js";
import { RedisServer, freeTcpPort, requireRedis } from "../support/redis.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startEchoPbx, startSipp, type SippProcess } from "../support/sipp.js";

const LEASE_MS = 3_000;
const CLUSTER_SECRET = "cluster-test-secret-0123456789";
const GW0_MAX_CALLS = 2;

/**
 * Three gateway processes behind one webhook URL, sharing a real redis-server: Meta's webhooks
 * (the simulator's, every retry and duplicate included) reach a random instance each time, a SIPp
 * PBX answers the consumers' calls and SIPp agents call in at any instance.
 */
describe("three gateways behind one webhook URL", () => {
  let redis: RedisServer;
  let sim: MetaSimulator;
  let balancer: RandomBalancer;
  let pbxPort: number;
  let pbx: SippProcess | undefined;
  const gateways: GatewayProcess[] = [];

  const live = (): GatewayProcess[] => gateways.filter((g) => g.alive);
  /** The instance that took a consumer's call (its log says so), undefined while none has. */
  const ownerOf = (callId: string): GatewayProcess | undefined => gateways.find((g) => g.find("consumer call received", (l) => l.callId === callId).length > 0);
  const endedAt = (g: GatewayProcess, callId: string): boolean => g.find("call ended", (l) => l.callId === callId).length > 0;

  beforeAll(async () => {
    requireRedis();
    requireSipp();
    buildGatewayOnce();
    redis = await RedisServer.start();
    sim = await MetaSimulator.start({
      appSecret: TEST_APP_SECRET,
      pageId: TEST_PAGE_ID,
      pageAccessToken: TEST_PAGE_TOKEN,
      // Every webhook Meta sends arrives twice, each copy at a random instance.
      webhookDelivery: { duplicates: 1 },
      outboundPickup: { afterMs: 400 },
    });
    pbxPort = await freePort();
    const keyPrefix = `t${Date.now()}:`;
    for (let i = 0; i < 3; i++) {
      const httpPort = await freeTcpPort();
      const sipPort = await freePort();
      const g = new GatewayProcess(`gw-${i}`, httpPort, sipPort, {
        META_APP_SECRET: TEST_APP_SECRET,
        META_VERIFY_TOKEN: TEST_VERIFY_TOKEN,
        META_PAGE_ID: TEST_PAGE_ID,
        META_PAGE_ACCESS_TOKEN: TEST_PAGE_TOKEN,
        META_GRAPH_URL: sim.graphUrl,
        META_GRAPH_TIMEOUT_MS: "3000",
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(httpPort),
        PUBLIC_IP: "127.0.0.1",
        MEDIA_BIND_IP: "127.0.0.1",
        RTP_PORT_MIN: String(46200 + i * 600),
        RTP_PORT_MAX: String(46799 + i * 600),
        SIP_LISTEN: `127.0.0.1:${sipPort}`,
        SIP_TARGET: `sip:pbx@127.0.0.1:${pbxPort}`,
        SIP_ALLOW_FROM: "127.0.0.1",
        CALL_METRICS: "off",
        LOG_LEVEL: "info",
        REDIS_URL: redis.url,
        CLUSTER_SECRET,
        CLUSTER_INSTANCE_ID: `gw-${i}`,
        CLUSTER_LEASE_MS: String(LEASE_MS),
        REDIS_KEY_PREFIX: keyPrefix,
        // gw-0 fills up first: new calls reaching it then go to an instance with room.
        MAX_CONCURRENT_CALLS: i === 0 ? String(GW0_MAX_CALLS) : "50",
      });
      gateways.push(g);
    }
    await Promise.all(gateways.map((g) => g.started()));
    balancer = new RandomBalancer(() => live());
    sim.setWebhookUrl(await balancer.listen());
    await waitFor(() => gateways.every((g) => g.find("Redis reachable: taking calls").length > 0), 10_000, "every instance to reach Redis");
  }, 180_000);

  afterAll(async () => {
    await killAllSipp();
    for (const g of gateways) g.kill("SIGKILL");
    await Promise.all(gateways.map((g) => g.exited));
    await balancer?.close();
    await sim?.stop();
    await redis?.stop();
  });

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      process.stdout.write(`${gateways.map((g) => g.report()).join("\n")}\n`);
    });
    requireSipp();
    await pbx?.kill();
    pbx = await startEchoPbx(pbxPort, 50);
  });

  async function forwardedTotal(): Promise<number> {
    let total = 0;
    for (const g of live()) {
      const text = await (await fetch(`${g.url}/metrics`)).text();
      total += Number(/^gateway_cluster_forwards_total\{result="ok"\} (\d+)/m.exec(text)?.[1] ?? 0);
    }
    return total;
  }

  async function placeCalls(n: number): Promise<SimCall[]> {
    const calls: SimCall[] = [];
    for (let i = 0; i < n; i++) calls.push(await sim.placeCall());
    await Promise.all(calls.map((c) => c.waitForState("media", 15_000)));
    return calls;
  }

  it("consumer calls: one INVITE and one accept per call wherever the connect and its copy land; every terminate honoured within a second", async () => {
    const calls = await placeCalls(4);
    for (const call of calls) {
      const owner = ownerOf(call.id);
      expect(owner, `an instance took ${call.id}`).toBeDefined();
      // Exactly one instance took the call, whichever received the connect and its duplicate.
      expect(gateways.filter((g) => g.find("consumer call received", (l) => l.callId === call.id).length > 0)).toHaveLength(1);
      expect(graphRequests(sim, "accept", call.id)).toHaveLength(1);
    }
    for (const call of calls) {
      await call.hangup();
      await waitFor(() => endedAt(ownerOf(call.id)!, call.id), 1000, `the owner to end ${call.id} within a second of its terminate`);
    }
    await pbx!.kill();
    const result = await pbx!.done;
    const invites = invitesPerCall(result.messages);
    for (const call of calls) expect(invites.get(call.id)?.size, describeSipp(result)).toBe(1);
    expect([...balancer.hits.keys()].length).toBeGreaterThan(1);
  });

  it("agent calls ring and are answered at whichever instance their INVITE hit; Meta's webhooks for them are forwarded there", async () => {
    const agents = gateways.map((g, i) => {
      const psid = `71000${i}${String(Date.now()).slice(-5)}`;
      return { g, psid };
    });
    const running = await Promise.all(
      agents.map(async ({ g, psid }) => {
        const port = await freePort();
        const sipp = startSipp({ scenario: "gw-agent-call.xml", port, remote: `127.0.0.1:${g.sipPort}`, service: psid, vars: { talk_ms: "1500" }, timeoutS: 25, extraArgs: ["-rtp_echo"] });
        await sipp.ready;
        return sipp;
      }),
    );
    const results = await Promise.all(running.map((s) => finish(s, 25_000)));
    results.forEach((r, i) => {
      expect(r.code, describeSipp(r)).toBe(0);
      const { g, psid } = agents[i]!;
      expect(g.find("consumer ringing", (l) => l.psid === psid), `${g.name} rang ${psid}`).toHaveLength(1);
      for (const other of gateways.filter((x) => x !== g)) expect(other.find("agent call received", (l) => l.psid === psid)).toHaveLength(0);
    });
    // Each agent call's webhooks (and their copies) went to random instances: some had to be forwarded.
    expect(await forwardedTotal()).toBeGreaterThan(0);
  });

  it("a new call reaching a full instance is handed to one with room, and its webhooks follow it there", async () => {
    const gw0 = gateways[0]!;
    // Every webhook straight to gw-0 for a moment, as if the balancer chose it each time.
    sim.setWebhookUrl(`${gw0.url}/webhooks/meta`);
    try {
      // Up (and counted) before the next one arrives: gw-0 is full then.
      const calls = [...(await placeCalls(GW0_MAX_CALLS)), ...(await placeCalls(1))];
      const owners = calls.map((c) => ownerOf(c.id));
      expect(owners.filter((o) => o === gw0)).toHaveLength(GW0_MAX_CALLS);
      const handed = calls.find((c) => ownerOf(c.id) !== gw0)!;
      expect(gw0.find("new call handed to an instance with room", (l) => l.callId === handed.id)).toHaveLength(1);
      expect(graphRequests(sim, "reject", handed.id)).toHaveLength(0);
      for (const call of calls) {
        await call.hangup();
        await waitFor(() => endedAt(ownerOf(call.id)!, call.id), 1000, `${call.id}'s terminate, sent to gw-0, to be honoured by its owner`);
      }
    } finally {
      sim.setWebhookUrl(await balancer.url());
    }
  });

  it("Redis stopped: calls that are up go on and end normally, new calls are refused and /readyz is 503; back when Redis returns", async () => {
    const [kept, hungUpMeanwhile] = await placeCalls(2);
    await redis.halt();
    await waitFor(() => gateways.every((g) => g.find("Redis unreachable: serving the calls this instance owns, refusing new ones").length > 0), 5000, "every instance to notice");
    expect(await Promise.all(gateways.map((g) => g.readyz()))).toEqual([503, 503, 503]);
    expect(await gateways[1]!.readyzText()).toBe("not ready: Redis unreachable\n");
    // A terminate landing anywhere still reaches the call's owner (offered to every instance).
    await hungUpMeanwhile!.hangup();
    await waitFor(() => endedAt(ownerOf(hungUpMeanwhile!.id)!, hungUpMeanwhile!.id), 2000, "the owner to end the call without Redis");
    const refused = await sim.placeCall();
    // Refused where it landed (its copy, not deduplicated without Redis, may be refused a second time).
    await waitFor(() => graphRequests(sim, "reject", refused.id).length >= 1, 5000, "the new call to be refused at Meta");
    expect(graphRequests(sim, "accept", refused.id)).toHaveLength(0);
    expect(gateways.some((g) => g.find("new call refused: Redis unreachable, not admitting calls", (l) => l.callId === refused.id).length > 0)).toBe(true);

    await redis.resume();
    await waitFor(() => gateways.every((g) => g.find("Redis reachable again: taking calls, claims re-asserted").length > 0), 10_000, "every instance to reconnect");
    expect(await Promise.all(gateways.map((g) => g.readyz()))).toEqual([200, 200, 200]);
    // The call that was up all along is still up, owned where it was, and ends normally.
    await sleep(LEASE_MS + 1000);
    expect(kept!.state).not.toBe("ended");
    expect(graphRequests(sim, "terminate", kept!.id)).toHaveLength(0);
    const [fresh] = await placeCalls(1);
    await kept!.hangup();
    await waitFor(() => endedAt(ownerOf(kept!.id)!, kept!.id), 1000, "the kept call's terminate to be honoured");
    await fresh!.hangup();
    await waitFor(() => endedAt(ownerOf(fresh!.id)!, fresh!.id), 1000, "the new call's terminate to be honoured");
  });

  it("kill -9 of an instance mid-call: its consumers' calls are terminated at Meta within lease + 5 s, the others' go on", async () => {
    const calls = await placeCalls(4);
    const owners = new Map(calls.map((c) => [c.id, ownerOf(c.id)!]));
    const counts = gateways.map((g) => calls.filter((c) => owners.get(c.id) === g).length);
    const victim = gateways[counts.indexOf(Math.max(...counts))]!;
    const doomed = calls.filter((c) => owners.get(c.id) === victim);
    const spared = calls.filter((c) => owners.get(c.id) !== victim);
    victim.kill("SIGKILL");
    await victim.exited;
    const killedAt = Date.now();
    await waitFor(() => doomed.every((c) => graphRequests(sim, "terminate", c.id).length > 0), LEASE_MS + 5000, "the dead instance's calls to be terminated at Meta");
    expect(Date.now() - killedAt).toBeLessThan(LEASE_MS + 5000);
    for (const c of doomed) {
      await c.waitForState("ended", 2000);
      expect(graphRequests(sim, "terminate", c.id)).toHaveLength(1);
    }
    for (const c of spared) {
      expect(c.state).not.toBe("ended");
      await c.hangup();
      await waitFor(() => endedAt(owners.get(c.id)!, c.id), 1000, `${c.id}'s terminate to be honoured`);
    }
  });
});
