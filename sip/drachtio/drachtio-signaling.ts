import { EventEmitter } from "node:events";
import { SipArgumentError, SipHeaderError } from "../errors.js";
import { silentLogger, type SipLogger } from "../logger.js";
import { parseReplaces } from "../refer.js";
import type { OutgoingSipCall, PlaceCallOptions, SipAddress, SipReplaces, SipSignaling, SipSignalingEvents } from "../signaling.js";
import { DrachtioIncomingCall } from "./incoming-call.js";
import { ALLOWED_METHODS, checkSipUri } from "./message.js";
import { DrachtioOutgoingCall, type DrachtioCallContext, type DrachtioLiveCall } from "./outgoing-call.js";
import { DrachtioRegistration } from "./registration.js";
import { closeSrf, createSrf, dropConnection, onEveryMessage, type Srf, type SrfRequest, type SrfServerResponse } from "./srf.js";

export interface DrachtioSipOptions {
  /** drachtio-server's control (admin) address, inbound connection mode. */
  host: string;
  /** Its control port (drachtio's default 9022). */
  port: number;
  secret: string;
  /** User-Agent / Server header. */
  userAgent?: string;
  /** From user part when a call does not give one. Default "gateway". */
  defaultFromUser?: string;
  logger?: SipLogger;
  /** Longest wait between reconnection attempts; they start at 255 ms and grow 1.7×. Default 3000. */
  reconnectMaxDelayMs?: number;
  /** Application-level ping on the control connection; drachtio-srf's minimum is 5000. Default 15000. */
  pingIntervalMs?: number;
  /** How long start() waits for the first connection before it resolves not ready. Default 5000. */
  connectWaitMs?: number;
  /** A 'reinvite' listener that has not responded by then is answered 500. Default 10000. */
  reinviteAnswerTimeoutMs?: number;
  /** How long the implicit subscription of an accepted REFER lasts. Default 180. */
  referSubscriptionS?: number;
  /** An incoming call neither accepted nor rejected by then is answered 480. Default 180000. */
  incomingAnswerTimeoutMs?: number;
  /** Ring time when PlaceCallOptions.timeoutMs is not given. Default 120000. */
  defaultRingTimeoutMs?: number;
  /** Out-of-dialog OPTIONS without a final response by then resolve 408. Default 35000. */
  optionsTimeoutMs?: number;
  /**
   * Keep a registration at this registrar (REGISTERs sent through drachtio-server); the signalling
   * is ready only while it is in place.
   */
  registration?: { registrar: string; user: string; auth: { username: string; password: string } | undefined; expiresS: number; retryMs?: number; maxRetryMs?: number };
  /**
   * Outbound proxy for every request outside a dialog (INVITEs, REGISTERs, OPTIONS): drachtio-server
   * sends them to it, the Request-URI staying the target (RFC 3261 §8.1.2).
   */
  outboundProxy?: string;
}

/** Dialogs left at drachtio-server when the connection dropped, BYEd once it is back. */
const MAX_ORPHANS = 10_000;
const ORPHAN_TTL_MS = 10 * 60_000;

/**
 * SipSignaling on drachtio-srf talking to a drachtio-server sidecar (inbound connection mode).
 * drachtio-server runs the SIP transactions, transports and dialog state; this class adds what the
 * gateway's port promises on top: readiness that follows the control connection, calls that end
 * (and say so) when it drops, and the same answers to agents' INVITEs as the embedded backend.
 */
export class DrachtioSipSignaling extends EventEmitter<SipSignalingEvents> implements SipSignaling {
  private readonly logger: SipLogger;
  private readonly userAgent: string;
  private srf: Srf | undefined;
  private readonly calls = new Set<DrachtioLiveCall>();
  private readonly pendingOptions = new Set<(status: number) => void>();
  private orphans: { dialogId: string; at: number }[] = [];
  private state: "new" | "started" | "stopping" | "stopped" = "new";
  private connected = false;
  private address: SipAddress | undefined;
  private serverVersion: string | undefined;
  private refusedLoggedAt = Number.NEGATIVE_INFINITY;
  private pingWatch: NodeJS.Timeout | undefined;
  private lastHeardAt = 0;
  private refusedUnlogged = 0;
  private readonly context: DrachtioCallContext;
  private registration: DrachtioRegistration | undefined;
  private registrationStarted = false;
  /** The readiness last announced, so each change is said once. */
  private announcedReady = false;
  private connectionWaiter: (() => void) | undefined;

  constructor(private readonly config: DrachtioSipOptions) {
    super();
    this.logger = config.logger ?? silentLogger;
    this.userAgent = config.userAgent ?? "meta-sip-gateway";
    const srf = (): Srf => {
      if (!this.srf) throw new SipArgumentError("SIP signalling is not started");
      return this.srf;
    };
    this.context = {
      get srf(): Srf {
        return srf();
      },
      logger: this.logger,
      userAgent: this.userAgent,
      reinviteAnswerTimeoutMs: config.reinviteAnswerTimeoutMs ?? 10_000,
      defaultRingTimeoutMs: config.defaultRingTimeoutMs ?? 120_000,
      referSubscriptionS: config.referSubscriptionS ?? 180,
      outboundProxy: config.outboundProxy,
      isConnected: () => this.ready,
      callEnded: (call) => this.calls.delete(call),
    };
  }

  /** Connected to drachtio-server and, when one is configured, registered. */
  get ready(): boolean {
    return this.state === "started" && this.connected && (this.registration === undefined || this.registration.state === "registered");
  }

  /** The registration's state, when one is configured. */
  get registrationState(): string | undefined {
    return this.registration?.state;
  }

  /** drachtio-server's SIP listener (UDP preferred), as it reported on connecting. */
  get localAddress(): SipAddress | undefined {
    return this.address;
  }

  /** Calls not yet over. */
  get activeCalls(): number {
    return this.calls.size;
  }

  async start(): Promise<void> {
    if (this.state !== "new") throw new SipArgumentError(`cannot start a ${this.state} SIP signalling`);
    this.state = "started";
    const srf = createSrf();
    this.srf = srf;
    srf.on("connect", (err, hostport, serverVersion) => this.onConnect(err, hostport, serverVersion));
    // Without a listener drachtio-srf's 'error' would be thrown as an uncaught exception.
    srf.on("error", (err) => {
      if (this.state === "started") this.logger.warn({ err: err.message, drachtio: this.where }, "drachtio-server connection error");
    });
    srf.on("close", () => this.onClose());
    srf.on("reconnecting", ({ delay, attempt }) => this.logger.debug({ delay, attempt, drachtio: this.where }, "reconnecting to drachtio-server"));
    srf.invite((req, res) => this.onInvite(req, res));
    srf.use("options", (req, res) => this.onOptions(req, res));
    if (this.config.registration) {
      const registration = new DrachtioRegistration(
        {
          connectedSrf: () => (this.connected ? this.srf : undefined),
          tlsListener: () => (this.address?.tlsPort ? { address: this.address.address, port: this.address.tlsPort } : undefined),
        },
        { ...this.config.registration, outboundProxy: this.config.outboundProxy, userAgent: this.userAgent },
        this.logger,
      );
      this.registration = registration;
      registration.on("state", () => this.announceReadiness());
    }
    const connected = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.connectionWaiter = undefined;
        resolve(false);
      }, this.config.connectWaitMs ?? 5_000);
      this.connectionWaiter = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    const pingInterval = Math.max(5_000, this.config.pingIntervalMs ?? 15_000);
    srf.connect({
      host: this.config.host,
      port: this.config.port,
      secret: this.config.secret,
      enablePing: true,
      pingInterval,
      reconnect: { retryMaxDelay: this.config.reconnectMaxDelayMs ?? 3_000 },
    });
    // A drachtio-server that hangs keeps its socket open. It answers every ping, so nothing heard
    // for two and a half intervals counts as a lost connection, and drachtio-srf reconnects.
    if (onEveryMessage(srf, () => (this.lastHeardAt = Date.now()))) {
      this.pingWatch = setInterval(() => {
        const silentMs = Date.now() - this.lastHeardAt;
        if (!this.connected || silentMs < 2.5 * pingInterval) return;
        this.logger.warn({ drachtio: this.where, silentMs }, "drachtio-server stopped answering pings; dropping the connection");
        dropConnection(srf);
      }, pingInterval / 2);
      this.pingWatch.unref();
    }
    if (!(await connected)) {
      this.logger.warn({ drachtio: this.where }, "drachtio-server not reachable yet; not taking calls until it is");
    }
  }

  async stop(): Promise<void> {
    if (this.state === "stopped" || this.state === "stopping") return;
    const wasConnected = this.state === "started" && this.connected;
    this.state = "stopping";
    // The binding goes first (Expires: 0, a bounded wait), while the connection still carries it.
    await this.registration?.stop();
    for (const call of [...this.calls]) {
      try {
        call.shutdown();
      } catch (err) {
        this.logger.warn({ err }, "error ending a call while stopping");
      }
    }
    // Let the BYEs/CANCELs just handed to drachtio-server leave before the connection closes.
    if (wasConnected) await new Promise((r) => setTimeout(r, 100));
    this.calls.clear();
    this.settleOptions(503);
    if (this.pingWatch) clearInterval(this.pingWatch);
    if (this.srf) closeSrf(this.srf);
    this.state = "stopped";
    if (wasConnected) this.setConnected(false);
    this.announceReadiness();
  }

  placeCall(call: PlaceCallOptions): OutgoingSipCall {
    if (this.state !== "started") throw new SipArgumentError("SIP signalling is not started");
    const c = new DrachtioOutgoingCall(this.context, call, this.config.defaultFromUser ?? "gateway");
    this.calls.add(c);
    return c;
  }

  options(uri: string): Promise<number> {
    if (this.state !== "started") return Promise.reject(new SipArgumentError("SIP signalling is not started"));
    try {
      checkSipUri(uri);
    } catch (err) {
      return Promise.reject(err);
    }
    const srf = this.srf;
    if (!srf || !this.connected) return Promise.resolve(503);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (status: number): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pendingOptions.delete(finish);
        resolve(status);
      };
      // drachtio-server answers 408 itself after Timer F; this only covers a lost connection's silence.
      const timer = setTimeout(() => finish(408), this.config.optionsTimeoutMs ?? 35_000);
      this.pendingOptions.add(finish);
      try {
        const headers = { "User-Agent": this.userAgent, Accept: "application/sdp" };
        srf.request(uri, { method: "OPTIONS", headers, ...(this.config.outboundProxy ? { proxy: this.config.outboundProxy } : {}) }, (err, req) => {
          if (err || !req) return finish(503);
          req.on("response", (res) => {
            if (res.status >= 200) finish(res.status);
          });
        });
      } catch {
        finish(503);
      }
    });
  }

  // ------------------------------------------------------------------------------------------

  private get where(): string {
    return `${this.config.host}:${this.config.port}`;
  }

  private onConnect(err: Error | null, hostport: string | undefined, serverVersion: string | undefined): void {
    if (this.state !== "started") {
      // A connection that completed after stop(): close it again.
      if (this.srf) closeSrf(this.srf);
      return;
    }
    if (err) {
      // drachtio-srf retries a refused secret every 255 ms: one line now, then one every 30 s.
      const now = Date.now();
      if (now - this.refusedLoggedAt >= 30_000) {
        this.logger.error({ err: err.message, drachtio: this.where, refusedSinceLastLine: this.refusedUnlogged }, "drachtio-server refused the connection (check DRACHTIO_SECRET)");
        this.refusedLoggedAt = now;
        this.refusedUnlogged = 0;
      } else {
        this.refusedUnlogged++;
      }
      return;
    }
    this.address = parseHostport(hostport) ?? this.address;
    this.serverVersion = serverVersion;
    this.lastHeardAt = Date.now();
    this.logger.info({ drachtio: this.where, sip: hostport, serverVersion }, "connected to drachtio-server");
    this.setConnected(true);
    this.byeOrphans();
  }

  private onClose(): void {
    if (this.state !== "started" || !this.connected) return;
    const calls = [...this.calls];
    this.calls.clear();
    this.logger.warn(
      { drachtio: this.where, calls: calls.length, serverVersion: this.serverVersion },
      calls.length > 0 ? "drachtio-server connection lost; ending live calls, reconnecting" : "drachtio-server connection lost; reconnecting",
    );
    this.setConnected(false);
    this.settleOptions(503);
    const now = Date.now();
    for (const call of calls) {
      try {
        const orphan = call.connectionLost();
        if (orphan) this.orphans.push({ dialogId: orphan, at: now });
      } catch (err) {
        this.logger.warn({ err }, "error ending a call after the connection loss");
      }
    }
    if (this.orphans.length > MAX_ORPHANS) this.orphans = this.orphans.slice(-MAX_ORPHANS);
  }

  /**
   * A drachtio-server that only lost our connection (it did not restart) still holds the dialogs
   * of the calls we ended: BYE them so the PBX is not left with a silent call. One that restarted
   * knows none of them and says so; that is fine.
   */
  private byeOrphans(): void {
    const srf = this.srf;
    const now = Date.now();
    const orphans = this.orphans.filter((o) => now - o.at < ORPHAN_TTL_MS);
    this.orphans = [];
    if (!srf) return;
    for (const { dialogId } of orphans) {
      try {
        // drachtio-server builds the BYE from its dialog state; the Request-URI here is a placeholder.
        srf.request("sip:placeholder", { method: "BYE", stackDialogId: dialogId, headers: { "User-Agent": this.userAgent } }, (err) => {
          if (err) this.logger.debug({ dialogId, err: err.message }, "dialog left from before the reconnect is gone");
          else this.logger.info({ dialogId }, "BYE sent for a call ended while drachtio-server was unreachable");
        });
      } catch (err) {
        this.logger.debug({ dialogId, err: (err as Error).message }, "BYE for an orphaned dialog not sent");
      }
    }
  }

  private setConnected(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    if (connected) {
      this.connectionWaiter?.();
      this.connectionWaiter = undefined;
      if (this.registration && this.state === "started") {
        // REGISTERs need the connection: the first goes out once it is up. After a reconnect the
        // binding is made again at once; an answer pending when the connection went never comes.
        if (this.registrationStarted) this.registration.refreshNow();
        else this.registration.start();
        this.registrationStarted = true;
      }
    }
    this.announceReadiness();
  }

  private announceReadiness(): void {
    const ready = this.ready;
    if (ready === this.announcedReady) return;
    this.announcedReady = ready;
    this.emit("readiness", ready);
  }

  private settleOptions(status: number): void {
    for (const finish of [...this.pendingOptions]) finish(status);
  }

  private onOptions(req: SrfRequest, res: SrfServerResponse): void {
    // In-dialog OPTIONS of a known dialog never get here (drachtio-srf routes them to the dialog).
    if (/;\s*tag=/i.test(req.get("to") ?? "")) {
      this.respond(res, 481, "Call/Transaction Does Not Exist");
      return;
    }
    this.respond(res, 200, "OK", { Allow: ALLOWED_METHODS, Accept: "application/sdp" });
  }

  private onInvite(req: SrfRequest, res: SrfServerResponse): void {
    if (this.state !== "started") {
      this.respond(res, 503, "Service Unavailable");
      return;
    }
    if (!req.has("contact")) {
      this.respond(res, 400, "Missing Contact");
      return;
    }
    const require = req.get("require");
    if (require && require.trim() !== "") {
      this.respond(res, 420, "Bad Extension", { Unsupported: require });
      return;
    }
    const contentType = (req.get("content-type") ?? "").toLowerCase();
    if (req.body && !contentType.startsWith("application/sdp")) {
      this.respond(res, 415, "Unsupported Media Type", { Accept: "application/sdp" });
      return;
    }
    let replaces: SipReplaces | undefined;
    const replacesText = req.get("replaces");
    if (replacesText !== undefined) {
      try {
        replaces = parseReplaces(replacesText);
      } catch (err) {
        if (!(err instanceof SipHeaderError)) throw err;
        this.respond(res, 400, `Bad ${err.header}`);
        return;
      }
      const refusal = this.replacesRefusal(replaces);
      if (refusal) {
        this.respond(res, refusal.status, refusal.reason);
        return;
      }
    }
    if (this.listenerCount("incoming") === 0) {
      this.respond(res, 480, "Temporarily Unavailable");
      return;
    }
    const call = new DrachtioIncomingCall(this.context, req, res, this.config.incomingAnswerTimeoutMs ?? 180_000, replaces);
    this.calls.add(call);
    try {
      this.emit("incoming", call);
    } catch (err) {
      this.logger.error({ err, sipCallId: call.sipCallId }, "incoming-call listener threw");
      call.reject(500, "Server Internal Error");
    }
  }

  /**
   * RFC 3891 §3: Replaces naming no dialog of ours, or an early one we placed, is 481; a confirmed
   * one when only an early one may be replaced is 486; one already ending is 603.
   */
  private replacesRefusal(r: SipReplaces): { status: number; reason: string } | undefined {
    let info: ReturnType<DrachtioLiveCall["dialogInfo"]>;
    for (const call of this.calls) {
      const i = call.dialogInfo();
      if (i && i.id.callId === r.callId && i.id.localTag === r.toTag && i.id.remoteTag === r.fromTag) info = i;
    }
    if (!info || (info.phase === "early" && info.weAreUac)) return { status: 481, reason: "Call/Transaction Does Not Exist" };
    if (info.phase === "ending") return { status: 603, reason: "Declined" };
    if (info.phase === "confirmed" && r.earlyOnly) return { status: 486, reason: "Busy Here" };
    return undefined;
  }

  private respond(res: SrfServerResponse, status: number, reason: string, headers: Record<string, string> = {}): void {
    try {
      res.send(status, reason, { headers: { "User-Agent": this.userAgent, ...headers } });
    } catch (err) {
      this.logger.debug({ err, status }, "response could not be sent");
    }
  }
}

/** `tcp/127.0.0.1:5080,udp/127.0.0.1:5080,tls/127.0.0.1:5081` → the UDP listener (else the first), and the TLS one. */
function parseHostport(hostport: string | undefined): SipAddress | undefined {
  const entries = (hostport ?? "")
    .split(",")
    .map((e) => /^(udp|tcp|tls|wss?)\/(\[[^\]]+\]|[^:]+):(\d+)$/i.exec(e.trim()))
    .filter((m): m is RegExpExecArray => m !== null);
  const pick = entries.find((m) => m[1]!.toLowerCase() === "udp") ?? entries[0];
  if (!pick) return undefined;
  const tls = entries.find((m) => m[1]!.toLowerCase() === "tls");
  return { address: pick[2]!.replace(/^\[|\]$/g, ""), port: Number(pick[3]), ...(tls ? { tlsPort: Number(tls[3]) } : {}) };
}
