import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import type { Logger } from "pino";
import { DigestVerifier } from "../sip/digest-verifier.js";
import { createSipSignaling } from "../sip/backend.js";
import { PortAllocator } from "../sip/rtp/port-allocator.js";
import type { PlaceCallOptions, SipAddress, SipSignaling } from "../sip/signaling.js";
import { CallManager } from "./call/call-manager.js";
import type { InstanceLoad } from "./cluster/admission.js";
import { Cluster } from "./cluster/cluster.js";
import { EchoTarget } from "./call/echo-target.js";
import { CallRegistry } from "./call/registry.js";
import { MediaTicker } from "./call/media-ticker.js";
import { PbxMedia } from "./call/pbx-media.js";
import { SipIngressPolicy } from "./call/sip-ingress.js";
import { sipUriHost } from "./call/refer-policy.js";
import { SipTarget } from "./call/sip-target.js";
import type { CallTarget } from "./call/target.js";
import { redactConfig, type GatewayConfig } from "./config/config.js";
import { notReadyReason } from "./http/readiness.js";
import { HttpServer } from "./http/server.js";
import { EventDeduper } from "./meta/dedupe.js";
import { CallMetricsReporter } from "./meta/call-metrics.js";
import { GraphClient } from "./meta/graph-client.js";
import { GraphHttp } from "./meta/graph-http.js";
import type { HttpSend } from "./http/http-send.js";
import { WhatsAppGraphClient } from "./meta/whatsapp-client.js";
import type { MessengerPage, WhatsAppNumber } from "./call/call-manager.js";
import { GatewayMetrics, loadMetrics } from "./metrics.js";
import { CallMonitor } from "./observe/call-monitor.js";
import { LoadMonitor, LoopDelayMeter } from "./observe/load-monitor.js";
import { CallEventPublisher } from "./observe/event-publisher.js";
import { MetaLeg, prepareDtlsCertificate } from "./webrtc/meta-leg.js";
import { SdesMetaLeg } from "./webrtc/sdes-leg.js";
import { ffmpegTotals } from "../transcode/video/ffmpeg-process.js";

/** From accept to DTLS up: ICE to an ice-lite peer plus one DTLS handshake, with room for loss. */
const CONNECT_TIMEOUT_MS = 15_000;
/** At shutdown, how long queued integrator events may still be delivered. */
const EVENTS_FLUSH_MS = 5_000;
/** At shutdown, for BYEs to be answered and the process to exit. */
const SHUTDOWN_SLACK_S = 5;

/**
 * How long a platform must wait between SIGTERM and SIGKILL for a shutdown to end every call
 * cleanly: the drain, then each remaining call's terminate at Meta (a Graph request that may time
 * out and be retried once), then the last reports' flush, and a few seconds for the SIP side's BYEs
 * and the process to exit. A platform that kills sooner leaves calls up at Meta with no terminate.
 */
export function stopGraceSeconds(config: GatewayConfig): number {
  return config.calls.drainSeconds + Math.ceil((2 * config.meta.graphTimeoutMs) / 1000) + EVENTS_FLUSH_MS / 1000 + SHUTDOWN_SLACK_S;
}

/** Where a gateway's SIP side listens; throws until it does. */
export function listeningSipAddress(signaling: SipSignaling): SipAddress {
  const address = signaling.localAddress;
  if (!address) throw new Error("SIP side not listening yet");
  return address;
}

/** Where a gateway's HTTP side is bound; throws before it is. */
export function boundHttpAddress(address: AddressInfo | undefined): AddressInfo {
  if (!address) throw new Error("gateway not started");
  return address;
}

/**
 * The composition root: builds every subsystem from the configuration and owns their lifetimes.
 * Nothing else constructs subsystems, so what the process runs is readable here in one place.
 */
export class Gateway {
  readonly registry = new CallRegistry();
  /** Each Page with its Graph client (none on a WhatsApp-only gateway). */
  private readonly pages: ReadonlyMap<string, MessengerPage>;
  private readonly graphHttp: GraphHttp;
  private readonly whatsApp: ReadonlyMap<string, WhatsAppNumber>;
  readonly calls: CallManager;
  readonly metrics: GatewayMetrics;
  readonly monitor: CallMonitor;
  readonly events: CallEventPublisher;
  /** Meta's call_metrics after each call; undefined with CALL_METRICS=off. */
  readonly callMetrics: CallMetricsReporter | undefined;
  private readonly signaling: SipSignaling;
  private readonly sipRtpPorts: PortAllocator;
  private readonly ticker: MediaTicker;
  /** Address our SIP-side SDP advertises for media. */
  readonly sipMediaAddress: string;
  /** Undefined in a media worker: the process's HTTP side is its owner's. */
  private readonly http: HttpServer | undefined;
  private address: AddressInfo | undefined;
  /** This instance's membership of a cluster (REDIS_URL); undefined when it runs on its own. */
  readonly cluster: Cluster<Parameters<CallManager["handleWebhook"]>[0]> | undefined;
  /** The machine's load and the admission verdict from it; undefined in a media worker (its owner keeps them). */
  private readonly load: LoadMonitor | undefined;

  constructor(
    readonly config: GatewayConfig,
    private readonly log: Logger,
    parts: GatewayParts = {},
  ) {
    const { meta, media, calls, limits } = config;
    this.load =
      parts.serveHttp === false
        ? undefined
        : new LoadMonitor({ limits: calls.overload, log: log.child({ subsystem: "load" }), ownMeter: new LoopDelayMeter() });
    this.events = new CallEventPublisher({
      log: log.child({ subsystem: "events" }),
      eventLog: config.events.log,
      url: config.events.url,
      secret: config.events.secret,
      delivery: { onResult: (result) => this.metrics.eventDelivery(result), send: parts.httpSend },
    });
    this.monitor = new CallMonitor({
      pageId: meta.pageId,
      sipTarget: config.sip.target.kind === "uri" ? config.sip.target.uri : "echo",
      publish: (event, callKey) => this.events.publish(event, callKey),
      observeSetup: (direction, phase, seconds) => this.metrics.setupPhase(direction, phase, seconds),
      log: log.child({ subsystem: "monitor" }),
    });
    this.ticker = new MediaTicker(5, log.child({ subsystem: "media" }));
    // One range for all media: the lower half for ICE toward Meta, the upper half for RTP pairs
    // toward the PBX, so neither stack probes ports the other holds.
    const split = media.rtpPortMin + Math.floor((media.rtpPortMax - media.rtpPortMin) / 2);
    const icePorts: [number, number] = [media.rtpPortMin, split];
    this.sipRtpPorts = new PortAllocator({ address: media.bindIp ?? "0.0.0.0", minPort: split + 1, maxPort: media.rtpPortMax });
    this.sipMediaAddress = mediaAddressFor(config);
    this.signaling = parts.signaling ?? sipSignalingFor(config, log, this.sipMediaAddress);
    // One Graph transport for both platforms: one timeout, one retry rule, one set of metrics.
    const graphHttp = new GraphHttp({
      graphUrl: meta.graphUrl,
      graphVersion: meta.graphVersion,
      timeoutMs: meta.graphTimeoutMs,
      logger: log.child({ subsystem: "graph" }),
      onRequest: (action, seconds, ok) => this.metrics.graphRequest(action, seconds, ok),
      send: parts.httpSend,
    });
    this.graphHttp = graphHttp;
    const pages = new Map<string, MessengerPage & { meta: GraphClient }>();
    this.pages = pages;
    for (const p of meta.pages) {
      const client = new GraphClient({ graphUrl: meta.graphUrl, graphVersion: meta.graphVersion, pageId: p.pageId, accessToken: p.accessToken, http: graphHttp });
      pages.set(p.pageId, { pageId: p.pageId, meta: client, sipTarget: p.sipTarget });
    }
    const whatsApp = new Map<string, WhatsAppNumber>();
    this.whatsApp = whatsApp;
    for (const n of config.whatsApp?.numbers ?? []) {
      const client = new WhatsAppGraphClient({ http: graphHttp, phoneNumberId: n.phoneNumberId, accessToken: config.whatsApp!.accessToken });
      whatsApp.set(n.phoneNumberId, { phoneNumberId: n.phoneNumberId, client, sipTarget: n.sipTarget, wabaId: config.whatsApp!.wabaId, keyExchange: n.keyExchange });
    }
    this.callMetrics =
      meta.callMetrics && pages.size > 0
        ? new CallMetricsReporter({
            send: async (body, pageId) => {
              const page = pages.get(pageId);
              if (!page) throw new Error(`no Page ${pageId} configured`);
              await page.meta.callMetrics(body);
            },
            log: log.child({ subsystem: "call-metrics" }),
            onResult: (result) => this.metrics.callMetricsReport(result),
          })
        : undefined;
    this.calls = new CallManager({
      pages,
      registry: this.registry,
      deduper: new EventDeduper(),
      createLeg: (callId, callLog, keyExchange) => {
        const leg =
          keyExchange === "SDES"
            ? new SdesMetaLeg(callId, { allocator: this.sipRtpPorts, mediaAddress: this.sipMediaAddress }, callLog)
            : new MetaLeg(callId, { portRange: icePorts, publicIp: media.publicIp, bindIp: media.bindIp, stunUrls: media.stunUrls }, callLog);
        this.monitor.legCreated(callId, leg);
        return leg;
      },
      whatsApp,
      createTarget: (callId, to, route) => this.createTarget(log.child({ callId, leg: "sip" }), to, route),
      transferPolicy: config.sip.refer,
      targetHost: config.sip.target.kind === "uri" ? sipUriHost(config.sip.target.uri) : undefined,
      log: log.child({ subsystem: "calls" }),
      acceptTimeoutMs: calls.acceptTimeoutMs,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      mediaTimeoutMs: calls.mediaTimeoutMs,
      maxConcurrent: calls.maxConcurrent,
      ingress: new SipIngressPolicy(
        config.sip.allowFrom,
        config.sip.psidHeader,
        config.sip.agentAuth && new DigestVerifier(config.sip.agentAuth, { algorithms: config.sip.agentAuth.algorithms, secret: parts.digestSecret }),
        { callsPerSecond: limits.sip.callsPerSecond, maxIdLength: limits.maxIdLength, sdp: limits.sdp, whatsApp: whatsApp.size > 0 },
      ),
      createPbxMedia: (callLog, sendInfo) =>
        PbxMedia.open({
          allocator: this.sipRtpPorts,
          ticker: this.ticker,
          mediaAddress: this.sipMediaAddress,
          log: callLog,
          sendInfo,
          srtp: this.config.sip.srtp,
        }),
      ringTimeoutMs: config.sip.ringTimeoutMs,
      requestPermission: config.sip.requestPermission,
      srtp: config.sip.srtp,
      onCallCreated: (call, birth) => this.monitor.watch(call, birth),
      admitting: () => (parts.admitting?.() ?? true) && (this.cluster?.admitting() ?? true) && !this.load?.overloaded,
    });
    this.cluster = this.createCluster(log);
    this.signaling.on("incoming", (invite) => this.calls.handleSipInvite(invite));
    this.metrics = new GatewayMetrics({
      registry: () => this.registry.stats(),
      manager: () => this.calls.stats(),
      graph: () => this.graphHttp.stats(),
      callsByState: () => this.monitor.countsByState(),
      eventsQueued: () => this.events.stats().delivery?.queued ?? 0,
      transcoders: () => ffmpegTotals(),
    });
    const load = this.load;
    if (load) loadMetrics(this.metrics.registry, () => load.snapshot());
    this.registry.onCallEnded((info) => {
      this.metrics.callEnded(info);
      this.callMetrics?.report(info);
    });
    this.http = parts.serveHttp === false ? undefined : new HttpServer({
      host: config.http.host,
      port: config.http.port,
      appSecret: meta.appSecret,
      verifyToken: meta.verifyToken,
      limits,
      log: log.child({ subsystem: "http" }),
      onWebhook: (parsed) => (this.cluster ? this.cluster.route(parsed) : this.calls.handleWebhook(parsed)),
      forwarded: this.cluster?.forwardRoute,
      onWebhookResult: (r) => this.metrics.webhook(r),
      notReady: () =>
        notReadyReason({
          ...this.instanceLoad(),
          sipReady: this.signaling.ready,
          clusterHealthy: this.cluster?.healthy ?? true,
          workersDown: [],
          overloadReason: this.load?.reason,
        }),
      metrics: async () => {
        const m = await this.metrics.exposition();
        return this.cluster ? { contentType: m.contentType, body: m.body + (await this.cluster.metricsText()) } : m;
      },
      liveCalls: () => this.monitor.live(),
    });
  }

  get sip(): SipSignaling {
    return this.signaling;
  }

  /**
   * The SIP stack as call targets use it: each INVITE they place is reported to the monitor (its
   * SIP Call-ID for the events, the moment it left for the setup timings). A view rather than a
   * hook in the targets, which need not know about monitoring.
   */
  private get observedSignaling(): SipSignaling {
    const sip = this.signaling;
    const monitor = this.monitor;
    return new Proxy(sip, {
      get(target, prop) {
        if (prop === "placeCall") {
          return (options: PlaceCallOptions) => {
            const call = target.placeCall(options);
            if (options.callId !== undefined) monitor.invited(options.callId, call.sipCallId, options.uri);
            return call;
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** Where SIP reaches the gateway (useful with port 0); throws until the SIP side knows it. */
  get sipAddress(): SipAddress {
    return listeningSipAddress(this.signaling);
  }

  /** The HTTP address actually bound (useful with port 0). */
  get httpAddress(): AddressInfo {
    return boundHttpAddress(this.address);
  }

  async start(): Promise<void> {
    await prepareDtlsCertificate();
    await this.sip.start();
    this.load?.start();
    if (!this.http) return;
    this.address = await this.http.listen();
    this.cluster?.start(`http://${advertisedHttpHost(this.config.http.host, this.config.media.bindIp)}:${this.address.port}`);
    this.log.info(
      { http: `${this.address.address}:${this.address.port}`, stopGraceSeconds: stopGraceSeconds(this.config), config: redactConfig(this.config) },
      "gateway started",
    );
  }

  /**
   * Stops taking calls, lets live calls run up to the deadline, then ends the rest on both legs.
   */
  async stop(deadlineMs = 0): Promise<void> {
    this.calls.startDraining();
    const until = Date.now() + deadlineMs;
    while (this.registry.size > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
    }
    if (this.registry.size > 0) {
      this.log.info({ calls: this.registry.size }, "ending live calls");
      await this.calls.hangupAll("gateway shutting down");
    }
    await this.http?.close();
    await this.cluster?.stop();
    await this.sip.stop();
    this.load?.stop();
    // The last calls' reports get a moment to reach Meta and the integrator; what is left is logged.
    await Promise.all([this.events.close(EVENTS_FLUSH_MS), this.callMetrics?.close(EVENTS_FLUSH_MS)]);
    this.log.info("gateway stopped");
  }

  /** This instance's load as `/readyz` and the cluster read it. */
  private instanceLoad(): InstanceLoad {
    return {
      draining: this.calls.isDraining,
      liveCalls: this.registry.size,
      maxCalls: this.config.calls.maxConcurrent,
      overloaded: this.load?.overloaded ?? false,
    };
  }

  /**
   * Several instances behind one webhook URL: webhooks go through the cluster's router to the
   * instance that owns each call, and every call registered here is claimed for this instance
   * while it lives. The calls of an instance that died are ended at Meta by the survivors.
   */
  private createCluster(log: Logger): Gateway["cluster"] {
    const config = this.config.cluster;
    if (!config) return undefined;
    const cluster = new Cluster<Parameters<CallManager["handleWebhook"]>[0]>({
      config,
      log: log.child({ subsystem: "cluster" }),
      // An event's identity is its whole parsed content: a retry or duplicate carries the same.
      keyOf: (event) => JSON.stringify(event),
      deliverLocal: (delivery) => this.calls.handleWebhook(delivery),
      load: () => this.instanceLoad(),
      terminateAtMeta: (call) => this.terminateAtMeta(call.callId, call.tag),
    });
    this.registry.onCallAdded((callId, call) => {
      // The tag names the Page or number the call belongs to: what a survivor ends it through.
      cluster.claim(callId, call.businessId);
      call.whenEnded(() => cluster.release(callId));
    });
    return cluster;
  }

  /**
   * Ends a gone instance's call at Meta: Messenger's through its Page, WhatsApp's through its
   * number, as its claim's tag names them; each configured one in turn when the tag names none of
   * ours (a claim made before tags were written).
   */
  async terminateAtMeta(callId: string, businessId: string): Promise<void> {
    const whatsApp = callId.startsWith("wacid.");
    const own = whatsApp ? this.whatsApp.get(businessId)?.client : this.pages.get(businessId)?.meta;
    const clients: { terminate(callId: string): Promise<void> }[] = own
      ? [own]
      : whatsApp
        ? [...this.whatsApp.values()].map((n) => n.client)
        : [...this.pages.values()].map((p) => p.meta);
    let last: unknown = new Error(`no ${whatsApp ? "WhatsApp number" : "Messenger Page"} configured`);
    for (const client of clients) {
      try {
        await client.terminate(callId);
        return;
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  /** What a consumer's call rings: the configured target, or `to` (a transfer's new party). */
  private createTarget(log: Logger, to?: { uri: string; headers: Record<string, string> }, route?: string): CallTarget {
    const target = route !== undefined ? { kind: "uri" as const, uri: route } : this.config.sip.target;
    if (!to && target.kind === "echo") return new EchoTarget();
    return new SipTarget({
      signaling: this.observedSignaling,
      allocator: this.sipRtpPorts,
      ticker: this.ticker,
      uri: to?.uri ?? (target.kind === "uri" ? target.uri : ""),
      extraHeaders: to?.headers,
      auth: this.config.sip.auth,
      mediaAddress: this.sipMediaAddress,
      srtp: this.config.sip.srtp,
      // A consumer's own call gives up first (it must reject within Meta's window); this only
      // backstops it. A transfer's new party rings as long as an agent's call would.
      ringTimeoutMs: to ? this.config.sip.ringTimeoutMs : this.config.calls.acceptTimeoutMs + 5_000,
      mediaTimeoutMs: this.config.calls.mediaTimeoutMs,
      earlyMedia: !to && this.config.calls.acceptOn === "early-media",
      pageId: this.config.meta.pageId,
      log,
    });
  }
}

/**
 * What a Gateway takes from outside instead of building: in a media worker, the SIP stack is the
 * owner thread's (through the SIP port) and the HTTP side is the owner's too.
 */
export interface GatewayParts {
  signaling?: SipSignaling;
  serveHttp?: boolean;
  /** Whether new calls are taken, beside draining and capacity (in a worker: the owner's decision). */
  admitting?: () => boolean;
  /** The key agents' digest nonces are signed with, the same in every worker of a process. */
  digestSecret?: Buffer;
  /** How outgoing HTTP (the Graph API, call events) is sent (in a media worker: by the owner thread). */
  httpSend?: HttpSend;
}

/** Address our SIP-side SDP advertises for media. */
export function mediaAddressFor(config: GatewayConfig): string {
  return config.media.publicIp ?? config.media.bindIp ?? firstExternalIpv4() ?? "127.0.0.1";
}

/** The configured SIP stack, one per process. */
export function sipSignalingFor(config: GatewayConfig, log: Logger, mediaAddress: string): SipSignaling {
  return createSipSignaling({
    backend: config.sip.backend,
    listen: config.sip.listen,
    transports: config.sip.transports,
    outboundProxy: config.sip.outboundProxy,
    dnsServers: config.sip.dnsServers,
    keepAliveS: config.sip.keepAliveS,
    registration: config.sip.register,
    tls: config.sip.tls && { cert: config.sip.tls.cert, key: config.sip.tls.key, ca: config.sip.tls.ca, verify: config.sip.tls.verify },
    advertisedHost: config.media.publicIp ?? (config.sip.listen.host === "0.0.0.0" ? mediaAddress : config.sip.listen.host),
    userAgent: "meta-sip-gateway",
    logger: log.child({ subsystem: "sip" }),
    limits: { maxMessageBytes: config.limits.sip.maxMessageBytes, maxHeaders: config.limits.sip.maxHeaders, maxHeaderBytes: config.limits.sip.maxHeaderBytes },
  });
}

/** Where other instances reach this one's HTTP port when CLUSTER_ADVERTISE_URL does not say. */
export function advertisedHttpHost(httpHost: string, bindIp: string | undefined): string {
  if (httpHost !== "0.0.0.0" && httpHost !== "::") return httpHost.includes(":") ? `[${httpHost}]` : httpHost;
  return bindIp ?? firstExternalIpv4() ?? "127.0.0.1";
}

function firstExternalIpv4(): string | undefined {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}
