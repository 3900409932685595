/** CPU time and memory of a child process from /proc (Linux), for per-stream cost accounting. */
import { readFileSync } from "node:fs";

/** USER_HZ: the unit of /proc/<pid>/stat times on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;
const PAGE_SIZE = 4096;

export interface ProcessUsage {
  cpuSeconds: number;
  rssBytes: number;
}

/** Undefined once the process has gone (or off Linux). */
export function readProcessUsage(pid: number): ProcessUsage | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssPages = Number(fields[21]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { cpuSeconds: (utime + stime) / CLOCK_TICKS_PER_SECOND, rssBytes: rssPages * PAGE_SIZE };
}
