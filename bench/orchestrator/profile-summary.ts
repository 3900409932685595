import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

/** The parts of a V8 .cpuprofile this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  samples: number[];
  timeDeltas: number[];
}

/** One thread's profile: `name.cpuprofile`, or Node's `CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile` in a process's folder. */
interface ProfileFile {
  path: string;
  label: string;
}

function profileFiles(dir: string, prefix: string): ProfileFile[] {
  const found: ProfileFile[] = [];
  for (const entry of readdirSync(dir).filter((f) => f.startsWith(prefix)).sort()) {
    const path = join(dir, entry);
    if (entry.endsWith(".cpuprofile")) {
      found.push({ path, label: entry.slice(0, -".cpuprofile".length) });
    } else if (statSync(path).isDirectory()) {
      for (const file of readdirSync(path).filter((f) => f.endsWith(".cpuprofile")).sort()) {
        const tid = /^CPU\.\d+\.\d+\.\d+\.(\d+)\./.exec(file)?.[1];
        found.push({ path: join(path, file), label: `${entry} ${tid === undefined ? file : tid === "0" ? "main" : `thread ${tid}`}` });
      }
    }
  }
  return found;
}

/**
 * Self time per function over every thread's .cpuprofile under `dir` (gateways profile every
 * thread: the main one and each media worker), busiest first, as shares of the busy (non-idle)
 * time, after each thread's busy time. Functions are keyed by name, file and line so the same
 * werift function in two threads or processes adds up.
 */
export function summarizeProfiles(dir: string, prefix: string, top: number): string {
  if (!existsSync(dir)) return "  (no profiles written)";
  const selfUs = new Map<string, number>();
  const byArea = new Map<string, number>();
  const perThread: string[] = [];
  let busyUs = 0;
  let idleUs = 0;
  const files = profileFiles(dir, prefix);
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file.path, "utf8")) as CpuProfile;
    const busyBefore = busyUs;
    const keyOf = new Map<number, string>();
    const areaOf = new Map<number, string>();
    for (const n of profile.nodes) {
      const f = n.callFrame;
      const where = f.url ? `${shorten(f.url)}:${f.lineNumber + 1}` : "";
      keyOf.set(n.id, `${f.functionName || "(anonymous)"} ${where}`.trim());
      areaOf.set(n.id, areaOfUrl(f.url, f.functionName));
    }
    profile.samples.forEach((id, i) => {
      const dt = profile.timeDeltas[i] ?? 0;
      const key = keyOf.get(id) ?? "?";
      if (key === "(idle)") {
        idleUs += dt;
        return;
      }
      busyUs += dt;
      selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
      const area = areaOf.get(id) ?? "?";
      byArea.set(area, (byArea.get(area) ?? 0) + dt);
    });
    perThread.push(`${file.label} ${((busyUs - busyBefore) / 1e6).toFixed(1)} s`);
  }
  if (busyUs === 0) return "  (empty profiles)";
  const rows = [...selfUs.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = rows.map(([key, us]) => `  ${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${key}`);
  const areas = [...byArea.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([area, us]) => `${area} ${((100 * us) / busyUs).toFixed(1)}%`);
  lines.unshift(
    `  ${files.length} profile(s), busy ${(busyUs / 1e6).toFixed(1)} s, idle ${(idleUs / 1e6).toFixed(1)} s`,
    `  busy per thread: ${perThread.join(", ")}`,
    `  by area: ${areas.join(", ")}`,
    "  self time, share of busy:",
  );
  return lines.join("\n");
}

/** Which part of the process a frame belongs to: a package, a source folder, Node itself, or V8. */
function areaOfUrl(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "native";
  const path = url.replace(/^file:\/\//, "");
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (nm) return nm[1] as string;
  if (path.startsWith("node:")) return "node";
  const own = /dist\/([^/]+)\//.exec(path);
  return own ? (own[1] as string) : "other";
}

function shorten(url: string): string {
  const path = url.replace(/^file:\/\//, "");
  const nm = path.lastIndexOf("node_modules/");
  if (nm >= 0) return path.slice(nm + "node_modules/".length);
  return relative(process.cwd(), path);
}
