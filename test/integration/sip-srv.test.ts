import net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { orderSrv, SipResolver } from "../../sip/embedded/resolver.js";
import { TestDnsServer } from "../support/dns-server.js";
import { graphRequests, startHarness, waitFor, type Harness } from "../support/harness.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/** RFC 3263 resolution against a DNS server on loopback serving a test zone; never a real resolver. */
describe("SRV ordering (RFC 2782)", () => {
  it("sorts by priority, and within one picks by weight", () => {
    const records = [
      { name: "c", port: 3, priority: 20, weight: 0 },
      { name: "a", port: 1, priority: 10, weight: 90 },
      { name: "b", port: 2, priority: 10, weight: 10 },
    ];
    let aFirst = 0;
    for (let i = 0; i < 2000; i++) {
      const order = orderSrv(records).map((r) => r.name);
      expect(order[2]).toBe("c");
      if (order[0] === "a") aFirst++;
    }
    // 90 % expected; far outside chance either way.
    expect(aFirst).toBeGreaterThan(1650);
    expect(aFirst).toBeLessThan(1950);
  });
});

describe("SipResolver", () => {
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await TestDnsServer.start({
      srv: {
        "_sip._udp.pbx.test": [
          { priority: 20, weight: 0, port: 5090, target: "backup.pbx.test" },
          { priority: 10, weight: 0, port: 5080, target: "main.pbx.test" },
        ],
        "_sips._tcp.secure.test": [{ priority: 1, weight: 0, port: 5071, target: "tls.secure.test" }],
      },
      a: { "main.pbx.test": ["127.0.0.11"], "backup.pbx.test": ["127.0.0.12"], "plain.test": ["127.0.0.13"], "tls.secure.test": ["127.0.0.14"] },
    });
  });
  afterAll(() => dns?.close());
  const resolver = (protocols: string[]) =>
    new SipResolver({ servers: [dns.address], family: 4, supports: (p) => protocols.includes(p) });

  it("follows SRV targets in priority order, keeping the URI's host as the certificate name", async () => {
    const targets = await resolver(["UDP"]).targets("pbx.test", undefined, undefined);
    expect(targets).toEqual([
      { protocol: "UDP", address: "127.0.0.11", port: 5080, serverName: "pbx.test" },
      { protocol: "UDP", address: "127.0.0.12", port: 5090, serverName: "pbx.test" },
    ]);
  });

  it("asks _sips._tcp for TLS, falls back to A on the default port, and uses an explicit port as is", async () => {
    const r = resolver(["UDP", "TCP", "TLS"]);
    expect(await r.targets("secure.test", undefined, "TLS")).toEqual([{ protocol: "TLS", address: "127.0.0.14", port: 5071, serverName: "secure.test" }]);
    expect(await r.targets("plain.test", undefined, undefined)).toEqual([{ protocol: "UDP", address: "127.0.0.13", port: 5060, serverName: "plain.test" }]);
    const before = dns.queries.length;
    expect(await r.targets("plain.test", 5070, "TCP")).toEqual([{ protocol: "TCP", address: "127.0.0.13", port: 5070, serverName: "plain.test" }]);
    expect(dns.queries.slice(before).some((q) => q.type === "SRV")).toBe(false);
    await expect(r.targets("nowhere.test", undefined, undefined)).rejects.toThrow();
  });

  it("keeps SRV answers for a while instead of asking again", async () => {
    const r = resolver(["UDP"]);
    await r.targets("pbx.test", undefined, "UDP");
    const srvQueries = (): number => dns.queries.filter((q) => q.name === "_sip._udp.pbx.test").length;
    const before = srvQueries();
    await r.targets("pbx.test", undefined, "UDP");
    expect(srvQueries()).toBe(before);
  });
});

describe("a consumer's call to a target found by SRV", () => {
  let h: Harness | undefined;
  let dns: TestDnsServer | undefined;
  afterEach(async () => {
    await killAllSipp();
    await h?.stop();
    h = undefined;
    await dns?.close();
    dns = undefined;
  });

  // With NAPTR, the URI names no transport (UDP would be the default) and NAPTR picks TCP.
  it.each([
    { via: "SRV", target: "sip:agent@pbx.test;transport=tcp", scenario: "uas-srv-target.xml", naptr: undefined },
    {
      via: "NAPTR and SRV",
      target: "sip:agent@pbx.test",
      scenario: "uas-naptr-target.xml",
      naptr: {
        "pbx.test": [
          { order: 10, preference: 10, service: "SIP+D2T", replacement: "_sip._tcp.pbx.test" },
          { order: 20, preference: 10, service: "SIP+D2U", replacement: "_sip._udp.pbx.test" },
        ],
      },
    },
  ])("found by $via, fails over from a target that refuses the connection to the next one", async ({ target, scenario, naptr }) => {
    requireSipp();
    const live = await freePort();
    const dead = await closedTcpPort();
    dns = await TestDnsServer.start({
      naptr,
      srv: {
        "_sip._tcp.pbx.test": [
          { priority: 10, weight: 0, port: dead, target: "dead.pbx.test" },
          { priority: 20, weight: 0, port: live, target: "live.pbx.test" },
        ],
      },
      a: { "dead.pbx.test": ["127.0.0.1"], "live.pbx.test": ["127.0.0.1"] },
    });
    const sipp = startSipp({ scenario, port: live, transport: "t1", timeoutS: 20 });
    await sipp.ready;
    h = await startHarness({ env: { SIP_TARGET: target, SIP_DNS_SERVERS: dns.address } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    const failover = h.logs.find("SIP target did not answer; trying the next");
    expect(failover).toHaveLength(1);
    expect(failover[0]!.target).toMatchObject({ protocol: "TCP", port: dead });
    expect(failover[0]!.next).toMatchObject({ protocol: "TCP", port: live });
    await call.hangup();
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });
});

/** A TCP port nothing listens on (bound, then closed): connecting to it is refused at once. */
async function closedTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe("SipResolver when SRV lookups fail", () => {
  it("falls back to the host's addresses (RFC 3263 §4.2) and asks again next time", async () => {
    const dns = await TestDnsServer.start({ servfail: ["_sip._udp.flaky.test"], a: { "flaky.test": ["127.0.0.21"] } });
    try {
      const r = new SipResolver({ servers: [dns.address], family: 4, supports: (p) => p === "UDP" });
      expect(await r.targets("flaky.test", undefined, undefined)).toEqual([{ protocol: "UDP", address: "127.0.0.21", port: 5060, serverName: "flaky.test" }]);
      const srvQueries = (): number => dns.queries.filter((q) => q.name === "_sip._udp.flaky.test").length;
      const before = srvQueries();
      await r.targets("flaky.test", undefined, undefined);
      expect(srvQueries()).toBeGreaterThan(before);
    } finally {
      await dns.close();
    }
  });
});
