import { MetaSimulator, type MetaSimulatorOptions, type SimCall, type VideoSendOptions } from "../../sim/index.js";
import { FUZZ_META, GatewayProcess, type GatewaySpawnOptions, type ResourceSample } from "./gateway-process.js";
import { GraphProxy } from "./graph-proxy.js";
import { FuzzPhone, type AnswerDecision, type PhoneCall } from "./phone.js";
import { header, type ParsedSip } from "./sip-wire.js";

/** Tones each side speaks, far enough apart to tell whose audio arrived where. */
export const CONSUMER_TONE_HZ = 440;
export const PBX_TONE_HZ = 1000;

export interface RigOptions {
  name: string;
  rtpRange: [number, number];
  env?: Record<string, string>;
  sim?: Partial<MetaSimulatorOptions>;
  /** How the PBX answers the gateway's INVITEs (default: 200 at once). */
  pbxAnswer?: (invite: ParsedSip, sim: MetaSimulator) => AnswerDecision;
}

/**
 * One gateway process with everything around it on loopback: the Meta simulator behind a Graph
 * proxy, a PBX phone the gateway rings, and an agent phone that calls consumers through it.
 */
export class FuzzRig {
  /** Processes started after the first one died or stopped answering. */
  restarts = 0;

  private constructor(
    readonly sim: MetaSimulator,
    readonly proxy: GraphProxy,
    readonly pbx: FuzzPhone,
    readonly agent: FuzzPhone,
    public gateway: GatewayProcess,
    /** Consumers whose calls the PBX refuses with 486 Busy Here. */
    readonly refusePsids: Set<string>,
    private readonly spawn: GatewaySpawnOptions,
  ) {}

  static async start(o: RigOptions): Promise<FuzzRig> {
    const sim = await MetaSimulator.start({
      appSecret: FUZZ_META.appSecret,
      pageId: FUZZ_META.pageId,
      pageAccessToken: FUZZ_META.pageAccessToken,
      consumer: { toneHz: CONSUMER_TONE_HZ },
      ...o.sim,
    });
    const proxy = await GraphProxy.start(sim.graphUrl, (callId) => sim.getCall(callId)?.psid);
    const refusePsids = new Set<string>();
    const pbx = await FuzzPhone.start({
      toneHz: PBX_TONE_HZ,
      answer: (invite) => {
        if (refusePsids.has(header(invite, "x-meta-psid") ?? "")) return { status: 486 };
        return o.pbxAnswer?.(invite, sim) ?? { status: 200 };
      },
    });
    const agent = await FuzzPhone.start({ toneHz: PBX_TONE_HZ });
    let gateway: GatewayProcess;
    const spawn: GatewaySpawnOptions = {
      name: o.name,
      graphUrl: proxy.url,
      sipTarget: `sip:agents@127.0.0.1:${pbx.port}`,
      rtpRange: o.rtpRange,
      env: { SIP_ALLOW_FROM: "127.0.0.1", ...o.env },
    };
    try {
      gateway = await GatewayProcess.start(spawn);
    } catch (err) {
      await Promise.allSettled([pbx.close(), agent.close(), proxy.close(), sim.stop()]);
      throw err;
    }
    sim.setWebhookUrl(gateway.webhookUrl);
    return new FuzzRig(sim, proxy, pbx, agent, gateway, refusePsids, spawn);
  }

  /** Replaces a gateway that died or hangs with a new process (SIGKILL first), so a run can go on. */
  async restartGateway(): Promise<void> {
    await this.gateway.stop("SIGKILL", 2000);
    // The old process's calls are gone with it: their phones and consumers must not keep sending
    // into the ports the new process hands out again.
    for (const phone of [this.pbx, this.agent]) for (const call of phone.live()) phone.vanish(call);
    await Promise.allSettled(this.sim.activeCalls().map((c) => c.peer.close()));
    this.gateway = await GatewayProcess.start(this.spawn);
    this.sim.setWebhookUrl(this.gateway.webhookUrl);
    this.restarts++;
  }

  /** A consumer calls and the PBX answers: resolves once audio flows both ways. */
  async consumerCall(o: { psid?: string; video?: VideoSendOptions; timeoutMs?: number } = {}): Promise<{ sim: SimCall; pbx: PhoneCall }> {
    const call = await this.sim.placeCall({ ...(o.psid ? { psid: o.psid } : {}), ...(o.video ? { video: o.video } : {}) });
    if (call.connectWebhookStatus !== 200) throw new Error(`connect webhook answered ${call.connectWebhookStatus}`);
    await call.waitForState("media", o.timeoutMs ?? 15_000);
    const pbx = await until(() => this.pbx.byMetaCallId(call.id), 5000, `the PBX side of ${call.id}`);
    await until(() => pbx.audio.recentLevel(10) > 1000 || undefined, 5000, `the consumer's audio at the PBX (${call.id})`);
    return { sim: call, pbx };
  }

  /** An agent calls a consumer and the consumer picks up: resolves once the agent got its 200. */
  async agentCall(psid: string): Promise<{ agent: PhoneCall; sim: SimCall }> {
    const placing = this.agent.invite(this.gateway.sipAddress, `sip:${psid}@127.0.0.1:${this.gateway.sipPort}`, { psid });
    const sim = await until(() => this.sim.calls().find((c) => c.psid === psid && c.state === "ringing"), 10_000, `the consumer ${psid} to ring`);
    await sim.answer();
    const agent = await placing;
    if (agent.finalStatus !== 200) throw new Error(`agent call to ${psid} answered ${agent.finalStatus}`);
    await sim.waitForState("media", 15_000);
    return { agent, sim };
  }

  /** Waits until the gateway reports no call in progress; false when it still does after `timeoutMs`. */
  async idle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.gateway.activeCalls()) === 0) return true;
      await sleep(100);
    }
    return false;
  }

  /**
   * Waits for descriptors, UDP ports and children to come back to `baseline` (they lag the last
   * call by a few hundred ms), then samples them with the heap.
   */
  async settledSample(baseline: ResourceSample | undefined, timeoutMs = 8000): Promise<ResourceSample> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.gateway.sampleProc();
      const back = !baseline || (s.fds <= baseline.fds && s.udpPorts.length <= baseline.udpPorts.length && s.children.length <= baseline.children.length);
      if (back || Date.now() > deadline) break;
      await sleep(200);
    }
    return this.gateway.sample();
  }

  /** SIGINT ends calls at once; SIGKILL when the process must not be waited for. */
  async stop(signal: NodeJS.Signals = "SIGINT"): Promise<void> {
    await this.gateway.stop(signal);
    await Promise.allSettled([this.pbx.close(), this.agent.close()]);
    await this.proxy.close();
    await this.sim.stop();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `get` until it answers something, or throws after `timeoutMs` naming `what`. */
export async function until<T>(get: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
