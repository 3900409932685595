import { afterEach, describe, expect, it } from "vitest";
import { SipResolver } from "../../sip/embedded/resolver.js";
import { TestDnsServer } from "../support/dns-server.js";

/** RFC 3263 NAPTR → SRV → A against a DNS server on loopback serving a test zone (a call through both: sip-srv.test.ts). */
describe("SipResolver with NAPTR records", () => {
  let dns: TestDnsServer | undefined;
  afterEach(async () => {
    await dns?.close();
    dns = undefined;
  });
  const resolver = (server: TestDnsServer, protocols: string[]) =>
    new SipResolver({ servers: [server.address], family: 4, supports: (p) => protocols.includes(p) });

  it("lets NAPTR choose the transport and the SRV owner, in order then preference", async () => {
    dns = await TestDnsServer.start({
      naptr: {
        "pbx.test": [
          { order: 10, preference: 20, service: "SIP+D2U", replacement: "_sip._udp.pbx.test" },
          { order: 10, preference: 10, service: "SIP+D2T", replacement: "tcp-sip.pbx.test" },
          { order: 5, preference: 10, service: "SIPS+D2T", replacement: "_sips._tcp.pbx.test" },
        ],
      },
      srv: {
        "tcp-sip.pbx.test": [{ priority: 1, weight: 0, port: 5081, target: "t.pbx.test" }],
        "_sip._udp.pbx.test": [{ priority: 1, weight: 0, port: 5082, target: "u.pbx.test" }],
        "_sips._tcp.pbx.test": [{ priority: 1, weight: 0, port: 5083, target: "s.pbx.test" }],
      },
      a: { "t.pbx.test": ["127.0.0.31"], "u.pbx.test": ["127.0.0.32"], "s.pbx.test": ["127.0.0.33"] },
    });
    // No TLS run here: SIPS+D2T is skipped, SIP+D2T (preference 10) comes before SIP+D2U.
    expect(await resolver(dns, ["UDP", "TCP"]).targets("pbx.test", undefined, undefined)).toEqual([
      { protocol: "TCP", address: "127.0.0.31", port: 5081, serverName: "pbx.test" },
      { protocol: "UDP", address: "127.0.0.32", port: 5082, serverName: "pbx.test" },
    ]);
    // A sips: URI follows SIPS+D2T only.
    expect(await resolver(dns, ["UDP", "TCP", "TLS"]).targets("pbx.test", undefined, undefined, true)).toEqual([
      { protocol: "TLS", address: "127.0.0.33", port: 5083, serverName: "pbx.test" },
    ]);
    // A transport in the URI skips NAPTR altogether (RFC 3263 §4.2).
    const before = dns.count("pbx.test", "NAPTR");
    expect(await resolver(dns, ["UDP", "TCP"]).targets("pbx.test", undefined, "UDP")).toEqual([
      { protocol: "UDP", address: "127.0.0.32", port: 5082, serverName: "pbx.test" },
    ]);
    expect(dns.count("pbx.test", "NAPTR")).toBe(before);
  });

  it("falls back to SRV without NAPTR records, and to A without either", async () => {
    dns = await TestDnsServer.start({
      srv: { "_sip._tcp.srv-only.test": [{ priority: 1, weight: 0, port: 5090, target: "h.srv-only.test" }] },
      a: { "h.srv-only.test": ["127.0.0.41"], "bare.test": ["127.0.0.42"] },
    });
    const r = resolver(dns, ["UDP", "TCP"]);
    expect(await r.targets("srv-only.test", undefined, undefined)).toEqual([{ protocol: "TCP", address: "127.0.0.41", port: 5090, serverName: "srv-only.test" }]);
    expect(dns.count("srv-only.test", "NAPTR")).toBe(1);
    expect(await r.targets("bare.test", undefined, undefined)).toEqual([{ protocol: "UDP", address: "127.0.0.42", port: 5060, serverName: "bare.test" }]);
  });

  it("keeps every answer for its TTL and asks again once it has run out", async () => {
    const zone = (address: string) => ({
      ttlS: 1,
      naptr: { "ttl.test": [{ order: 1, preference: 1, service: "SIP+D2U", replacement: "_sip._udp.ttl.test" }] },
      srv: { "_sip._udp.ttl.test": [{ priority: 1, weight: 0, port: 5060, target: "h.ttl.test" }] },
      a: { "h.ttl.test": [address] },
    });
    dns = await TestDnsServer.start(zone("127.0.0.51"));
    const r = resolver(dns, ["UDP"]);
    expect((await r.targets("ttl.test", undefined, undefined))[0]!.address).toBe("127.0.0.51");
    dns.zone = zone("127.0.0.52");
    // Within the TTL: the cached records, not a single new query.
    const queries = dns.queries.length;
    expect((await r.targets("ttl.test", undefined, undefined))[0]!.address).toBe("127.0.0.51");
    expect(dns.queries.length).toBe(queries);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect((await r.targets("ttl.test", undefined, undefined))[0]!.address).toBe("127.0.0.52");
    for (const [name, type] of [["ttl.test", "NAPTR"], ["_sip._udp.ttl.test", "SRV"], ["h.ttl.test", "A"]] as const) expect(dns.count(name, type)).toBe(2);
  });

  it("does not keep a failed lookup: SERVFAIL on NAPTR falls back to SRV and is asked again", async () => {
    dns = await TestDnsServer.start({
      servfail: ["flaky.test"],
      srv: { "_sip._udp.flaky.test": [{ priority: 1, weight: 0, port: 5070, target: "h.flaky.test" }] },
      a: { "h.flaky.test": ["127.0.0.61"] },
    });
    const r = resolver(dns, ["UDP"]);
    expect(await r.targets("flaky.test", undefined, undefined)).toEqual([{ protocol: "UDP", address: "127.0.0.61", port: 5070, serverName: "flaky.test" }]);
    await r.targets("flaky.test", undefined, undefined);
    // Asked twice per resolution (the resolver's tries), on each resolution.
    expect(dns.count("flaky.test", "NAPTR")).toBe(4);
  });
});
