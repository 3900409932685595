import { readFileSync, readdirSync, readlinkSync } from "node:fs";

/** Kernel clock ticks per second for /proc CPU times (USER_HZ, 100 on every Linux build that matters). */
const CLK_TCK = 100;

export interface ProcSample {
  pid: number;
  /** User + system CPU time in seconds, all threads. */
  cpuSeconds: number;
  rssMB: number;
  fds: number;
  udpSockets: number;
  /** Datagrams the kernel dropped on this process's UDP sockets (receive queue full), cumulative. */
  udpDrops: number;
}

/** One process's CPU, memory, descriptors and UDP sockets, read from /proc. Undefined once it has exited. */
export function sampleProcess(pid: number, udp: UdpTable = readUdpTable()): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const fdNames = readdirSync(`/proc/${pid}/fd`);
    let udpSockets = 0;
    let udpDrops = 0;
    for (const fd of fdNames) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const entry = inode ? udp.get(inode) : undefined;
      if (entry) {
        udpSockets++;
        udpDrops += entry.drops;
      }
    }
    return { pid, cpuSeconds, rssMB: rssKb / 1024, fds: fdNames.length, udpSockets, udpDrops };
  } catch {
    return undefined;
  }
}

export type UdpTable = Map<string, { localPort: number; drops: number }>;

/** /proc/net/udp by socket inode (loopback only, so IPv4 is all there is). */
export function readUdpTable(): UdpTable {
  const table: UdpTable = new Map();
  const lines = readFileSync("/proc/net/udp", "utf8").split("\n").slice(1);
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt((f[1] ?? "").split(":")[1] ?? "0", 16);
    table.set(f[9] as string, { localPort: port, drops: Number(f[12]) });
  }
  return table;
}

/** Busy CPU time of the whole machine in seconds (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  const first = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const v = first.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return (total - idle) / CLK_TCK;
}

/** CPU and memory of a set of processes over an interval. */
export class UsageMeter {
  private readonly start: Map<number, ProcSample>;
  private readonly startBusy = machineBusySeconds();
  private readonly startedAt = performance.now();

  constructor(private readonly pids: number[]) {
    const udp = readUdpTable();
    this.start = new Map(pids.flatMap((pid) => {
      const s = sampleProcess(pid, udp);
      return s ? [[pid, s] as const] : [];
    }));
  }

  /** Cores used per pid, machine busy cores, and end samples. */
  finish(): { seconds: number; cores: Map<number, number>; machineCores: number; end: Map<number, ProcSample>; udpDrops: Map<number, number> } {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const udp = readUdpTable();
    const cores = new Map<number, number>();
    const end = new Map<number, ProcSample>();
    const udpDrops = new Map<number, number>();
    for (const pid of this.pids) {
      const a = this.start.get(pid);
      const b = sampleProcess(pid, udp);
      if (!a || !b) continue;
      end.set(pid, b);
      cores.set(pid, (b.cpuSeconds - a.cpuSeconds) / seconds);
      udpDrops.set(pid, Math.max(0, b.udpDrops - a.udpDrops));
    }
    return { seconds, cores, machineCores: (machineBusySeconds() - this.startBusy) / seconds, end, udpDrops };
  }
}
