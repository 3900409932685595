import dns from "node:dns";
import net from "node:net";
import { DnsClient, type DnsData } from "./dns-client.js";
import type { SipProtocol, TransportTarget } from "./transport.js";

/** One SRV record (RFC 2782). */
export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** One NAPTR record (RFC 3403), as far as SIP reads it. */
export interface NaptrRecord {
  order: number;
  preference: number;
  flags: string;
  services: string;
  replacement: string;
}

export interface SipResolverOptions {
  /** Nameservers (`ip` or `ip:port`) for NAPTR, SRV and address lookups; unset = the system's. */
  servers?: string[];
  /** Address family we are bound to: its addresses come first. */
  family: 4 | 6;
  supports: (protocol: SipProtocol) => boolean;
  /** Where lookups go; default a DnsClient toward `servers`. */
  dns?: DnsClient;
}

/** RFC 3263 §4.1 service fields and the transport each names. */
const NAPTR_SERVICES: Readonly<Record<string, SipProtocol>> = { "SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS" };

const SRV_PREFIX: Readonly<Record<SipProtocol, string>> = { TLS: "_sips._tcp", TCP: "_sip._tcp", UDP: "_sip._udp" };

/**
 * RFC 3263 §4: where a SIP URI's host is reached. A numeric address or an explicit port is used
 * as is (A/AAAA for a name). Otherwise, without a transport in the URI, NAPTR records choose the
 * transports (those we run; only SIPS+D2T for a `sips:` URI) in order and preference, each
 * naming an SRV owner; without usable NAPTR records, the SRV records of the transports we run
 * (`_sips._tcp`, `_sip._tcp`, `_sip._udp`; only `_sips._tcp` for `sips:`), or of the URI's own
 * transport. SRV targets are ordered by priority and weighted random choice (RFC 2782), and every
 * address of every target is listed, so a caller fails over down the list. With no SRV records,
 * the host on the transport's default port. Every answer is cached for its DNS TTL.
 */
export class SipResolver {
  private readonly dns: DnsClient;

  constructor(private readonly o: SipResolverOptions) {
    this.dns = o.dns ?? new DnsClient({ servers: o.servers });
  }

  /**
   * Ordered targets for a host. `protocol` is the URI's transport parameter (TLS for `sips:` with
   * one), undefined when it names none; `secure` marks a `sips:` URI. Throws when nothing resolves.
   */
  async targets(host: string, port: number | undefined, protocol: SipProtocol | undefined, secure = false): Promise<TransportTarget[]> {
    const fixed = protocol ?? (secure ? "TLS" : undefined);
    const fallbackProtocol = fixed ?? (this.o.supports("UDP") ? "UDP" : this.o.supports("TCP") ? "TCP" : "TLS");
    if (net.isIP(host)) return [{ protocol: fallbackProtocol, address: host, port: port ?? defaultPort(fallbackProtocol), serverName: host }];
    // "localhost" is never asked of DNS (RFC 6761 §6.3): the system's resolver answers it.
    if (port === undefined && !/(^|\.)localhost\.?$/i.test(host)) {
      const services = await this.services(host, protocol, secure);
      const out: TransportTarget[] = [];
      for (const service of services) {
        for (const r of orderSrv(await this.srv(service.srvName))) {
          // One target's name that does not resolve is skipped, not fatal: the next may.
          const addresses = await this.addresses(r.name).catch(() => []);
          // The certificate must name the URI's host, not the SRV target (RFC 5922 §4).
          for (const address of addresses) out.push({ protocol: service.protocol, address, port: r.port, serverName: host });
        }
      }
      if (out.length > 0) return out;
    }
    const addresses = await this.addresses(host);
    return addresses.map((address) => ({ protocol: fallbackProtocol, address, port: port ?? defaultPort(fallbackProtocol), serverName: host }));
  }

  /** The SRV owner names to ask, in the order they are tried. */
  private async services(host: string, protocol: SipProtocol | undefined, secure: boolean): Promise<{ protocol: SipProtocol; srvName: string }[]> {
    // A transport named in the URI goes straight to its SRV records (RFC 3263 §4.2).
    if (protocol) return [{ protocol, srvName: `${SRV_PREFIX[protocol]}.${host}` }];
    const chosen = selectNaptr(await this.lookup(host, "NAPTR"), { supports: this.o.supports, secure });
    if (chosen.length > 0) return chosen.map((c) => ({ protocol: c.protocol, srvName: c.replacement }));
    const candidates: SipProtocol[] = secure ? ["TLS"] : ["TLS", "TCP", "UDP"];
    return candidates.filter((p) => this.o.supports(p)).map((p) => ({ protocol: p, srvName: `${SRV_PREFIX[p]}.${host}` }));
  }

  private async srv(name: string): Promise<SrvRecord[]> {
    const records = await this.lookup(name, "SRV");
    // A "." target means the service is decidedly not offered (RFC 2782).
    return records
      .map((r) => ({ name: r.target, port: r.port, priority: r.priority ?? 0, weight: r.weight ?? 0 }))
      .filter((r) => r.name !== "" && r.name !== ".");
  }

  /**
   * Records of a name; a lookup that failed (no nameserver, timeout, SERVFAIL) is not an answer:
   * it gives none, so resolution falls back (RFC 3263 §4.2), and is asked again next time.
   */
  private async lookup<T extends "NAPTR" | "SRV">(name: string, type: T): Promise<DnsData<T>[]> {
    try {
      return (await this.dns.query(name, type)).records;
    } catch {
      return [];
    }
  }

  private async addresses(host: string): Promise<string[]> {
    let list: { address: string; family: number }[];
    if (this.o.servers && this.o.servers.length > 0) {
      const [v4, v6] = await Promise.all([
        this.dns.query(host, "A").then((a) => a.records).catch(() => []),
        this.dns.query(host, "AAAA").then((a) => a.records).catch(() => []),
      ]);
      list = [...v4.map((address) => ({ address, family: 4 })), ...v6.map((address) => ({ address, family: 6 }))];
    } else {
      // The system's resolver, so /etc/hosts names (localhost) work; it caches by its own rules.
      list = await dns.promises.lookup(host, { all: true });
    }
    // Prefer the family we are bound to; "localhost" often resolves to ::1 first.
    const preferred = list.filter((a) => a.family === this.o.family);
    const rest = list.filter((a) => a.family !== this.o.family);
    const out = [...preferred, ...rest].map((a) => a.address);
    if (out.length === 0) throw Object.assign(new Error(`no address for ${host}`), { code: "ENOTFOUND" });
    return out;
  }
}

export function defaultPort(protocol: SipProtocol): number {
  return protocol === "TLS" ? 5061 : 5060;
}

/**
 * RFC 3263 §4.1: the NAPTR records a SIP client follows, best first. Only terminal "s" records of
 * the services we run (SIPS+D2T alone for a `sips:` URI), in ascending order, then preference;
 * a transport already chosen by a better record is not listed again.
 */
export function selectNaptr(
  records: readonly NaptrRecord[],
  o: { supports: (protocol: SipProtocol) => boolean; secure: boolean },
): { protocol: SipProtocol; replacement: string }[] {
  const usable = records
    .map((r) => ({ r, protocol: NAPTR_SERVICES[r.services.toUpperCase()] }))
    .filter((x): x is { r: NaptrRecord; protocol: SipProtocol } => {
      if (x.protocol === undefined || x.r.flags.toLowerCase() !== "s") return false;
      if (x.r.replacement === "" || x.r.replacement === ".") return false;
      if (o.secure && x.protocol !== "TLS") return false;
      return o.supports(x.protocol);
    })
    .sort((a, b) => a.r.order - b.r.order || a.r.preference - b.r.preference);
  const seen = new Set<SipProtocol>();
  const out: { protocol: SipProtocol; replacement: string }[] = [];
  for (const { r, protocol } of usable) {
    if (seen.has(protocol)) continue;
    seen.add(protocol);
    out.push({ protocol, replacement: r.replacement });
  }
  return out;
}

/** RFC 2782 order: ascending priority; within a priority, a weighted random permutation. */
export function orderSrv(records: readonly SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) byPriority.set(r.priority, [...(byPriority.get(r.priority) ?? []), r]);
  const out: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    // Zero-weight records first in the list, as RFC 2782 asks, so they keep a small chance.
    const left = [...byPriority.get(priority)!].sort((a, b) => a.weight - b.weight);
    while (left.length > 0) {
      const total = left.reduce((sum, r) => sum + r.weight, 0);
      let pick = 0;
      if (total > 0) {
        const threshold = random() * total;
        let running = 0;
        pick = left.findIndex((r) => (running += r.weight) >= threshold);
        if (pick < 0) pick = left.length - 1;
      } else {
        pick = Math.floor(random() * left.length);
      }
      out.push(left.splice(pick, 1)[0]!);
    }
  }
  return out;
}
