import { childrenOf } from "./gateway-process.js";
import type { GraphFault } from "./graph-proxy.js";
import { startsH264Idr } from "./media.js";
import { phoneSdp, type PhoneCall } from "./phone.js";
import { sdpPorts } from "./sip-wire.js";
import type { KnownFailure } from "./known-failures.js";
import type { FaultResult } from "./report.js";
import { PBX_TONE_HZ, sleep, until, type FuzzRig } from "./rig.js";

/**
 * Faults injected into a live gateway process, each checked from outside: what must be true of
 * both legs afterwards, and how fast. Timings assume the rig's MEDIA_TIMEOUT_MS (2 s) and
 * META_GRAPH_TIMEOUT_MS (1 s).
 */

export interface FaultTimings {
  mediaTimeoutMs: number;
  graphTimeoutMs: number;
  maxConcurrentCalls: number;
  drainSeconds: number;
}

/** What the fault rig runs with: short timeouts so a fault shows within seconds. */
export const FAULT_TIMINGS: FaultTimings = { mediaTimeoutMs: 2000, graphTimeoutMs: 1000, maxConcurrentCalls: 4, drainSeconds: 1 };

export function faultRigEnv(t: FaultTimings = FAULT_TIMINGS): Record<string, string> {
  return {
    MEDIA_TIMEOUT_MS: String(t.mediaTimeoutMs),
    META_GRAPH_TIMEOUT_MS: String(t.graphTimeoutMs),
    MAX_CONCURRENT_CALLS: String(t.maxConcurrentCalls),
    DRAIN_SECONDS: String(t.drainSeconds),
    RING_TIMEOUT_MS: "4000",
    // Agents calling a consumer without permission make the gateway send calling_optin (Send API).
    CALL_PERMISSION_REQUEST: "true",
    ACCEPT_TIMEOUT_MS: "8000",
    SIP_MAX_CALLS_PER_SECOND: "0",
  };
}

let psidSerial = 0;
function psid(): string {
  return `6${String(Date.now() % 1e9).padStart(9, "0")}${String(++psidSerial).padStart(5, "0")}`;
}

export interface FaultOptions {
  /** Count the still-open failures of known-failures.ts instead of failing on them (the short form). */
  tolerateKnown: boolean;
  timings?: FaultTimings;
  log?: (line: string) => void;
}

export class FaultInjector {
  readonly results: FaultResult[] = [];
  /** Hits of still-open failures tolerated, by id. */
  readonly known: Record<string, number> = {};
  private readonly t: FaultTimings;
  private readonly log: (line: string) => void;

  constructor(
    private readonly rig: FuzzRig,
    private readonly options: FaultOptions = { tolerateKnown: false },
  ) {
    this.t = options.timings ?? FAULT_TIMINGS;
    this.log = options.log ?? (() => undefined);
  }

  /** The gateway wrote the call's end record (its ports, timers and admission slot are free) within `ms`. */
  private async freed(callId: string, ms: number, known?: KnownFailure): Promise<string> {
    const startedAt = performance.now();
    const deadline = startedAt + ms;
    while (performance.now() < deadline) {
      const end = this.rig.gateway.log.ended.get(callId);
      if (end) return `freed (${end.outcome})`;
      await sleep(50);
    }
    if (known && this.options.tolerateKnown) {
      this.known[known.id] = (this.known[known.id] ?? 0) + 1;
      return `still held ${ms} ms later (known open failure ${known.id})`;
    }
    throw new Error(`the gateway still holds call ${callId} ${ms} ms after both legs ended${known ? ` (${known.summary})` : ""}`);
  }

  /** Runs one fault; a thrown error is a failed fault with its message. */
  async run(fault: string, body: () => Promise<string>, o: { exits?: boolean } = {}): Promise<FaultResult> {
    const started = performance.now();
    let result: FaultResult;
    try {
      const detail = await body();
      result = { fault, ok: true, detail, durationMs: performance.now() - started };
    } catch (err) {
      result = { fault, ok: false, detail: err instanceof Error ? err.message : String(err), durationMs: performance.now() - started };
    }
    if (!o.exits && !this.rig.gateway.alive) result = { ...result, ok: false, detail: `${result.detail}; the gateway exited ${JSON.stringify(this.rig.gateway.exit)}` };
    this.results.push(result);
    this.log(`${result.ok ? "ok  " : "FAIL"} ${fault} (${(result.durationMs / 1000).toFixed(1)} s): ${result.detail}`);
    return result;
  }

  // ---- media faults ---------------------------------------------------------------------------

  /** ffmpeg is SIGKILLed while it transcodes the consumer's VP8: an IDR at the phone within 2 s, audio never interrupted. */
  ffmpegKilled(): Promise<FaultResult> {
    return this.run("ffmpeg killed mid-video-call", async () => {
      const call = await this.rig.consumerCall();
      try {
        const status = await call.sim.startVideo({ codec: "VP8", width: 640, height: 360, fps: 30 });
        if (status !== 200) throw new Error(`video media_update answered ${status}`);
        const video = await until(() => call.pbx.video, 10_000, "the re-INVITE adding video");
        const idrs: number[] = [];
        video.onPacket.add((p, at) => {
          if (startsH264Idr(p)) idrs.push(at);
        });
        await until(() => video.stats.packets > 60 || undefined, 15_000, "H.264 at the phone");
        const ffmpeg = await until(() => childrenOf(this.rig.gateway.pid).find((c) => c.comm === "ffmpeg"), 5000, "the gateway's ffmpeg");
        const audioBefore = call.pbx.audio.stats.packets;
        const killedAt = performance.now();
        process.kill(ffmpeg.pid, "SIGKILL");
        let restartedAt: number | undefined;
        while (performance.now() - killedAt < 2500) {
          const now = childrenOf(this.rig.gateway.pid).find((c) => c.comm === "ffmpeg" && c.pid !== ffmpeg.pid);
          if (now && restartedAt === undefined) restartedAt = performance.now();
          if (restartedAt !== undefined && idrs.some((t) => t > restartedAt!)) break;
          await sleep(20);
        }
        if (restartedAt === undefined) throw new Error("no new ffmpeg within 2.5 s of the kill");
        const idr = idrs.find((t) => t > restartedAt!);
        if (idr === undefined || idr - killedAt > 2000) throw new Error(`no keyframe at the phone within 2 s of the kill (ffmpeg back after ${(restartedAt - killedAt).toFixed(0)} ms)`);
        await sleep(Math.max(0, killedAt + 2000 - performance.now()));
        // Audio untouched: 20 ms packets all along, no gap a listener would hear.
        const arrivals = call.pbx.audio.stats.arrivals.filter((t) => t >= killedAt - 100 && t <= killedAt + 2000);
        let gap = 0;
        for (let i = 1; i < arrivals.length; i++) gap = Math.max(gap, arrivals[i]! - arrivals[i - 1]!);
        const audioPackets = call.pbx.audio.stats.packets - audioBefore;
        if (audioPackets < 80 || gap > 150) throw new Error(`audio to the PBX disturbed: ${audioPackets} packets in 2 s, longest gap ${gap.toFixed(0)} ms`);
        const heard = call.sim.consumer.detectTone(0.5);
        if (Math.abs(heard.hz - PBX_TONE_HZ) > 30) throw new Error(`the consumer stopped hearing the PBX (${heard.hz.toFixed(0)} Hz)`);
        if (call.pbx.audio.recentLevel(10) < 1000) throw new Error("the PBX stopped hearing the consumer");
        return `keyframe ${(idr - killedAt).toFixed(0)} ms after the kill (ffmpeg back after ${(restartedAt - killedAt).toFixed(0)} ms); audio: ${audioPackets} packets, longest gap ${gap.toFixed(0)} ms`;
      } finally {
        await this.hangup(call.pbx);
        await until(() => !childrenOf(this.rig.gateway.pid).some((c) => c.comm === "ffmpeg") || undefined, 5000, "ffmpeg to exit after the call").catch(() => undefined);
      }
    });
  }

  /** The PBX stops sending RTP but keeps its dialog: the call ends on both legs after MEDIA_TIMEOUT_MS. */
  pbxStopsRtp(): Promise<FaultResult> {
    return this.run("PBX stops sending RTP", async () => {
      const call = await this.rig.consumerCall();
      const consumerBefore = call.sim.consumer.stats.packetsReceived;
      call.pbx.audio.stopTone();
      const stoppedAt = performance.now();
      const limit = this.t.mediaTimeoutMs + 3000;
      await until(() => call.pbx.byeReceivedAt, limit, "a BYE to the silent PBX");
      await until(() => call.sim.state === "ended" || undefined, 3000, "the call to end at Meta");
      const silentFor = performance.now() - stoppedAt;
      // The consumer kept hearing comfort audio while the PBX was silent (Meta's leg never falls silent).
      const comfort = call.sim.consumer.stats.packetsReceived - consumerBefore;
      if (comfort < (this.t.mediaTimeoutMs / 20) * 0.6) throw new Error(`the consumer got only ${comfort} packets while the PBX was silent`);
      this.expectTerminated(call.sim.id);
      const freed = await this.freed(call.sim.id, 2000);
      return `BYE and terminate ${silentFor.toFixed(0)} ms after the PBX fell silent, ${freed}; ${comfort} comfort packets to the consumer meanwhile`;
    });
  }

  /** The PBX disappears without a BYE (no RTP, no SIP answers): the call ends at Meta and is freed. */
  pbxVanishes(): Promise<FaultResult> {
    return this.run("PBX vanishes without BYE", async () => {
      const call = await this.rig.consumerCall();
      this.rig.pbx.vanish(call.pbx);
      const goneAt = performance.now();
      await until(() => call.sim.state === "ended" || undefined, this.t.mediaTimeoutMs + 4000, "the call to end at Meta");
      this.expectTerminated(call.sim.id);
      const terminatedAfter = performance.now() - goneAt;
      const freed = await this.freed(call.sim.id, 3000);
      return `terminate at Meta ${terminatedAfter.toFixed(0)} ms after the PBX vanished, call ${freed}`;
    });
  }

  /** Meta's edge stops sending (the consumer's transport closes, no webhook): BYE to the PBX and terminate. */
  metaEdgeStops(): Promise<FaultResult> {
    return this.run("Meta's edge stops sending", async () => {
      const call = await this.rig.consumerCall();
      await call.sim.consumer.close();
      const stoppedAt = performance.now();
      await until(() => call.pbx.byeReceivedAt, this.t.mediaTimeoutMs + 3000, "a BYE to the PBX");
      await until(() => this.rig.proxy.requests.some((r) => r.callId === call.sim.id && r.action === "terminate") || undefined, 3000, "terminate at Meta");
      const after = performance.now() - stoppedAt;
      return `BYE and terminate ${after.toFixed(0)} ms after Meta's media stopped, ${await this.freed(call.sim.id, 2000)}`;
    });
  }

  private expectTerminated(callId: string): void {
    const ends = this.rig.proxy.requests.filter((r) => r.callId === callId && (r.action === "terminate" || r.action === "reject"));
    if (ends.length === 0) throw new Error(`no terminate for ${callId} at Meta`);
    if (ends.some((r) => r.action === "reject")) throw new Error(`an accepted call ${callId} was ended with reject`);
  }

  // ---- Graph API faults -----------------------------------------------------------------------

  /** Every Graph action answered with an error, then with no answer at all. */
  async graphFaults(faults: Array<{ name: string; fault: GraphFault }> = DEFAULT_GRAPH_FAULTS): Promise<FaultResult[]> {
    const out: FaultResult[] = [];
    for (const f of faults) {
      const cases = [
        this.acceptFault(f.name, f.fault),
        this.rejectFault(f.name, f.fault),
        this.terminateFault(f.name, f.fault),
        this.mediaUpdateFault(f.name, f.fault),
        this.permissionFault(f.name, f.fault),
        this.connectFault(f.name, f.fault),
        this.permissionRequestFault(f.name, f.fault),
      ];
      // Two at a time: each case holds at most two calls, within MAX_CONCURRENT_CALLS. After each
      // pair the gateway must hold no call: a failed Graph request may delay freeing a call, not skip it.
      for (let i = 0; i < cases.length; i += 2) {
        const pair = await Promise.all(cases.slice(i, i + 2).map((c) => c()));
        const limit = this.t.graphTimeoutMs * 2 + 3000;
        const started = performance.now();
        const idle = await this.rig.idle(limit);
        for (const r of pair) {
          if (!idle && r.ok) {
            r.ok = false;
            r.detail = `${r.detail}; but ${await this.rig.gateway.activeCalls()} call(s) still held ${limit} ms after the pair (${pair.map((p) => p.fault).join(" / ")}) finished`;
            this.log(`FAIL ${r.fault}: ${r.detail}`);
          } else if (idle) {
            r.detail = `${r.detail}; no call held ${(performance.now() - started).toFixed(0)} ms later`;
          }
        }
        out.push(...pair);
      }
    }
    return out;
  }

  private acceptFault(name: string, fault: GraphFault): () => Promise<FaultResult> {
    return () =>
      this.run(`Graph accept: ${name}`, async () => {
        const p = psid();
        this.rig.proxy.addRule({ match: (r) => r.action === "accept" && r.psid === p, fault, times: 1 });
        const sim = await this.rig.sim.placeCall({ psid: p });
        const pbx = await until(() => this.rig.pbx.byMetaCallId(sim.id), 5000, "the INVITE to the PBX");
        const limit = this.t.graphTimeoutMs + 4000;
        await until(() => pbx.state === "ended" || undefined, limit, "the PBX's leg to end");
        await until(() => sim.state === "ended" || undefined, limit, "the call to end at Meta");
        const ends = this.rig.proxy.requests.filter((r) => r.callId === sim.id && r.action !== undefined && r.action !== "accept").map((r) => r.action);
        return `PBX leg ended (${pbx.byeReceivedAt ? "BYE" : "CANCEL"}), Meta call ended by ${ends.join(", ")}, ${await this.freed(sim.id, 2000)}`;
      });
  }

  private rejectFault(name: string, fault: GraphFault): () => Promise<FaultResult> {
    return () =>
      this.run(`Graph reject: ${name}`, async () => {
        const p = psid();
        this.rig.proxy.addRule({ match: (r) => r.action === "reject" && r.psid === p, fault });
        this.rig.refusePsids.add(p);
        const sim = await this.rig.sim.placeCall({ psid: p });
        try {
          await until(() => this.rig.proxy.requests.some((r) => r.psid === p && r.action === "reject") || undefined, 5000, "reject after the PBX refused");
          // Long enough for a retry to show, were there one.
          await sleep(this.t.graphTimeoutMs + 200);
          const rejects = this.rig.proxy.requests.filter((r) => r.psid === p && r.action === "reject").length;
          if (rejects > 3) throw new Error(`${rejects} reject requests: a retry storm`);
          return `${rejects} failed reject(s), ${await this.freed(sim.id, this.t.graphTimeoutMs * 2 + 2000)}`;
        } finally {
          this.rig.refusePsids.delete(p);
          await sim.hangup().catch(() => 0);
        }
      });
  }

  private terminateFault(name: string, fault: GraphFault): () => Promise<FaultResult> {
    return () =>
      this.run(`Graph terminate: ${name}`, async () => {
        const p = psid();
        const call = await this.rig.consumerCall({ psid: p });
        this.rig.proxy.addRule({ match: (r) => r.action === "terminate" && r.psid === p, fault });
        try {
          const bye = await this.rig.pbx.bye(call.pbx);
          if (bye?.status !== 200) throw new Error(`the PBX's BYE got ${bye?.status ?? "no answer"}`);
          await until(() => this.rig.proxy.requests.some((r) => r.psid === p && r.action === "terminate") || undefined, 3000, "terminate after the PBX's BYE");
          await sleep(this.t.graphTimeoutMs + 200);
          const terms = this.rig.proxy.requests.filter((r) => r.psid === p && r.action === "terminate").length;
          if (terms > 3) throw new Error(`${terms} terminate requests: a retry storm`);
          return `BYE answered 200, ${terms} failed terminate(s), ${await this.freed(call.sim.id, this.t.graphTimeoutMs * 2 + 2000)}`;
        } finally {
          await call.sim.hangup().catch(() => 0);
        }
      });
  }

  /** The PBX turns its camera on (re-INVITE with video): Meta's media_update fails; the re-INVITE gets a final answer and audio goes on. */
  private mediaUpdateFault(name: string, fault: GraphFault): () => Promise<FaultResult> {
    return () =>
      this.run(`Graph media_update: ${name}`, async () => {
        const p = psid();
        const call = await this.rig.consumerCall({ psid: p });
        this.rig.proxy.addRule({ match: (r) => r.action === "media_update" && r.psid === p, fault });
        try {
          const offer = phoneSdp(call.pbx.audio.port, { port: call.pbx.audio.port + 100, pt: 96, direction: "sendrecv" }, 5);
          const started = performance.now();
          const answer = await this.rig.pbx.request(call.pbx, "INVITE", { body: offer, contentType: "application/sdp", timeoutMs: this.t.graphTimeoutMs + 5000 });
          if (!answer) throw new Error("the re-INVITE got no final answer");
          const updates = this.rig.proxy.requests.filter((r) => r.psid === p && r.action === "media_update").length;
          if (updates === 0) throw new Error(`the re-INVITE was answered ${answer.status} without asking Meta`);
          // A 200 may keep the audio, but must not claim the video Meta never took.
          const videoPort = sdpPorts(answer.body).video;
          if (answer.status! < 300 && videoPort !== undefined && videoPort !== 0) throw new Error(`the re-INVITE was answered 200 with video on port ${videoPort} although Meta refused it`);
          await sleep(300);
          if (call.sim.state === "ended" || call.pbx.state === "ended") throw new Error(`the call ended after the failed media_update (re-INVITE answered ${answer.status})`);
          const heard = call.sim.consumer.detectTone(0.3);
          if (Math.abs(heard.hz - PBX_TONE_HZ) > 30 || call.pbx.audio.recentLevel(10) < 1000) throw new Error("audio stopped after the failed media_update");
          return `re-INVITE answered ${answer.status} after ${(performance.now() - started).toFixed(0)} ms; audio goes on`;
        } finally {
          await this.hangup(call.pbx);
        }
      });
  }

  /** An agent calls while the permission check fails: a final answer, and no connect. */
  private permissionFault(name: string, fault: GraphFault): () => Promise<FaultResult> {
    return () =>
      this.run(`Graph permission check: ${name}`, async () => {
        const p = psid();
        this.rig.proxy.addRule({ match: (r) => r.action === "permissions" && r.psid === p, fault });
        const started = performance.now();
        const agent = await this.rig.agent.invite(this.rig.gateway.sipAddress, `sip:${p}@127.0.0.1:${this.rig.gateway.sipPort}`, { psid: p, timeoutMs: this.t.graphTimeoutMs + 5000 });
        if (agent.finalStatus === undefined) throw new Error("the agent got no final answer");
        if (agent.finalStatus < 300) throw new Error(`the agent's call was answered ${agent.finalStatus}`);
        const connects = this.rig.proxy.requests.filter((r) => r.psid === p && r.action === "connect").length;
        if (connects > 0) throw new Error("connect was sent although the permission check failed");
        return `agent answered ${agent.finalStatus} after ${(performance.now() - started).toFixed(0)} ms, no connect`;
      });
  }

  /** An agent calls a consumer without permission and the calling_optin request fails: a 403 or 5xx, no connect. */
  private permissionRequestFault(name: string, fault: GraphFault): () => Promise<FaultResult> {
    return () =>
      this.run(`Graph permission request (Send API): ${name}`, async () => {
        const p = psid();
        this.rig.sim.setPermission(p, "no_permission");
        this.rig.proxy.addRule({ match: (r) => r.action === "messages" && r.psid === p, fault });
        const started = performance.now();
        const agent = await this.rig.agent.invite(this.rig.gateway.sipAddress, `sip:${p}@127.0.0.1:${this.rig.gateway.sipPort}`, { psid: p, timeoutMs: this.t.graphTimeoutMs + 5000 });
        if (agent.finalStatus === undefined) throw new Error("the agent got no final answer");
        if (agent.finalStatus < 300) throw new Error(`the agent's call was answered ${agent.finalStatus}`);
        const requests = this.rig.proxy.requests.filter((r) => r.psid === p);
        if (!requests.some((r) => r.action === "messages")) throw new Error(`no permission request was sent (${requests.map((r) => r.action).join(", ")})`);
        if (requests.some((r) => r.action === "connect")) throw new Error("connect was sent to a consumer without permission");
        return `agent answered ${agent.finalStatus} after ${(performance.now() - started).toFixed(0)} ms, no connect`;
      });
  }

  /** An agent calls and connect fails: a final answer (503/504/488), connect sent once. */
  private connectFault(name: string, fault: GraphFault): () => Promise<FaultResult> {
    return () =>
      this.run(`Graph connect: ${name}`, async () => {
        const p = psid();
        this.rig.proxy.addRule({ match: (r) => r.action === "connect" && r.psid === p, fault });
        const started = performance.now();
        const agent = await this.rig.agent.invite(this.rig.gateway.sipAddress, `sip:${p}@127.0.0.1:${this.rig.gateway.sipPort}`, { psid: p, timeoutMs: this.t.graphTimeoutMs + 5000 });
        if (agent.finalStatus === undefined) throw new Error("the agent got no final answer");
        if (agent.finalStatus < 300) throw new Error(`the agent's call was answered ${agent.finalStatus}`);
        const connects = this.rig.proxy.requests.filter((r) => r.psid === p && r.action === "connect").length;
        if (connects !== 1) throw new Error(`connect sent ${connects} times (never retried: a retry could ring twice)`);
        return `agent answered ${agent.finalStatus} after ${(performance.now() - started).toFixed(0)} ms, connect sent once`;
      });
  }

  private async hangup(call: PhoneCall): Promise<void> {
    if (call.state !== "ended") await this.rig.pbx.bye(call).catch(() => undefined);
  }

  // ---- admission and shutdown -----------------------------------------------------------------

  /** Twice MAX_CONCURRENT_CALLS connects at once: the excess rejected at Meta, never rung; SIP gets 503 while full. */
  connectBurst(): Promise<FaultResult> {
    return this.run(`burst of connects over MAX_CONCURRENT_CALLS (${this.t.maxConcurrentCalls})`, async () => {
      // Admission counts every live call; the burst starts from none.
      if (!(await this.rig.idle(5000))) throw new Error("calls still active before the burst");
      const n = this.t.maxConcurrentCalls * 2 + 2;
      const psids = Array.from({ length: n }, () => psid());
      const invitesBefore = this.rig.pbx.calls.size;
      const sims = await Promise.all(psids.map((p) => this.rig.sim.placeCall({ psid: p })));
      try {
        const statuses = sims.map((s) => s.connectWebhookStatus);
        if (statuses.some((s) => s !== 200)) throw new Error(`webhook answers ${statuses.join(",")}`);
        await until(() => this.rig.proxy.requests.filter((r) => r.action === "reject" && psids.includes(r.psid ?? "")).length >= n - this.t.maxConcurrentCalls || undefined, 5000, "reject for every call over the limit");
        await until(() => sims.filter((s) => this.rig.pbx.byMetaCallId(s.id)?.state === "confirmed").length >= this.t.maxConcurrentCalls || undefined, 8000, "the admitted calls to be answered");
        const rung = this.rig.pbx.calls.size - invitesBefore;
        if (rung !== this.t.maxConcurrentCalls) throw new Error(`${rung} INVITEs reached the PBX for ${this.t.maxConcurrentCalls} admitted calls`);
        const ready = await this.rig.gateway.readyStatus();
        if (ready !== 503) throw new Error(`/readyz answered ${ready} while full`);
        const extra = psid();
        const agent = await this.rig.agent.invite(this.rig.gateway.sipAddress, `sip:${extra}@127.0.0.1:${this.rig.gateway.sipPort}`, { psid: extra, timeoutMs: 5000 });
        if (agent.finalStatus !== 503) throw new Error(`an agent's INVITE while full got ${agent.finalStatus ?? "no answer"}, not 503`);
        if (this.rig.proxy.requests.some((r) => r.psid === extra)) throw new Error("the refused agent call reached the Graph API");
        const rejected = sims.filter((s) => this.rig.proxy.requests.some((r) => r.callId === s.id && r.action === "reject")).length;
        return `${this.t.maxConcurrentCalls} admitted, ${rejected} rejected at Meta, /readyz 503, agent INVITE 503`;
      } finally {
        for (const s of sims) {
          const pbx = this.rig.pbx.byMetaCallId(s.id);
          if (pbx) await this.hangup(pbx);
        }
        await Promise.all(sims.map((s) => s.waitForState("ended", 5000).catch(() => undefined)));
      }
    }).then(async (r) => {
      // After the burst: every call freed and the gateway ready again, or the fault failed.
      if (!r.ok) return r;
      const idle = await this.rig.idle(5000);
      const ready = await this.rig.gateway.readyStatus();
      if (idle && ready === 200) return r;
      r.ok = false;
      r.detail = `${r.detail}; afterwards ${await this.rig.gateway.activeCalls()} call(s) still active, /readyz ${ready}`;
      return r;
    });
  }

  /** SIGTERM with a consumer call and an agent call up: both end on both legs, new calls are refused, exit 0. */
  sigtermWithLiveCalls(): Promise<FaultResult> {
    return this.run("SIGTERM with live calls of both directions", async () => {
      const inbound = await this.rig.consumerCall();
      const outbound = await this.rig.agentCall(psid());
      const signalledAt = performance.now();
      this.rig.gateway.child.kill("SIGTERM");
      await sleep(150);
      const ready = await this.rig.gateway.readyStatus();
      const late = await this.rig.sim.placeCall({ psid: psid() });
      const lateAgentPsid = psid();
      const lateAgent = await this.rig.agent.invite(this.rig.gateway.sipAddress, `sip:${lateAgentPsid}@127.0.0.1:${this.rig.gateway.sipPort}`, { psid: lateAgentPsid, timeoutMs: 3000 });
      await this.rig.gateway.exited;
      const exitMs = performance.now() - signalledAt;
      const problems: string[] = [];
      if (this.rig.gateway.exit?.code !== 0) problems.push(`exit ${JSON.stringify(this.rig.gateway.exit)}`);
      if (exitMs > this.t.drainSeconds * 1000 + 5000) problems.push(`took ${exitMs.toFixed(0)} ms to exit`);
      if (ready !== 503) problems.push(`/readyz answered ${ready} while draining`);
      if (!inbound.pbx.byeReceivedAt) problems.push("no BYE to the PBX for the consumer's call");
      if (!outbound.agent.byeReceivedAt) problems.push("no BYE to the agent for the agent's call");
      for (const [what, id] of [
        ["consumer's", inbound.sim.id],
        ["agent's", outbound.sim.id],
      ] as const) {
        if (!this.rig.proxy.requests.some((r) => r.callId === id && r.action === "terminate")) problems.push(`no terminate at Meta for the ${what} call`);
      }
      if (this.rig.pbx.byMetaCallId(late.id)) problems.push("a consumer call arriving while draining rang the PBX");
      if (!this.rig.proxy.requests.some((r) => r.callId === late.id && r.action === "reject")) problems.push("a consumer call arriving while draining was not rejected at Meta");
      if (lateAgent.finalStatus !== 503) problems.push(`an agent's INVITE while draining got ${lateAgent.finalStatus ?? "no answer"}, not 503`);
      if (problems.length > 0) throw new Error(problems.join("; "));
      return `exit 0 after ${exitMs.toFixed(0)} ms; BYE and terminate on both calls; /readyz 503, new calls refused while draining`;
    }, { exits: true });
  }
}

/** Graph failures each action meets: Graph's "unknown error", a rate limit, and no answer at all. */
export const DEFAULT_GRAPH_FAULTS: Array<{ name: string; fault: GraphFault }> = [
  { name: "error 500 (code 1)", fault: { kind: "error", status: 500, error: { message: "An unknown error occurred", type: "OAuthException", code: 1 } } },
  { name: "no answer", fault: { kind: "hang" } },
];

export const MORE_GRAPH_FAULTS: Array<{ name: string; fault: GraphFault }> = [
  { name: "rate limit (code 4)", fault: { kind: "error", status: 400, error: { message: "Application request limit reached", type: "OAuthException", code: 4 } } },
  { name: "token refused (code 190)", fault: { kind: "error", status: 401, error: { message: "Invalid OAuth access token", type: "OAuthException", code: 190 } } },
  { name: "invalid parameter (code 100)", fault: { kind: "error", status: 400, error: { message: "Invalid parameter", type: "OAuthException", code: 100 } } },
];
