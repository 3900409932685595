import { header } from "./sip-wire.js";
import type { InputFuzzer } from "./campaigns.js";
import { faultRigEnv } from "./faults.js";
import type { ResourceSample } from "./gateway-process.js";
import type { ResourceFigures } from "./report.js";
import { FuzzRig, type RigOptions } from "./rig.js";

/**
 * What the short form (test/fuzz) and the long form (npm run fuzz) share: how each rig is set up,
 * the warm-up before the baseline, and the leak check at the end.
 */

/**
 * Heap growth after GC the short form tolerates: a few MB move with JIT and pool state alone, and
 * the calls of the last 32 s are still held by the SIP stack's finished transactions.
 */
export const HEAP_SLACK_MB = 10;

/** The long form reads the heap after SIP_LINGER_MS, with only JIT and pool state left to move. */
export const SETTLED_HEAP_SLACK_MB = 5;

/**
 * The gateway the input campaigns run against. Agents' calls stop at the permission check (the
 * simulator's consumers have none), so valid INVITEs cost one Graph request and a 403; calls whose
 * id the simulator never issued (from fuzzed connect webhooks) are refused by the PBX.
 */
export function inputRigOptions(name: string, rtpRange: [number, number]): RigOptions {
  return {
    name,
    rtpRange,
    env: { SIP_MAX_CALLS_PER_SECOND: "0", MEDIA_TIMEOUT_MS: "3000", RING_TIMEOUT_MS: "2000" },
    sim: { outboundPickup: "manual", defaultPermission: "no_permission" },
    pbxAnswer: (invite, sim) => (sim.getCall(header(invite, "x-meta-call-id") ?? "") ? { status: 200 } : { status: 486 }),
  };
}

/** The gateway the faults are injected into: short media and Graph timeouts, a low admission limit. */
export function faultRigOptions(name: string, rtpRange: [number, number]): RigOptions {
  return { name, rtpRange, env: faultRigEnv(), sim: { outboundPickup: "manual" } };
}

/**
 * One complete call first (the DTLS certificate, codec tables and pools are made once per process),
 * then the baseline every leak figure is measured against.
 */
export async function warmUp(rig: FuzzRig, fuzzer?: InputFuzzer): Promise<ResourceSample> {
  const call = await rig.consumerCall();
  fuzzer?.learnFrom(rig.proxy.requests);
  await rig.pbx.bye(call.pbx);
  await call.sim.waitForState("ended", 5000);
  if (!(await rig.idle(5000))) throw new Error("the warm-up call did not end");
  await new Promise((r) => setTimeout(r, 600));
  return rig.gateway.sample();
}

/**
 * The SIP stack keeps a finished transaction for 64·T1 (32 s) to absorb retransmissions, and with
 * it about 200 KB of each call just ended: heap measured sooner counts the last half-minute's calls.
 */
export const SIP_LINGER_MS = 34_000;

/**
 * Calls still up, and the process's resources once they have had time to come back. `lingerMs`:
 * wait that long before the heap is read (the long form waits SIP_LINGER_MS; the short form cannot
 * afford it and allows HEAP_SLACK_MB instead).
 */
export async function leakFigures(rig: FuzzRig, before: ResourceSample, lingerMs = 0): Promise<ResourceFigures> {
  await rig.idle(10_000);
  const callsLeaked = await rig.gateway.activeCalls();
  if (lingerMs > 0) await new Promise((r) => setTimeout(r, lingerMs));
  const after = await rig.settledSample(before, 10_000);
  return { before, after, callsLeaked };
}

/** What is wrong with the figures, if anything. */
export function leakProblems(f: ResourceFigures, heapSlackMB = HEAP_SLACK_MB): string[] {
  const problems: string[] = [];
  if (f.callsLeaked !== 0) problems.push(`${f.callsLeaked} call(s) still active`);
  if (f.after.fds > f.before.fds) {
    const extra = [...f.after.fdTargets];
    for (const t of f.before.fdTargets) {
      const i = extra.indexOf(t);
      if (i >= 0) extra.splice(i, 1);
    }
    problems.push(`file descriptors ${f.before.fds} → ${f.after.fds} (new: ${extra.join(", ")})`);
  }
  const extraPorts = f.after.udpPorts.filter((p) => !f.before.udpPorts.includes(p));
  if (f.after.udpPorts.length > f.before.udpPorts.length) problems.push(`UDP ports ${f.before.udpPorts.length} → ${f.after.udpPorts.length} (new: ${extraPorts.join(", ")})`);
  if (f.after.children.length > f.before.children.length) problems.push(`child processes ${f.before.children.length} → ${f.after.children.length} (${f.after.children.map((c) => `${c.comm}:${c.pid}`).join(", ")})`);
  if (f.after.heapMB > f.before.heapMB + heapSlackMB) problems.push(`heap after GC ${f.before.heapMB.toFixed(1)} → ${f.after.heapMB.toFixed(1)} MB`);
  return problems;
}

export { FuzzRig };
