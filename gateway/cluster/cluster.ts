import type { IncomingHttpHeaders } from "node:http";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { stateOf, type InstanceLoad } from "./admission.js";
import { ClusterMetrics } from "./cluster-metrics.js";
import type { ClusterConfig } from "./config.js";
import type { Delivery } from "./delivery.js";
import { acceptForwarded, forward, FORWARD_PATH, type ForwardAnswer } from "./forwarding.js";
import { Instances } from "./instances.js";
import { ClusterKeys } from "./keys.js";
import { leaseTiming, type LeaseTiming } from "./lease.js";
import { defineOwnershipScripts, Ownership, type OrphanCall } from "./ownership.js";
import { RedisLink, type RedisLinkState } from "./redis-link.js";
import { WebhookRouter } from "./router.js";
import { SharedDedupe } from "./shared-dedupe.js";

export interface ClusterOptions<D extends Delivery> {
  config: ClusterConfig;
  log: Logger;
  /** Identity of one event for dedupe across instances (the same as the per-process deduper's). */
  keyOf: (event: D["events"][number]) => string;
  /** This instance's call manager. */
  deliverLocal: (delivery: D) => void;
  /** This instance's load, published for admission elsewhere. */
  load: () => InstanceLoad;
  /** Ends at Meta a call whose owner is gone. */
  terminateAtMeta: (call: OrphanCall) => Promise<void>;
  /** How long a forward to another instance may take. */
  forwardTimeoutMs?: number;
}

/** At stop, how long webhooks already being routed may take to reach their owners. */
const STOP_ROUTING_GRACE_MS = 1_000;

/** `stopped` before start and after stop; `running` between (whatever Redis is doing). */
type ClusterState = "stopped" | "running";

/**
 * One gateway instance among several behind one webhook URL, with the shared state in Redis:
 * which instance owns each call (a claim with a lease), which webhook events were seen, which
 * instances are alive and how loaded. Webhooks for calls owned elsewhere are forwarded there over
 * HTTP, signed with the cluster secret.
 */
export class Cluster<D extends Delivery> {
  readonly instanceId: string;
  readonly metrics = new ClusterMetrics();
  readonly timing: LeaseTiming;
  private readonly link: RedisLink;
  private readonly keys: ClusterKeys;
  private readonly ownership: Ownership;
  private readonly instances: Instances;
  private readonly router: WebhookRouter<D>;
  private state: ClusterState = "stopped";
  private advertiseUrl = "";
  private timer: NodeJS.Timeout | undefined;
  private lastHeartbeat = 0;
  private tickRunning: Promise<void> = Promise.resolve();

  constructor(private readonly o: ClusterOptions<D>) {
    const c = o.config;
    this.instanceId = c.instanceId ?? `${hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 40)}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.timing = leaseTiming(c.leaseMs);
    const log = o.log;
    this.keys = new ClusterKeys(c.keyPrefix);
    this.link = new RedisLink({
      url: c.redisUrl,
      commandTimeoutMs: Math.max(250, Math.min(2_000, this.timing.renewEveryMs)),
      log,
      onState: (s, prev) => this.onLinkState(s, prev),
    });
    defineOwnershipScripts(this.link.client);
    this.ownership = new Ownership({ selfId: this.instanceId, keys: this.keys, link: this.link, leaseMs: c.leaseMs, log });
    this.instances = new Instances({
      selfId: this.instanceId,
      keys: this.keys,
      link: this.link,
      ownership: this.ownership,
      leaseMs: c.leaseMs,
      log,
      report: () => {
        const l = o.load();
        return { url: this.advertiseUrl, liveCalls: l.liveCalls, maxCalls: l.maxCalls, state: stateOf(l) };
      },
    });
    const dedupe = new SharedDedupe<D["events"][number]>({ keys: this.keys, link: this.link, keyOf: o.keyOf });
    const forwardTimeoutMs = o.forwardTimeoutMs ?? 3_000;
    this.router = new WebhookRouter<D>({
      selfId: this.instanceId,
      log,
      metrics: this.metrics,
      deliverLocal: o.deliverLocal,
      localReady: () => stateOf(o.load()) === "ready",
      redisUp: () => this.link.isUp,
      isLocal: (callId) => this.ownership.isLocal(callId),
      fresh: (events) => dedupe.fresh(events),
      locate: (callId) => this.ownership.locate(callId),
      takeOrphan: (callId, owner) => this.ownership.takeOrphan(callId, owner),
      terminateAtMeta: (call) => this.endAtMeta(call),
      send: async (id, body, callId) => {
        const url = this.instances.urlOf(id) ?? (await this.instances.fetchUrl(id));
        if (!url) throw new Error(`instance ${id} has no address`);
        await forward({ secret: c.secret, timeoutMs: forwardTimeoutMs }, { id, url }, body, callId);
      },
      takeRoom: () => this.instances.takeRoom(),
      peers: () => this.instances.known,
    });
  }

  /** Ready for calls as far as the cluster goes: Redis answers. */
  get healthy(): boolean {
    return this.link.isUp;
  }

  /** Whether new calls may start here: a call nobody could claim would be invisible to the others. */
  admitting(): boolean {
    return this.link.isUp;
  }

  /** Starts once this instance's HTTP port is bound: `advertiseUrl` is where the others reach it. */
  start(advertiseUrl: string): void {
    this.advertiseUrl = this.o.config.advertiseUrl ?? advertiseUrl;
    this.state = "running";
    this.o.log.info({ instance: this.instanceId, url: this.advertiseUrl, leaseMs: this.timing.leaseMs }, "cluster member starting");
    this.link.start();
    this.schedule();
  }

  /** Leaves the cluster (the calls are over by now) and closes Redis. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    clearTimeout(this.timer);
    await this.tickRunning;
    // Webhooks still being routed get a moment; one waiting for a claim that never comes is not waited for.
    await Promise.race([this.router.idle(), new Promise((r) => setTimeout(r, STOP_ROUTING_GRACE_MS).unref())]);
    if (this.ownership.localCount === 0) await this.instances.withdraw().catch(() => undefined);
    await this.link.close();
  }

  /** A verified, parsed delivery from Meta. */
  route(delivery: D): void {
    this.router.route(delivery);
  }

  /** The internal route other instances forward to, for the HTTP server. */
  get forwardRoute(): { path: string; handle: (body: Buffer, headers: IncomingHttpHeaders, remote: string | undefined) => ForwardAnswer } {
    return {
      path: FORWARD_PATH,
      handle: (body, headers, remote) => acceptForwarded<D>({ secret: this.o.config.secret, log: this.o.log, accept: (f) => this.router.accept(f) }, body, headers, remote),
    };
  }

  /** A call started here under this id (either direction). */
  claim(callId: string, tag = ""): void {
    void this.ownership.claim({ callId, tag });
  }

  release(callId: string): void {
    void this.ownership.release(callId);
  }

  metricsText(): Promise<string> {
    return this.metrics.text();
  }

  private schedule(): void {
    if (this.state !== "running") return;
    this.timer = setTimeout(() => {
      this.tickRunning = this.tick().finally(() => this.schedule());
    }, this.timing.sweepEveryMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (!this.link.isUp) return;
    try {
      const now = Date.now();
      if (now - this.lastHeartbeat >= this.timing.renewEveryMs) {
        await this.instances.heartbeat();
        this.lastHeartbeat = now;
      }
      const gone = await this.instances.refresh();
      // Right after Redis comes back, the living have not all re-asserted their calls yet.
      if (gone.length > 0 && this.link.upForMs() >= this.timing.settleMs) {
        const n = await this.instances.sweep(gone, (call) => this.endAtMeta(call));
        for (let i = 0; i < n; i++) this.metrics.orphanEnded("sweep");
      }
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, "cluster heartbeat failed");
    }
  }

  private async endAtMeta(call: OrphanCall): Promise<void> {
    try {
      await this.o.terminateAtMeta(call);
    } catch (err) {
      this.o.log.warn({ callId: call.callId, owner: call.owner, err: (err as Error).message }, "ending a gone instance's call at Meta failed");
    }
  }

  private onLinkState(s: RedisLinkState, prev: RedisLinkState): void {
    this.metrics.setRedisUp(s === "up");
    if (s === "up") {
      this.o.log.info({ instance: this.instanceId, calls: this.ownership.localCount }, prev === "connecting" ? "Redis reachable: taking calls" : "Redis reachable again: taking calls, claims re-asserted");
      // Re-asserts this instance and its calls at once (a restarted Redis may have lost them).
      this.lastHeartbeat = 0;
      void this.tickRunning.then(() => this.tick());
    } else if (s === "down" && this.state === "running") {
      this.o.log.error({ instance: this.instanceId, calls: this.ownership.localCount }, "Redis unreachable: serving the calls this instance owns, refusing new ones");
    }
  }
}
