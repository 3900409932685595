import type { ResourceSample } from "./gateway-process.js";

/** A property that did not hold, with the smallest input fast-check found and how to replay it. */
export interface FailureRecord {
  kind: string;
  property: string;
  message: string;
  /** The structured input (fc.stringify), cut short. */
  counterexample: string;
  /** What went on the wire, escaped and cut short. */
  rendered: string;
  seed: number;
  path: string | undefined;
}

export interface KindReport {
  kind: string;
  runs: number;
  /** Inputs sent, shrinking included. */
  inputs: number;
  /** Answers by status (HTTP or SIP), e.g. {"200": 10, "401": 3, "none": 1}. */
  statuses: Record<string, number>;
  answers5xx: number;
  /** Graph requests traced to an input that must not cause any. */
  graphFromMalformed: number;
  failures: FailureRecord[];
  /** Inputs after which the process had exited. */
  crashes: number;
  /** Inputs after which the process stopped answering /healthz (a blocked event loop). */
  freezes: number;
  /** Hits of still-open failures the short form tolerates, by id (see known-failures.ts). */
  known: Record<string, number>;
  durationMs: number;
  /** Figures worth printing that are not pass/fail. */
  notes: string[];
}

export function emptyReport(kind: string): KindReport {
  return { kind, runs: 0, inputs: 0, statuses: {}, answers5xx: 0, graphFromMalformed: 0, failures: [], crashes: 0, freezes: 0, known: {}, durationMs: 0, notes: [] };
}

export function countStatus(r: KindReport, status: number | undefined): void {
  const key = status === undefined || status === 0 ? "none" : String(status);
  r.statuses[key] = (r.statuses[key] ?? 0) + 1;
  if (status !== undefined && status >= 500) r.answers5xx++;
}

/** Thrown inside a property: names the property so the report can say which one broke. */
export class PropertyViolation extends Error {
  constructor(
    readonly property: string,
    detail: string,
    readonly rendered = "",
  ) {
    super(`${property}: ${detail}`);
  }
}

/** Printable preview of bytes: control characters escaped, long runs elided. */
export function preview(data: string | Buffer, max = 600): string {
  const text = typeof data === "string" ? data : data.toString("latin1");
  const escaped = JSON.stringify(text.length > max ? `${text.slice(0, max)}…(+${text.length - max} chars)` : text);
  return escaped;
}

export interface FaultResult {
  fault: string;
  ok: boolean;
  detail: string;
  durationMs: number;
}

export interface ResourceFigures {
  before: ResourceSample;
  after: ResourceSample;
  callsLeaked: number;
}

export function formatResources(f: ResourceFigures): string[] {
  const ports = (s: ResourceSample): string => `${s.udpPorts.length}`;
  const kids = (s: ResourceSample): string => `${s.children.length}${s.children.length ? ` (${s.children.map((c) => c.comm).join(",")})` : ""}`;
  return [
    `calls leaked            ${f.callsLeaked}`,
    `file descriptors        ${f.before.fds} before, ${f.after.fds} after`,
    `UDP ports               ${ports(f.before)} before, ${ports(f.after)} after`,
    `child processes         ${kids(f.before)} before, ${kids(f.after)} after`,
    `heap after GC           ${f.before.heapMB.toFixed(1)} MB before, ${f.after.heapMB.toFixed(1)} MB after`,
  ];
}

export function formatKinds(reports: readonly KindReport[]): string[] {
  const col = (v: number | string, w: number): string => String(v).padStart(w);
  const lines = [
    `${"input kind".padEnd(27)} ${col("runs", 5)} ${col("inputs", 6)} ${col("crash", 5)} ${col("hang", 4)} ${col("5xx", 4)} ${col("graph", 5)} ${col("fail", 4)}  answers (HTTP/SIP status × count)`,
  ];
  for (const r of reports) {
    const answers = Object.entries(r.statuses)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k}×${v}`)
      .join(" ");
    lines.push(
      `${r.kind.padEnd(27)} ${col(r.runs, 5)} ${col(r.inputs, 6)} ${col(r.crashes, 5)} ${col(r.freezes, 4)} ${col(r.answers5xx, 4)} ${col(r.graphFromMalformed, 5)} ${col(r.failures.length, 4)}  ${answers}`,
    );
    for (const [id, n] of Object.entries(r.known)) lines.push(`${"".padEnd(29)}known open failure ${id}: ${n} hit(s)`);
    for (const n of r.notes) lines.push(`${"".padEnd(29)}${n}`);
  }
  return lines;
}

export function formatFailures(failures: readonly FailureRecord[]): string[] {
  const lines: string[] = [];
  for (const f of failures) {
    lines.push(`[${f.kind}] ${f.property}`);
    lines.push(`  observed: ${f.message}`);
    lines.push(`  input:    ${f.counterexample}`);
    if (f.rendered) lines.push(`  wire:     ${f.rendered}`);
    lines.push(`  replay:   seed ${f.seed}${f.path ? `, path "${f.path}"` : ""}`);
  }
  return lines;
}
