import { EventEmitter } from "node:events";
import { randomToken } from "../random-token.js";
import { SipArgumentError, SipHeaderError } from "../errors.js";
import { parseOptionTags, unsupportedTags } from "../option-tags.js";
import { parseReplaces } from "../refer.js";
import { decideAsUas, type UasTimerDecision } from "../session-timer.js";
import { silentLogger, type SipLogger } from "../logger.js";
import type {
  OutgoingSipCall,
  PlaceCallOptions,
  SipAddress,
  SipDialogCall,
  SipReplaces,
  SipSignaling,
  SipSignalingEvents,
  SipTransportName,
} from "../signaling.js";
import { DEFAULT_TIMERS, type CallContext, type DialogOwner, type LiveCall, type SipTimers } from "./call-context.js";
import { dialogKey, dialogKeyOfRequest } from "./dialog.js";
import { EmbeddedIncomingCall } from "./incoming-call.js";
import {
  ALLOWED_METHODS,
  checkSipUri,
  contactUri,
  fromWire,
  headerText,
  SUPPORTED,
  tagOf,
  type RemoteInfo,
  type SipRequest,
  type SipResponse,
} from "./message.js";
import type { SipMessageLimits } from "./message-limits.js";
import { EmbeddedOutgoingCall } from "./outgoing-call.js";
import { SipRegistration, type SipRegistrationOptions } from "./registration.js";
import { SipStack, type OutgoingRequest } from "./stack.js";
import type { SipTlsOptions } from "./transport.js";
import { timerRequestOf } from "./timer-headers.js";

export interface EmbeddedSipOptions {
  /** Address the SIP sockets bind to. */
  address: string;
  /** UDP and TCP port; 0 picks a free one (see `port` after start()). */
  port: number;
  /** Default udp and tcp; `tls` needs `tls`. */
  transports?: SipTransportName[];
  /** Keep a registration at this registrar; the stack is ready only while it is in place. */
  registration?: SipRegistrationOptions;
  /** Nameservers (`ip` or `ip:port`) for SRV and address lookups of SIP hosts; unset = the system's. */
  dnsServers?: string[];
  /**
   * RFC 5626 CRLF keep-alives, in seconds, on TCP/TLS connections a registration or a call holds
   * (an unanswered one closes the connection once the peer has shown it answers). Default 0: none.
   */
  keepAliveS?: number;
  /** Outbound proxy URI for every request outside a dialog (`;lr` is added when missing). */
  outboundProxy?: string;
  /** Certificate, key and trust for SIP over TLS. */
  tls?: Omit<SipTlsOptions, "port"> & { port?: number };
  /**
   * Host written in Via, Contact and From. Default the bind address. Set a hostname or the
   * public address when the PBX must reach us through something else than the bind address.
   */
  host?: string;
  /** User-Agent / Server header. */
  userAgent?: string;
  /** From user part when a call does not give one. Default "gateway". */
  defaultFromUser?: string;
  logger?: SipLogger;
  timers?: Partial<SipTimers>;
  /** Bounds on received messages (size, header count and size); unset fields take the defaults. */
  limits?: Partial<SipMessageLimits>;
}

/**
 * SipSignaling on npm `sip` with our own dialog layer, in process: no sidecar to run. Routes
 * requests to the dialogs they belong to, answers OPTIONS, turns new INVITEs into
 * IncomingSipCall events and answers what it cannot place (481, 405) itself.
 */
export class EmbeddedSipSignaling extends EventEmitter<SipSignalingEvents> implements SipSignaling {
  private readonly stack: SipStack;
  private readonly logger: SipLogger;
  private readonly timers: SipTimers;
  private readonly dialogs = new Map<string, DialogOwner>();
  private readonly calls = new Set<LiveCall>();
  /** Incoming INVITEs not yet answered finally, by Call-ID + top Via branch (for CANCEL). */
  private readonly pendingInvites = new Map<string, EmbeddedIncomingCall>();
  private readonly context: CallContext;
  private state: "new" | "started" | "stopping" | "stopped" = "new";
  private registration: SipRegistration | undefined;

  constructor(private readonly config: EmbeddedSipOptions) {
    super();
    const transports = config.transports ?? ["udp", "tcp"];
    this.logger = config.logger ?? silentLogger;
    this.timers = { ...DEFAULT_TIMERS, ...config.timers };
    this.stack = new SipStack(
      {
        address: config.address,
        port: config.port,
        udp: transports.includes("udp"),
        tcp: transports.includes("tcp"),
        tls: transports.includes("tls") ? tlsListen(config) : undefined,
        outboundProxy: config.outboundProxy === undefined ? undefined : looseRoute(config.outboundProxy),
        dnsServers: config.dnsServers,
        keepAliveMs: (config.keepAliveS ?? 0) * 1000,
        host: config.host,
        userAgent: config.userAgent ?? "meta-sip-gateway",
        logger: this.logger,
        limits: config.limits,
      },
      (rq, remote) => this.onRequest(rq, remote),
      (rs) => this.onStrayResponse(rs),
    );
    this.context = {
      stack: this.stack,
      logger: this.logger,
      timers: this.timers,
      registerDialog: (key, owner) => this.dialogs.set(key, owner),
      unregisterDialog: (key, owner) => {
        if (this.dialogs.get(key) === owner) this.dialogs.delete(key);
      },
      callStarted: (call) => this.calls.add(call),
      callEnded: (call) => this.calls.delete(call),
    };
  }

  /** The bound SIP port (after start()). */
  get port(): number {
    return this.stack.port;
  }

  /** The bound SIP-over-TLS port (after start()); 0 without TLS. */
  get tlsPort(): number {
    return this.stack.tlsPort;
  }

  get ready(): boolean {
    return this.state === "started" && (this.registration === undefined || this.registration.state === "registered");
  }

  /** The registration's state, when one is configured. */
  get registrationState(): string | undefined {
    return this.registration?.state;
  }

  get localAddress(): SipAddress | undefined {
    if (this.state !== "started") return undefined;
    return this.stack.tlsPort > 0 ? { address: this.config.address, port: this.stack.port, tlsPort: this.stack.tlsPort } : { address: this.config.address, port: this.stack.port };
  }

  /** Calls not yet over, counting a cancelled INVITE still waiting for its final response. */
  get activeCalls(): number {
    return this.calls.size;
  }

  async start(): Promise<void> {
    if (this.state !== "new") throw new SipArgumentError(`cannot start a ${this.state} SIP stack`);
    await this.stack.start();
    this.state = "started";
    this.logger.info({ address: this.config.address, port: this.stack.port, host: this.stack.host }, "SIP stack listening");
    if (this.config.registration) {
      const registration = new SipRegistration(this.stack, this.config.registration, this.logger);
      this.registration = registration;
      registration.on("state", (state) => {
        if (this.state === "started" && state !== "stopped") this.emit("readiness", state === "registered");
      });
      registration.start();
      return;
    }
    this.emit("readiness", true);
  }

  async stop(): Promise<void> {
    if (this.state === "stopped" || this.state === "stopping") return;
    const wasStarted = this.state === "started";
    this.state = "stopping";
    if (wasStarted) this.emit("readiness", false);
    await this.registration?.stop();
    for (const call of [...this.calls]) {
      try {
        call.shutdown();
      } catch (err) {
        this.logger.warn({ err }, "error ending a call while stopping");
      }
    }
    // Let the BYEs/CANCELs just queued leave before the sockets close.
    if (wasStarted) await new Promise((r) => setTimeout(r, 50));
    await this.stack.stop();
    this.calls.clear();
    this.dialogs.clear();
    this.pendingInvites.clear();
    this.state = "stopped";
  }

  placeCall(call: PlaceCallOptions): OutgoingSipCall {
    if (this.state !== "started") throw new SipArgumentError("SIP stack is not started");
    return new EmbeddedOutgoingCall(this.context, call, this.config.defaultFromUser ?? "gateway");
  }

  options(uri: string): Promise<number> {
    if (this.state !== "started") return Promise.reject(new SipArgumentError("SIP stack is not started"));
    let target: ReturnType<typeof checkSipUri>;
    try {
      target = checkSipUri(uri, { tls: this.stack.supports("TLS") });
    } catch (err) {
      return Promise.reject(err);
    }
    const host = this.stack.host;
    const rq: OutgoingRequest = {
      method: "OPTIONS",
      uri,
      headers: {
        from: `<sip:${this.config.defaultFromUser ?? "gateway"}@${host}>;tag=${randomToken()}`,
        to: `<sip:${target.user ? `${target.user}@` : ""}${target.host}${target.port ? `:${target.port}` : ""}>`,
        "call-id": `${randomToken(12)}@${host}`,
        cseq: { seq: 1, method: "OPTIONS" },
        contact: this.stack.contact(this.config.defaultFromUser ?? "gateway", this.stack.protocolFor(uri), target.schema === "sips"),
        accept: "application/sdp",
      },
    };
    return new Promise((resolve) => {
      this.stack.sendRequest(rq, (rs) => {
        if (rs.status >= 200) resolve(rs.status);
      });
    });
  }

  // ------------------------------------------------------------------------------------------

  private onRequest(rq: SipRequest, remote: RemoteInfo): void {
    if (this.state !== "started") {
      if (rq.method !== "ACK") this.stack.respond(rq, 503, "Service Unavailable", { toTag: randomToken() });
      return;
    }
    const key = dialogKeyOfRequest(rq);
    if (key) {
      const owner = this.dialogs.get(key);
      if (owner) owner.handleRequest(rq, remote);
      else if (rq.method !== "ACK") this.stack.respond(rq, 481, "Call/Transaction Does Not Exist");
      return;
    }
    if (tagOf(rq.headers.to)) {
      // A To tag but no From tag: not a dialog we could have made.
      if (rq.method !== "ACK") this.stack.respond(rq, 481, "Call/Transaction Does Not Exist");
      return;
    }
    switch (rq.method) {
      case "ACK":
        return; // an ACK for a non-2xx, already absorbed by its transaction
      case "INVITE":
        this.onInvite(rq, remote);
        return;
      case "CANCEL": {
        const call = this.pendingInvites.get(pendingKey(rq));
        if (call) call.handleCancel(rq);
        else this.stack.respond(rq, 481, "Call/Transaction Does Not Exist", { toTag: randomToken() });
        return;
      }
      case "OPTIONS":
        this.stack.respond(rq, 200, "OK", {
          toTag: randomToken(),
          headers: { allow: ALLOWED_METHODS, accept: "application/sdp", supported: SUPPORTED },
        });
        return;
      case "BYE":
      case "INFO":
      case "UPDATE":
      case "PRACK":
      case "NOTIFY":
        this.stack.respond(rq, 481, "Call/Transaction Does Not Exist", { toTag: randomToken() });
        return;
      case "REFER":
        // A REFER outside a call would make us call someone on a stranger's word.
        this.stack.respond(rq, 403, "Out-of-dialog REFER Not Accepted", { toTag: randomToken() });
        return;
      default:
        this.stack.respond(rq, 405, "Method Not Allowed", { toTag: randomToken(), headers: { allow: ALLOWED_METHODS } });
    }
  }

  private onInvite(rq: SipRequest, remote: RemoteInfo): void {
    const tag = randomToken();
    if (!contactUri(rq)) {
      this.stack.respond(rq, 400, "Missing Contact", { toTag: tag });
      return;
    }
    if (!tagOf(rq.headers.from)) {
      this.stack.respond(rq, 400, "Missing From Tag", { toTag: tag });
      return;
    }
    const require = headerText(rq, "require");
    const unsupported = unsupportedTags(require);
    if (unsupported.length > 0) {
      this.stack.respond(rq, 420, "Bad Extension", { toTag: tag, headers: { unsupported: unsupported.join(", ") } });
      return;
    }
    const contentType = (headerText(rq, "content-type") ?? "").toLowerCase();
    if (rq.content && !contentType.startsWith("application/sdp")) {
      this.stack.respond(rq, 415, "Unsupported Media Type", { toTag: tag, headers: { accept: "application/sdp" } });
      return;
    }
    let timer: UasTimerDecision;
    let minSeS = this.timers.minSeS;
    let replaces: SipReplaces | undefined;
    try {
      const timerRq = timerRequestOf(rq);
      minSeS = Math.max(minSeS, timerRq.minSeS ?? 0);
      timer = decideAsUas(timerRq, this.timers.minSeS, undefined);
      const replacesText = headerText(rq, "replaces");
      replaces = replacesText === undefined ? undefined : parseReplaces(fromWire(replacesText));
    } catch (err) {
      if (!(err instanceof SipHeaderError)) throw err;
      this.stack.respond(rq, 400, `Bad ${err.header}`, { toTag: tag });
      return;
    }
    if (timer.kind === "too-small") {
      this.stack.respond(rq, 422, "Session Interval Too Small", { toTag: tag, headers: { "Min-SE": String(timer.minSeS) } });
      return;
    }
    if (replaces) {
      const refusal = this.replacesRefusal(replaces);
      if (refusal) {
        this.stack.respond(rq, refusal.status, refusal.reason, { toTag: tag });
        return;
      }
    }
    if (this.listenerCount("incoming") === 0) {
      this.stack.respond(rq, 480, "Temporarily Unavailable", { toTag: tag });
      return;
    }
    const key = pendingKey(rq);
    const call = new EmbeddedIncomingCall(this.context, rq, remote, () => this.pendingInvites.delete(key), {
      timer,
      minSeS,
      reliableProvisionals: parseOptionTags(require).has("100rel"),
      replaces,
    });
    this.pendingInvites.set(key, call);
    // Once answered, only a CANCEL can still name the INVITE transaction; keep the entry until
    // the call ends so a late CANCEL still gets its 200.
    try {
      this.emit("incoming", call);
    } catch (err) {
      this.logger.error({ err, sipCallId: call.sipCallId }, "incoming-call listener threw");
      call.reject(500, "Server Internal Error");
    }
  }

  findDialog(callId: string, localTag: string, remoteTag: string): SipDialogCall | undefined {
    return this.dialogs.get(dialogKey(callId, localTag, remoteTag))?.dialogInfo().call;
  }

  /**
   * RFC 3891 §3: Replaces naming no dialog of ours, or an early one we placed, is 481; a confirmed
   * one when only an early one may be replaced is 486; one already ending is 603.
   */
  private replacesRefusal(r: SipReplaces): { status: number; reason: string } | undefined {
    const info = this.dialogs.get(dialogKey(r.callId, r.toTag, r.fromTag))?.dialogInfo();
    if (!info || (info.phase === "early" && info.weAreUac)) return { status: 481, reason: "Call/Transaction Does Not Exist" };
    if (info.phase === "ending") return { status: 603, reason: "Declined" };
    if (info.phase === "confirmed" && r.earlyOnly) return { status: 486, reason: "Busy Here" };
    return undefined;
  }

  private onStrayResponse(rs: SipResponse): void {
    const local = tagOf(rs.headers.from);
    const remote = tagOf(rs.headers.to);
    if (!local || !remote) return;
    this.dialogs.get(dialogKey(rs.headers["call-id"], local, remote))?.handleStrayResponse(rs);
  }
}

function pendingKey(rq: SipRequest): string {
  return `${rq.headers["call-id"]}\n${rq.headers.via[0]?.params.branch ?? ""}`;
}

/** The proxy as a loose router (RFC 3261 §16.12.1.1): our Request-URI stays the target. */
function looseRoute(uri: string): string {
  const parsed = checkSipUri(uri, { tls: true });
  return "lr" in parsed.params ? uri : `${uri};lr`;
}

/** TLS listens next to the UDP/TCP port (5060 → 5061, RFC 3261 §26.2.2), or on a free one with port 0. */
function tlsListen(config: EmbeddedSipOptions): SipTlsOptions {
  if (!config.tls) throw new SipArgumentError("the tls transport needs a certificate and key");
  const transports = config.transports ?? [];
  const alone = !transports.includes("udp") && !transports.includes("tcp");
  return { ...config.tls, port: config.tls.port ?? (config.port === 0 ? 0 : alone ? config.port : config.port + 1) };
}
