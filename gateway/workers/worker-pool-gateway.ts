import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import type { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import type { IncomingSipCall, SipAddress, SipSignaling } from "../../sip/signaling.js";
import { readHeaderNames } from "../call/read-headers.js";
import { rateRefusal, SipIngressPolicy, SourceRate } from "../call/sip-ingress.js";
import type { InstanceLoad } from "../cluster/admission.js";
import { Cluster } from "../cluster/cluster.js";
import { redactConfig, type GatewayConfig } from "../config/config.js";
import { advertisedHttpHost, boundHttpAddress, listeningSipAddress, mediaAddressFor, sipSignalingFor, stopGraceSeconds } from "../gateway.js";
import { notReadyReason } from "../http/readiness.js";
import { HttpServer } from "../http/server.js";
import { LogThrottle } from "../log.js";
import type { WebhookDelivery } from "../meta/webhook-delivery.js";
import { loadMetrics, runtimeMetrics, webhookCounter } from "../metrics.js";
import { LoadMonitor } from "../observe/load-monitor.js";
import { CallDispatch } from "./call-dispatch.js";
import { HttpRelay } from "./http-relay.js";
import { MediaWorker } from "./media-worker-thread.js";
import { mergedExposition, type MetricJson } from "./metrics-merge.js";
import { SipBridge } from "./sip-bridge.js";
import { isHttpUp, isSipUp, type FromWorker } from "./worker-protocol.js";
import { workerConfig } from "./worker-share.js";

/** After its stop, how long a worker thread may take to end by itself. */
const WORKER_EXIT_MS = 2_000;

/** `running` takes calls; `draining` lets live calls end (a worker that dies is not replaced); `stopped` after stop. */
type PoolState = "created" | "running" | "draining" | "stopped";

/**
 * One gateway process using every core: HTTP (webhooks, health, metrics), the SIP stack and the
 * cluster membership on the main thread; the calls, with all their media, on MEDIA_WORKERS
 * worker threads. A call lives on one worker from start to end, so no packet crosses threads;
 * what crosses is webhooks (by call, see CallDispatch) and SIP signalling (SipBridge), a few
 * messages per call.
 */
export class WorkerPoolGateway {
  private readonly signaling: SipSignaling;
  private readonly bridge: SipBridge;
  private readonly dispatch: CallDispatch<WebhookDelivery>;
  private readonly workers: MediaWorker[] = [];
  /** Each worker's outgoing HTTP (the Graph API, call events), sent from this thread. */
  private readonly relays: HttpRelay[] = [];
  private readonly http: HttpServer;
  private readonly registry = new Registry();
  private readonly cluster: Cluster<WebhookDelivery> | undefined;
  private address: AddressInfo | undefined;
  private state: PoolState = "created";
  private readonly digestSecret = randomBytes(32);
  /** SIP_MAX_CALLS_PER_SECOND for the whole process (workers apply none of their own). */
  private readonly inviteRate: SourceRate | undefined;
  /** SIP_ALLOW_FROM, read here only to leave a refused source's 403 to the worker. */
  private readonly sources: SipIngressPolicy;
  /** Refused INVITEs are logged once a second per reason, as the call manager does. */
  private readonly refusalLog = new LogThrottle();
  /** The machine's load (each worker reports its loop's lateness) and the admission verdict from it. */
  private readonly load: LoadMonitor;

  /**
   * `logSink` takes the workers' log lines, whole: the destination of `log`, so that one writer
   * writes every thread's lines.
   */
  constructor(
    readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly count: number,
    private readonly logSink: (line: string) => void,
  ) {
    runtimeMetrics(this.registry);
    const webhooks = webhookCounter(this.registry);
    this.load = new LoadMonitor({ limits: config.calls.overload, log: log.child({ subsystem: "load" }) });
    loadMetrics(this.registry, () => this.load.snapshot());
    this.signaling = sipSignalingFor(config, log, mediaAddressFor(config));
    this.dispatch = new CallDispatch<WebhookDelivery>({
      workers: count,
      send: (w, delivery, admit) => this.workers[w]?.post({ t: "webhook", delivery, admit }),
      admits: (committed) => this.admitsNewCall(committed),
    });
    const perSecond = config.limits.sip.callsPerSecond;
    this.inviteRate = perSecond > 0 ? new SourceRate(perSecond) : undefined;
    this.sources = new SipIngressPolicy(config.sip.allowFrom, undefined, undefined, { callsPerSecond: 0 });
    this.bridge = new SipBridge({
      signaling: this.signaling,
      log: log.child({ subsystem: "sip-bridge" }),
      pickWorker: (invite) => this.workerForInvite(invite),
      screen: (invite) => this.screenInvite(invite),
      headers: readHeaderNames(config.sip.psidHeader),
    });
    for (let i = 0; i < count; i++) this.spawn(i);
    this.cluster = this.createCluster();
    this.http = new HttpServer({
      host: config.http.host,
      port: config.http.port,
      appSecret: config.meta.appSecret,
      verifyToken: config.meta.verifyToken,
      limits: config.limits,
      log: log.child({ subsystem: "http" }),
      onWebhook: (parsed) => (this.cluster ? this.cluster.route(parsed) : this.dispatch.route(parsed)),
      forwarded: this.cluster?.forwardRoute,
      onWebhookResult: (r) => webhooks.inc({ result: r }),
      notReady: () => this.notReady(),
      metrics: () => this.exposition(),
      liveCalls: () => this.liveCalls(),
    });
  }

  /** The worker threads by index, for supervision from outside (e.g. ending one as a crash would). */
  threads(): readonly Worker[] {
    return this.workers.map((w) => w.thread);
  }

  get sipAddress(): SipAddress {
    return listeningSipAddress(this.signaling);
  }

  get httpAddress(): AddressInfo {
    return boundHttpAddress(this.address);
  }

  async start(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.ready));
    await this.signaling.start();
    this.bridge.announceReadiness();
    this.address = await this.http.listen();
    this.cluster?.start(`http://${advertisedHttpHost(this.config.http.host, this.config.media.bindIp)}:${this.address.port}`);
    this.load.start();
    this.state = "running";
    this.log.info(
      { http: `${this.address.address}:${this.address.port}`, workers: this.count, stopGraceSeconds: stopGraceSeconds(this.config), config: redactConfig(this.config) },
      "gateway started",
    );
  }

  /** Stops taking calls, lets live calls run up to the deadline, then ends the rest; then the threads. */
  async stop(deadlineMs = 0): Promise<void> {
    this.state = "draining";
    for (const w of this.workers) w.post({ t: "drain" });
    const until = Date.now() + deadlineMs;
    while (this.dispatch.totalLive > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    await this.http.close();
    await this.cluster?.stop();
    this.state = "stopped";
    await Promise.allSettled(
      this.workers.map(async (w) => {
        if (w.state !== "up") return;
        w.state = "stopping";
        // A worker that is stopping reports no more, and is not a late one.
        this.load.forget(`worker-${w.index}`);
        // The worker ends its calls and flushes its reports (its own stop, as a single process's).
        await w.request((req) => ({ t: "stop", req, deadlineMs: 0 }), 30_000).catch((err: unknown) => this.log.warn({ err, worker: w.index }, "media worker stop failed"));
        // A thread that does not end by itself (a handle left open) is ended here.
        const timer = setTimeout(() => void w.thread.terminate(), WORKER_EXIT_MS);
        await w.exited;
        clearTimeout(timer);
      }),
    );
    await this.signaling.stop();
    this.load.stop();
    this.log.info("gateway stopped");
  }

  private spawn(index: number): void {
    const worker = new MediaWorker(
      index,
      workerConfig(this.config, index, this.count),
      this.digestSecret,
      (m) => this.onWorkerMessage(index, m),
      (code) => void this.onWorkerExit(index, code),
    );
    this.workers[index] = worker;
    this.relays[index] = new HttpRelay((m) => worker.post(m));
    this.bridge.attach(index, { postMessage: (m) => worker.post(m) });
    worker.ready.then(() => this.bridge.announceReadiness(), () => undefined);
  }

  private onWorkerMessage(index: number, m: FromWorker): void {
    if (isSipUp(m)) {
      this.bridge.receive(index, m);
      return;
    }
    if (isHttpUp(m)) {
      this.relays[index]?.receive(m);
      return;
    }
    if (m.t === "log") {
      this.logSink(m.line);
    } else if (m.t === "load") {
      // A stopping worker's last report would go stale once it is gone.
      if (this.workers[index]?.state === "up") this.load.report(`worker-${index}`, m.loopDelayMs);
    } else if (m.t === "call-added") {
      this.dispatch.callAdded(index, m.callId, m.businessId);
      this.cluster?.claim(m.callId, m.businessId);
    } else if (m.t === "call-ended") {
      this.dispatch.callEnded(index, m.callId);
      this.cluster?.release(m.callId);
    }
  }

  /**
   * A worker died (a crash, not a stop): its calls' SIP legs are ended here and their Meta legs
   * through another worker's Graph clients, and while the process takes calls a new worker takes
   * its place.
   */
  private async onWorkerExit(index: number, code: number): Promise<void> {
    if (this.state === "stopped") return;
    const replace = this.state === "running";
    this.relays[index]?.close();
    this.load.forget(`worker-${index}`);
    const orphans = this.dispatch.dropWorker(index);
    this.log.error({ worker: index, code, calls: orphans.length, replaced: replace }, "media worker exited: its calls are ended");
    await this.bridge.dropWorker(index);
    if (replace) {
      this.spawn(index);
      await this.workers[index]!.ready.catch((err: unknown) => this.log.error({ err, worker: index }, "media worker could not be restarted"));
    }
    for (const { callId, businessId } of orphans) {
      this.cluster?.release(callId);
      const other = this.workers.find((w) => w.state === "up");
      if (!other) break;
      await other
        .request((req) => ({ t: "terminate", req, callId, businessId }))
        .catch((err: unknown) => this.log.warn({ err, callId }, "could not end a lost worker's call at Meta"));
    }
  }

  /** An INVITE with Replaces goes where the dialog it replaces is; any other to the least loaded worker. */
  private workerForInvite(invite: IncomingSipCall): number {
    if (invite.replaces) {
      const holder = this.bridge.workerOfSipCall(invite.replaces.callId);
      if (holder !== undefined) return holder;
    }
    return this.dispatch.leastLoaded((w) => this.bridge.callsOf(w));
  }

  private notReady(): string | undefined {
    return notReadyReason({
      ...this.instanceLoad(),
      sipReady: this.signaling.ready,
      clusterHealthy: this.cluster?.healthy ?? true,
      workersDown: this.workers.filter((w) => w.state !== "up").map((w) => w.index),
      overloadReason: this.load.reason,
    });
  }

  /** This process's load as `/readyz` and the cluster read it. */
  private instanceLoad(): InstanceLoad {
    return {
      draining: this.state !== "running",
      liveCalls: this.dispatch.totalLive,
      maxCalls: this.config.calls.maxConcurrent,
      overloaded: this.load.overloaded,
    };
  }

  /** Whether one more new call is taken: running, the cluster admitting, room under MAX_CONCURRENT_CALLS, and the machine not overloaded. */
  private admitsNewCall(committed: number): boolean {
    return this.state === "running" && (this.cluster?.admitting() ?? true) && committed < this.config.calls.maxConcurrent && !this.load.overloaded;
  }

  /**
   * What the owner answers itself, for the whole process, before an agent's INVITE reaches a
   * worker: a source over SIP_MAX_CALLS_PER_SECOND (480), and a new call the process cannot take
   * now (503). An INVITE with Replaces continues a call and is not a new one. Everything else
   * about the INVITE (allowlist, digest, consumer, SDP) is the worker's call manager's.
   */
  private screenInvite(invite: IncomingSipCall): boolean {
    if (invite.replaces) return true;
    const address = invite.source.address.replace(/^::ffff:/, "");
    if (!this.sources.allowsSource(address)) return true;
    if (this.inviteRate && !this.inviteRate.take(address)) {
      const r = rateRefusal(address, this.inviteRate.perSecond);
      this.refusalLog.run(r.limit ?? String(r.status), (suppressed) =>
        this.log.warn({ sipCallId: invite.sipCallId, source: address, status: r.status, detail: r.detail, limit: r.limit, suppressed }, "agent call refused"),
      );
      invite.reject(r.status, r.reason, r.headers);
      return false;
    }
    if (!this.admitsNewCall(this.dispatch.committed)) {
      this.refusalLog.run("admission", (suppressed) =>
        this.log.warn({ sipCallId: invite.sipCallId, live: this.dispatch.totalLive, suppressed }, "agent call refused: not admitting calls"),
      );
      invite.reject(503, "Service Unavailable");
      return false;
    }
    return true;
  }


  private async exposition(): Promise<{ contentType: string; body: string }> {
    const own = (await this.registry.getMetricsAsJSON()) as MetricJson[];
    const perWorker = await Promise.all(
      this.workers.map((w) => w.request((req) => ({ t: "metrics", req })).then((v) => v as MetricJson[], () => [] as MetricJson[])),
    );
    const merged = await mergedExposition(own, perWorker);
    return this.cluster ? { contentType: merged.contentType, body: merged.body + (await this.cluster.metricsText()) } : merged;
  }

  private async liveCalls(): Promise<unknown[]> {
    const lists = await Promise.all(this.workers.map((w) => w.request((req) => ({ t: "calls", req })).then((v) => v as unknown[], () => [])));
    return lists.flat();
  }

  private createCluster(): Cluster<WebhookDelivery> | undefined {
    const config = this.config.cluster;
    if (!config) return undefined;
    return new Cluster<WebhookDelivery>({
      config,
      log: this.log.child({ subsystem: "cluster" }),
      keyOf: (event) => JSON.stringify(event),
      deliverLocal: (delivery) => this.dispatch.route(delivery),
      load: () => this.instanceLoad(),
      terminateAtMeta: async (call) => {
        const worker = this.workers.find((w) => w.state === "up");
        if (!worker) throw new Error("no media worker up");
        await worker.request((req) => ({ t: "terminate", req, callId: call.callId, businessId: call.tag }));
      },
    });
  }
}
