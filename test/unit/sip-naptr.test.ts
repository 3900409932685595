import dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { negativeTtl, readAnswer } from "../../sip/embedded/dns-client.js";
import { selectNaptr, type NaptrRecord } from "../../sip/embedded/resolver.js";
import type { SipProtocol } from "../../sip/embedded/transport.js";

const naptr = (order: number, preference: number, services: string, replacement: string, flags = "s"): NaptrRecord => ({ order, preference, flags, services, replacement });
const running = (...protocols: SipProtocol[]) => (p: SipProtocol) => protocols.includes(p);

describe("NAPTR selection (RFC 3263 §4.1)", () => {
  const records = [
    naptr(20, 10, "SIP+D2U", "_sip._udp.example.test"),
    naptr(10, 50, "SIP+D2T", "_sip._tcp.example.test"),
    naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.test"),
    naptr(5, 10, "SIP+D2S", "_sip._sctp.example.test"),
    naptr(1, 1, "E2U+sip", "!^.*$!sip:x@y!", "u"),
  ];

  it("orders by order, then preference, among the services we run", () => {
    expect(selectNaptr(records, { supports: running("UDP", "TCP", "TLS"), secure: false })).toEqual([
      { protocol: "TLS", replacement: "_sips._tcp.example.test" },
      { protocol: "TCP", replacement: "_sip._tcp.example.test" },
      { protocol: "UDP", replacement: "_sip._udp.example.test" },
    ]);
    expect(selectNaptr(records, { supports: running("UDP"), secure: false })).toEqual([{ protocol: "UDP", replacement: "_sip._udp.example.test" }]);
  });

  it("keeps only SIPS+D2T for a sips: URI, and nothing when TLS is not run", () => {
    expect(selectNaptr(records, { supports: running("UDP", "TCP", "TLS"), secure: true })).toEqual([{ protocol: "TLS", replacement: "_sips._tcp.example.test" }]);
    expect(selectNaptr(records, { supports: running("UDP", "TCP"), secure: true })).toEqual([]);
  });

  it("ignores non-terminal flags, empty replacements and repeats of a transport", () => {
    const odd = [naptr(1, 1, "SIP+D2T", "_sip._tcp.a.test", "a"), naptr(2, 1, "sip+d2t", "."), naptr(3, 1, "SIP+D2T", "_sip._tcp.b.test"), naptr(4, 1, "SIP+D2T", "_sip._tcp.c.test")];
    expect(selectNaptr(odd, { supports: running("TCP"), secure: false })).toEqual([{ protocol: "TCP", replacement: "_sip._tcp.b.test" }]);
  });
});

describe("DNS answers and their TTLs", () => {
  const decoded = (packet: Parameters<typeof dnsPacket.encode>[0]) => dnsPacket.decode(dnsPacket.encode(packet));
  const question = { type: "SRV" as const, name: "_sip._udp.x.test" };

  it("takes the smallest TTL of the records asked for", () => {
    const reply = decoded({
      type: "response",
      id: 1,
      questions: [question],
      answers: [
        { type: "SRV", name: "_sip._udp.x.test", ttl: 300, data: { priority: 1, weight: 1, port: 5060, target: "a.x.test" } },
        { type: "SRV", name: "_sip._udp.x.test", ttl: 120, data: { priority: 2, weight: 1, port: 5060, target: "b.x.test" } },
        { type: "A", name: "a.x.test", ttl: 5, data: "127.0.0.1" },
      ],
    });
    const answer = readAnswer(reply, "_sip._udp.x.test", "SRV");
    expect(answer?.ttlS).toBe(120);
    expect(answer?.records.map((r) => r.target)).toEqual(["a.x.test", "b.x.test"]);
  });

  it("keeps NXDOMAIN and NODATA for the SOA's negative TTL, and SERVFAIL not at all", () => {
    const soa = { type: "SOA" as const, name: "x.test", ttl: 600, data: { mname: "ns.x.test", rname: "h.x.test", serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 45 } };
    expect(negativeTtl([soa])).toBe(45);
    expect(negativeTtl([])).toBe(30);
    const nx = readAnswer(decoded({ type: "response", id: 1, flags: 3, questions: [question], authorities: [soa] }), question.name, "SRV");
    expect(nx).toEqual({ records: [], ttlS: 45 });
    const nodata = readAnswer(decoded({ type: "response", id: 1, questions: [question], authorities: [soa] }), question.name, "SRV");
    expect(nodata).toEqual({ records: [], ttlS: 45 });
    expect(readAnswer(decoded({ type: "response", id: 1, flags: 2, questions: [question] }), question.name, "SRV")).toBeUndefined();
  });
});
