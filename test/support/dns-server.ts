import dgram from "node:dgram";
import dnsPacket from "dns-packet";
import type { Answer } from "dns-packet";

/** Records a test zone serves, by owner name. */
export interface TestZone {
  naptr?: Record<string, { order: number; preference: number; flags?: string; service: string; replacement: string }[]>;
  srv?: Record<string, { priority: number; weight: number; port: number; target: string }[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  /** Names answered SERVFAIL (a broken upstream). */
  servfail?: string[];
  /** TTL of every record, and of negative answers (through the SOA); default 60 s. */
  ttlS?: number;
  /** Names whose first answer of each type is held this long (a slow upstream), by owner name. */
  slowFirstMs?: Record<string, number>;
}

/**
 * A small authoritative DNS server on 127.0.0.1 (UDP) for one test zone, encoded by dns-packet:
 * NAPTR, SRV, A and AAAA answers, NODATA for other types of a known name, NXDOMAIN (with an SOA
 * for negative caching) for unknown names, SERVFAIL where told, a name's first answers late where
 * told. The zone can be swapped while it runs; it counts the queries it saw.
 */
export class TestDnsServer {
  readonly queries: { name: string; type: string }[] = [];

  private constructor(
    private readonly socket: dgram.Socket,
    public zone: TestZone,
  ) {
    socket.on("message", (msg, rinfo) => {
      const seen = this.queries.length;
      const reply = this.answer(msg);
      if (!reply) return;
      const q = this.queries[seen];
      const slowMs = q && this.count(q.name, q.type) === 1 ? (this.zone.slowFirstMs?.[q.name] ?? 0) : 0;
      setTimeout(() => socket.send(reply, rinfo.port, rinfo.address), slowMs);
    });
  }

  static async start(zone: TestZone): Promise<TestDnsServer> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => resolve());
    });
    return new TestDnsServer(socket, zone);
  }

  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  /** How many queries of a type (NAPTR, SRV, A, AAAA) for a name it has answered. */
  count(name: string, type: string): number {
    return this.queries.filter((q) => q.name === name && q.type === type).length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private answer(msg: Buffer): Buffer | undefined {
    let query: ReturnType<typeof dnsPacket.decode>;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = query.questions?.[0];
    if (!question) return undefined;
    const name = question.name.toLowerCase();
    this.queries.push({ name, type: question.type });
    const z = this.zone;
    const ttl = z.ttlS ?? 60;
    const answers: Answer[] = [];
    if (question.type === "NAPTR") {
      for (const r of z.naptr?.[name] ?? []) {
        answers.push({ type: "NAPTR", name, ttl, data: { order: r.order, preference: r.preference, flags: r.flags ?? "s", services: r.service, regexp: "", replacement: r.replacement } });
      }
    } else if (question.type === "SRV") {
      for (const r of z.srv?.[name] ?? []) answers.push({ type: "SRV", name, ttl, data: { priority: r.priority, weight: r.weight, port: r.port, target: r.target } });
    } else if (question.type === "A") {
      for (const ip of z.a?.[name] ?? []) answers.push({ type: "A", name, ttl, data: ip });
    } else if (question.type === "AAAA") {
      for (const ip of z.aaaa?.[name] ?? []) answers.push({ type: "AAAA", name, ttl, data: ip });
    }
    const known = [z.naptr, z.srv, z.a, z.aaaa].some((records) => records?.[name] !== undefined);
    const rcode = z.servfail?.includes(name) ? "SERVFAIL" : known ? "NOERROR" : "NXDOMAIN";
    const rcodeBits = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 }[rcode];
    const soa: Answer = {
      type: "SOA",
      name: "test",
      ttl,
      data: { mname: "ns.test", rname: "hostmaster.test", serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: ttl },
    };
    return dnsPacket.encode({
      type: "response",
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | rcodeBits,
      questions: [question],
      answers: rcode === "NOERROR" ? answers : [],
      authorities: rcode !== "SERVFAIL" && answers.length === 0 ? [soa] : [],
    });
  }
}
