import dns from "node:dns";
import net from "node:net";
import type { SipProtocol, TransportTarget } from "./transport.js";

/** One SRV record, as node returns them. */
export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

export interface SipResolverOptions {
  /** Nameservers (`ip` or `ip:port`) for SRV and address lookups; unset = the system's. */
  servers?: string[];
  /** Address family we are bound to: its addresses come first. */
  family: 4 | 6;
  supports: (protocol: SipProtocol) => boolean;
}

/** How long an SRV answer is kept (node's resolver does not hand out record TTLs for SRV). */
const SRV_CACHE_MS = 60_000;

const SRV_PREFIX: Readonly<Record<SipProtocol, string>> = { TLS: "_sips._tcp", TCP: "_sip._tcp", UDP: "_sip._udp" };

/**
 * RFC 3263 §4 without NAPTR: where a SIP URI's host is reached. A numeric address or an explicit
 * port is used as is (A/AAAA for a name); otherwise SRV records of the transports we run
 * (`_sips._tcp`, `_sip._tcp`, `_sip._udp`, in that order, or only the URI's own transport) give
 * the targets, ordered by priority and, within one, by weighted random choice (RFC 2782). With no
 * SRV records, the host on the transport's default port.
 */
export class SipResolver {
  private readonly resolver: dns.promises.Resolver | undefined;
  private readonly srvCache = new Map<string, { until: number; records: SrvRecord[] }>();

  constructor(private readonly o: SipResolverOptions) {
    if (o.servers && o.servers.length > 0) {
      this.resolver = new dns.promises.Resolver({ timeout: 2_000, tries: 2 });
      this.resolver.setServers(o.servers);
    }
  }

  /**
   * Ordered targets for a host; `protocol` is the URI's (transport parameter or `sips:`), undefined
   * when it names none. Throws when nothing resolves.
   */
  async targets(host: string, port: number | undefined, protocol: SipProtocol | undefined): Promise<TransportTarget[]> {
    const fallbackProtocol = protocol ?? (this.o.supports("UDP") ? "UDP" : this.o.supports("TCP") ? "TCP" : "TLS");
    if (net.isIP(host)) return [{ protocol: fallbackProtocol, address: host, port: port ?? defaultPort(fallbackProtocol), serverName: host }];
    if (port === undefined) {
      const candidates = protocol ? [protocol] : (["TLS", "TCP", "UDP"] as const).filter((p) => this.o.supports(p));
      for (const p of candidates) {
        const records = await this.srv(`${SRV_PREFIX[p]}.${host}`);
        if (records.length === 0) continue;
        const out: TransportTarget[] = [];
        for (const r of orderSrv(records)) {
          // One target's name that does not resolve is skipped, not fatal: the next may.
          const addresses = await this.addresses(r.name).catch(() => []);
          for (const address of addresses) out.push({ protocol: p, address, port: r.port, serverName: host });
        }
        if (out.length > 0) return out;
      }
    }
    const addresses = await this.addresses(host);
    // The certificate of a host reached without SRV must name the host itself (RFC 5922 §4).
    return addresses.map((address) => ({ protocol: fallbackProtocol, address, port: port ?? defaultPort(fallbackProtocol), serverName: host }));
  }

  private async srv(name: string): Promise<SrvRecord[]> {
    const cached = this.srvCache.get(name);
    if (cached && cached.until > Date.now()) return cached.records;
    let records: SrvRecord[];
    try {
      records = this.resolver ? await this.resolver.resolveSrv(name) : await dns.promises.resolveSrv(name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A lookup that failed (no nameserver, timeout) is not an answer: fall back to the host's
      // addresses (RFC 3263 §4.2), which /etc/hosts may still give, and ask again next time.
      if (code !== "ENOTFOUND" && code !== "ENODATA") return [];
      records = [];
    }
    // A "." target means the service is decidedly not offered (RFC 2782).
    records = records.filter((r) => r.name !== "" && r.name !== ".");
    this.srvCache.set(name, { until: Date.now() + SRV_CACHE_MS, records });
    return records;
  }

  private async addresses(host: string): Promise<string[]> {
    let list: { address: string; family: number }[];
    if (this.resolver) {
      const [v4, v6] = await Promise.all([this.resolver.resolve4(host).catch(() => []), this.resolver.resolve6(host).catch(() => [])]);
      list = [...v4.map((address) => ({ address, family: 4 })), ...v6.map((address) => ({ address, family: 6 }))];
    } else {
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
