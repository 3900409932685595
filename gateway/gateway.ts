import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { CallManager } from "./call/call-manager.js";
import { EchoTarget } from "./call/echo-target.js";
import { CallRegistry } from "./call/registry.js";
import type { CallTarget } from "./call/target.js";
import { redactConfig, type GatewayConfig } from "./config/config.js";
import { HttpServer } from "./http/server.js";
import { EventDeduper } from "./meta/dedupe.js";
import { GraphClient } from "./meta/graph-client.js";
import { GatewayMetrics } from "./metrics.js";
import { MetaLeg } from "./webrtc/meta-leg.js";

/** From accept to DTLS up: ICE to an ice-lite peer plus one DTLS handshake, with room for loss. */
const CONNECT_TIMEOUT_MS = 15_000;

/**
 * The composition root: builds every subsystem from the configuration and owns their lifetimes.
 * Nothing else constructs subsystems, so what the process runs is readable here in one place.
 */
export class Gateway {
  readonly registry = new CallRegistry();
  readonly graph: GraphClient;
  readonly calls: CallManager;
  readonly metrics: GatewayMetrics;
  private readonly http: HttpServer;
  private address: AddressInfo | undefined;

  constructor(
    readonly config: GatewayConfig,
    private readonly log: Logger,
  ) {
    const { meta, media, calls } = config;
    this.graph = new GraphClient({
      graphUrl: meta.graphUrl,
      graphVersion: meta.graphVersion,
      pageId: meta.pageId,
      accessToken: meta.pageAccessToken,
      timeoutMs: meta.graphTimeoutMs,
      logger: log.child({ subsystem: "graph" }),
    });
    this.calls = new CallManager({
      pageId: meta.pageId,
      registry: this.registry,
      deduper: new EventDeduper(),
      meta: this.graph,
      createLeg: (callId, callLog) =>
        new MetaLeg(
          callId,
          { portRange: [media.rtpPortMin, media.rtpPortMax], publicIp: media.publicIp, bindIp: media.bindIp, stunUrls: media.stunUrls },
          callLog,
        ),
      createTarget: () => this.createTarget(),
      log: log.child({ subsystem: "calls" }),
      acceptTimeoutMs: calls.acceptTimeoutMs,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      mediaTimeoutMs: calls.mediaTimeoutMs,
      maxConcurrent: calls.maxConcurrent,
    });
    this.metrics = new GatewayMetrics({
      registry: () => this.registry.stats(),
      manager: () => this.calls.stats(),
      graph: () => this.graph.stats(),
    });
    this.registry.onCallEnded((info) => this.metrics.callEnded(info));
    this.http = new HttpServer({
      host: config.http.host,
      port: config.http.port,
      appSecret: meta.appSecret,
      verifyToken: meta.verifyToken,
      log: log.child({ subsystem: "http" }),
      onWebhook: (parsed) => this.calls.handleWebhook(parsed),
      onWebhookResult: (r) => this.metrics.webhook(r),
      isReady: () => !this.calls.isDraining && !this.calls.atCapacity,
      metrics: () => this.metrics.exposition(),
    });
  }

  /** The HTTP address actually bound (useful with port 0). */
  get httpAddress(): AddressInfo {
    if (!this.address) throw new Error("gateway not started");
    return this.address;
  }

  async start(): Promise<void> {
    this.address = await this.http.listen();
    this.log.info({ http: `${this.address.address}:${this.address.port}`, config: redactConfig(this.config) }, "gateway started");
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
    await this.http.close();
    this.log.info("gateway stopped");
  }

  private createTarget(): CallTarget {
    const target = this.config.sip.target;
    if (target.kind === "echo") return new EchoTarget();
    throw new Error(`SIP target ${target.uri} needs the SIP leg, which is not available in this build`);
  }
}
