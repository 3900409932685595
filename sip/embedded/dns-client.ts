import dgram from "node:dgram";
import dns from "node:dns";
import net from "node:net";
import dnsPacket from "dns-packet";
import type { Answer, DecodedPacket, NaptrData, SrvData } from "dns-packet";

/** The record types SIP resolution asks for (RFC 3263). */
export type DnsRecordType = "NAPTR" | "SRV" | "A" | "AAAA";

export type DnsData<T extends DnsRecordType> = T extends "NAPTR" ? NaptrData : T extends "SRV" ? SrvData : string;

/** What a lookup found: the records (empty for NXDOMAIN or NODATA) and how long that holds. */
export interface DnsAnswer<T extends DnsRecordType> {
  records: DnsData<T>[];
  ttlS: number;
}

/** The lookup got no answer (timeout, SERVFAIL, REFUSED, nothing reachable): not cacheable. */
export class DnsLookupError extends Error {
  constructor(
    readonly host: string,
    readonly code: string,
  ) {
    super(`DNS lookup of ${host} failed: ${code}`);
    this.name = "DnsLookupError";
  }
}

export interface DnsClientOptions {
  /** Nameservers as `ip` or `ip:port` (`[v6]:port`); unset = the system's (`/etc/resolv.conf`). */
  servers?: string[];
  /** Per try, per server. */
  timeoutMs?: number;
  tries?: number;
  now?: () => number;
}

/** Negative answers without an SOA to take the time from (RFC 2308 §5) are kept this long. */
const DEFAULT_NEGATIVE_TTL_S = 30;
/** Nothing is kept longer than a day, whatever a zone says. */
const MAX_TTL_S = 86_400;

const RCODE_NOERROR = 0;
const RCODE_NXDOMAIN = 3;

/**
 * A small stub resolver for the record types SIP needs, over UDP (TCP when an answer is
 * truncated) to the configured or system nameservers. Unlike node's `dns` module it hands out
 * TTLs, so each answer is cached for exactly as long as its zone allows (RFC 1035 §4.1.3; negative
 * answers per RFC 2308). Messages are encoded and decoded by `dns-packet`.
 */
export class DnsClient {
  private readonly servers: { address: string; port: number }[];
  private readonly cache = new Map<string, { until: number; answer: DnsAnswer<DnsRecordType> }>();
  private readonly now: () => number;

  constructor(private readonly o: DnsClientOptions = {}) {
    this.servers = (o.servers && o.servers.length > 0 ? o.servers : dns.getServers()).map(parseServer);
    this.now = o.now ?? Date.now;
  }

  /** Cached or fresh records of one type; throws DnsLookupError when no server answered usefully. */
  async query<T extends DnsRecordType>(name: string, type: T): Promise<DnsAnswer<T>> {
    const key = `${type}:${name.toLowerCase()}`;
    const cached = this.cache.get(key);
    const now = this.now();
    if (cached && cached.until > now) return { records: cached.answer.records, ttlS: Math.ceil((cached.until - now) / 1000) } as DnsAnswer<T>;
    const answer = await this.ask(name, type);
    if (answer.ttlS > 0) this.cache.set(key, { until: this.now() + answer.ttlS * 1000, answer });
    else this.cache.delete(key);
    return answer;
  }

  private async ask<T extends DnsRecordType>(name: string, type: T): Promise<DnsAnswer<T>> {
    let lastCode = "ENOSERVER";
    for (let attempt = 0; attempt < (this.o.tries ?? 2); attempt++) {
      for (const server of this.servers) {
        try {
          let reply = await exchangeUdp(server, name, type, this.o.timeoutMs ?? 2_000);
          if (reply.flag_tc) reply = await exchangeTcp(server, name, type, this.o.timeoutMs ?? 2_000);
          const answer = readAnswer(reply, name, type);
          if (answer) return answer as DnsAnswer<T>;
          lastCode = `RCODE_${rcodeOf(reply)}`;
        } catch (err) {
          lastCode = (err as NodeJS.ErrnoException).code ?? "EBADRESP";
        }
      }
    }
    throw new DnsLookupError(name, lastCode);
  }
}

/** The records and TTL an answer gives, or undefined when it is no answer (SERVFAIL, REFUSED). */
export function readAnswer<T extends DnsRecordType>(reply: DecodedPacket, name: string, type: T): DnsAnswer<T> | undefined {
  const rcode = rcodeOf(reply);
  if (rcode === RCODE_NXDOMAIN) return { records: [], ttlS: negativeTtl(reply.authorities ?? []) };
  if (rcode !== RCODE_NOERROR) return undefined;
  // CNAMEs in the answer are followed by the recursive server; we take the records of our type
  // that hang off the name or the chain's end, which is all a stub resolver may trust anyway.
  const wanted = new Set([name.toLowerCase()]);
  for (const a of reply.answers ?? []) if (a.type === "CNAME" && wanted.has(a.name.toLowerCase())) wanted.add(String(a.data).toLowerCase());
  const matching = (reply.answers ?? []).filter((a): a is Answer & { data: DnsData<T> } => a.type === type && wanted.has(a.name.toLowerCase()));
  if (matching.length === 0) return { records: [], ttlS: negativeTtl(reply.authorities ?? []) };
  const ttlS = Math.min(...matching.map((a) => ("ttl" in a && typeof a.ttl === "number" ? a.ttl : 0)), MAX_TTL_S);
  return { records: matching.map((a) => a.data), ttlS: Math.max(0, ttlS) };
}

/** RFC 2308 §5: a negative answer lives for min(SOA TTL, SOA minimum). */
export function negativeTtl(authorities: readonly Answer[]): number {
  const soa = authorities.find((a) => a.type === "SOA");
  if (!soa || soa.type !== "SOA") return DEFAULT_NEGATIVE_TTL_S;
  return Math.max(0, Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0, MAX_TTL_S));
}

/** The response code: the low four bits of the header flags (RFC 1035 §4.1.1). */
function rcodeOf(reply: DecodedPacket): number {
  return (reply.flags ?? 0) & 0xf;
}

function query(name: string, type: DnsRecordType): { id: number; bytes: Buffer } {
  const id = Math.floor(Math.random() * 0x10000);
  const bytes = dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: "IN" }] });
  return { id, bytes };
}

/** A reply for our query: same id, a response, the same question; anything else is ignored. */
function matches(reply: DecodedPacket, id: number, name: string, type: DnsRecordType): boolean {
  const q = reply.questions?.[0];
  return reply.id === id && reply.type === "response" && q !== undefined && q.type === type && q.name.toLowerCase() === name.toLowerCase();
}

function exchangeUdp(server: { address: string; port: number }, name: string, type: DnsRecordType, timeoutMs: number): Promise<DecodedPacket> {
  const { id, bytes } = query(name, type);
  const socket = dgram.createSocket(net.isIPv6(server.address) ? "udp6" : "udp4");
  return new Promise<DecodedPacket>((resolve, reject) => {
    const timer = setTimeout(() => done(undefined, Object.assign(new Error("DNS timeout"), { code: "ETIMEOUT" })), timeoutMs);
    const done = (reply: DecodedPacket | undefined, err?: Error): void => {
      clearTimeout(timer);
      socket.removeAllListeners("message");
      socket.on("error", () => {});
      socket.close();
      if (reply) resolve(reply);
      else reject(err);
    };
    socket.on("error", (err) => done(undefined, err));
    socket.on("message", (msg, rinfo) => {
      // Only the server asked may answer (a spoofed reply from elsewhere is dropped).
      if (rinfo.port !== server.port || rinfo.address !== server.address) return;
      let reply: DecodedPacket;
      try {
        reply = dnsPacket.decode(msg);
      } catch {
        return;
      }
      if (matches(reply, id, name, type)) done(reply);
    });
    socket.send(bytes, server.port, server.address, (err) => {
      if (err) done(undefined, err);
    });
  });
}

function exchangeTcp(server: { address: string; port: number }, name: string, type: DnsRecordType, timeoutMs: number): Promise<DecodedPacket> {
  const { id, bytes } = query(name, type);
  return new Promise<DecodedPacket>((resolve, reject) => {
    const socket = net.connect({ host: server.address, port: server.port });
    let buffer = Buffer.alloc(0);
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error("DNS timeout"), { code: "ETIMEOUT" })));
    socket.on("error", reject);
    socket.on("close", () => reject(Object.assign(new Error("DNS connection closed"), { code: "ECONNRESET" })));
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length < 2) return;
      const length = buffer.readUInt16BE(0);
      if (buffer.length < 2 + length) return;
      socket.destroy();
      try {
        const reply = dnsPacket.decode(buffer.subarray(2, 2 + length));
        if (matches(reply, id, name, type)) resolve(reply);
        else reject(Object.assign(new Error("DNS reply does not match"), { code: "EBADRESP" }));
      } catch (err) {
        reject(err);
      }
    });
    const framed = Buffer.alloc(2 + bytes.length);
    framed.writeUInt16BE(bytes.length, 0);
    bytes.copy(framed, 2);
    socket.write(framed);
  });
}

/** `ip`, `ip:port` or `[v6]:port` (node's and SIP_DNS_SERVERS's forms); port 53 by default. */
export function parseServer(text: string): { address: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) return { address: bracketed[1]!, port: bracketed[2] ? Number(bracketed[2]) : 53 };
  if (net.isIPv6(text)) return { address: text, port: 53 };
  const m = /^([^:]+)(?::(\d+))?$/.exec(text);
  return { address: m?.[1] ?? text, port: m?.[2] ? Number(m[2]) : 53 };
}
