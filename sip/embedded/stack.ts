import net from "node:net";
import sip from "sip";
import { randomToken } from "../random-token.js";
import { SipArgumentError, SipTransportError } from "../errors.js";
import type { SipLogger } from "../logger.js";
import {
  isRequest,
  isValidMessage,
  MAX_FORWARDS,
  newBranch,
  firstRouteUri,
  tagOf,
  toWire,
  transportOfUri,
  type RemoteInfo,
  type SipMessage,
  type SipRequest,
  type SipResponse,
} from "./message.js";
import { checkSipMessage, DEFAULT_SIP_MESSAGE_LIMITS, SIP_LIMIT_SETTINGS, type SipMessageLimits } from "./message-limits.js";
import { SipResolver } from "./resolver.js";
import { SipTransport, type Flow, type FlowLease, type SipProtocol, type SipTlsOptions, type TransportTarget } from "./transport.js";

/** A request we send. Header values are wire (latin1) text unless the library needs an object. */
export interface OutgoingRequest extends SipMessage {
  method: string;
  uri: string;
  headers: {
    via?: sip.Via[];
    from: string;
    to: string | sip.NameAddr;
    "call-id": string;
    cseq: sip.CSeq;
    route?: string;
    [name: string]: unknown;
  };
}

export interface ResponseExtras {
  /** Our To tag (added unless the request already has one). */
  toTag?: string;
  /** A list becomes one header row per value (e.g. a WWW-Authenticate per digest algorithm). */
  headers?: Record<string, string | readonly string[]>;
  /** Body as Unicode text; Content-Type goes in `contentType`. */
  body?: string;
  contentType?: string;
}

export type ResponseCallback = (rs: SipResponse, fromNetwork: boolean) => void;

export interface ClientTransactionHandle {
  /** Drops the transaction (its timers and flow) without waiting for its own timeout. */
  shutdown(): void;
}

export interface SipStackOptions {
  address: string;
  port: number;
  udp: boolean;
  tcp: boolean;
  /** SIP over TLS, on its own port. */
  tls?: SipTlsOptions;
  /**
   * Outbound proxy (RFC 3261 §8.1.2): every request outside a dialog gets it as a pre-loaded
   * Route, so it is sent there; requests in a dialog follow the dialog's route set.
   */
  outboundProxy?: string;
  /** Nameservers for RFC 3263 NAPTR, SRV and address lookups; unset = the system's. */
  dnsServers?: string[];
  /** RFC 5626 CRLF keep-alive interval on held TCP/TLS connections; 0 or unset = none. */
  keepAliveMs?: number;
  /** Host written in Via and Contact; default the bind address. */
  host?: string;
  userAgent: string;
  logger: SipLogger;
  /** Bounds on received messages; unset fields take DEFAULT_SIP_MESSAGE_LIMITS. */
  limits?: Partial<SipMessageLimits>;
}

/** How a request over a bound is answered (RFC 3261 §21.4.1, §21.5.11). */
const REFUSALS: Readonly<Record<keyof SipMessageLimits, { status: number; reason: string }>> = {
  maxMessageBytes: { status: 513, reason: "Message Too Large" },
  maxHeaderBytes: { status: 513, reason: "Header Too Large" },
  maxHeaders: { status: 400, reason: "Too Many Headers" },
};

/** One log line per kind of refusal per interval; the rest are counted into the next line. */
const REFUSAL_LOG_INTERVAL_MS = 1_000;

/**
 * The transaction-and-transport part of the embedded stack: npm `sip`'s parser, serializer and
 * RFC 3261 transaction state machines (timers A–M), over our own sockets and message dispatch.
 * It sends requests toward the next hop (first Route, else Request-URI), fills Via, Max-Forwards
 * and User-Agent, and hands requests that start a transaction to the dialog layer above.
 */
export class SipStack {
  private readonly transport: SipTransport;
  private readonly layer: sip.TransactionLayer;
  /** Responses that really came off the wire, as opposed to the 408/503 the library synthesizes. */
  private readonly fromNetwork = new WeakSet<object>();
  /** Where each received message came from (its connection, for TCP and TLS). */
  private readonly origins = new WeakMap<object, RemoteInfo>();
  private readonly logger: SipLogger;
  private started = false;
  private stopped = false;
  private readonly limits: SipMessageLimits;
  private readonly refusalLog = new Map<string, { at: number; suppressed: number }>();
  private readonly resolver: SipResolver;
  /** Per Call-ID, the tail of its requests still waiting for their next hop (see `inCallOrder`). */
  private readonly hopQueues = new Map<string, Promise<void>>();

  constructor(
    private readonly options: SipStackOptions,
    private readonly onRequest: (rq: SipRequest, remote: RemoteInfo) => void,
    private readonly onStrayResponse: (rs: SipResponse) => void,
  ) {
    this.logger = options.logger;
    this.limits = { ...DEFAULT_SIP_MESSAGE_LIMITS, ...options.limits };
    this.transport = new SipTransport(
      {
        address: options.address,
        port: options.port,
        udp: options.udp,
        tcp: options.tcp,
        tls: options.tls,
        logger: options.logger,
        limits: this.limits,
        keepAliveMs: options.keepAliveMs,
      },
      {
        message: (raw, remote) => this.receive(raw, remote),
        unframeable: (remote, reason, head) => this.unframeable(remote, reason, head),
      },
    );
    this.layer = sip.makeTransactionLayer({ "max-forwards": MAX_FORWARDS }, undefined);
    this.resolver = new SipResolver({
      servers: options.dnsServers,
      family: net.isIPv6(options.address) ? 6 : 4,
      supports: (protocol) => this.transport.supports(protocol),
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.transport.start();
    this.started = true;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      this.layer.destroy();
    } catch (err) {
      this.logger.warn({ err }, "destroying SIP transactions failed");
    }
    await this.transport.stop();
  }

  get port(): number {
    return this.transport.port;
  }

  /** The TLS port (0 when TLS is off). */
  get tlsPort(): number {
    return this.transport.tlsPort;
  }

  /** The port our Via and Contact name for a protocol. */
  portFor(protocol: SipProtocol): number {
    return protocol === "TLS" ? this.transport.tlsPort : this.transport.port;
  }

  get host(): string {
    return this.options.host ?? this.options.address;
  }

  get userAgent(): string {
    return this.options.userAgent;
  }

  supports(protocol: SipProtocol): boolean {
    return this.transport.supports(protocol);
  }

  /**
   * Our Contact for a dialog carried over `protocol`; `secure` (a `sips:` Request-URI or
   * From/To) makes it a `sips:` URI, as RFC 3261 §8.1.1.8 requires.
   */
  contact(user: string, protocol: SipProtocol, secure = false): string {
    const port = this.portFor(protocol);
    if (secure) return `<sips:${user}@${this.host}:${port}>`;
    return `<sip:${user}@${this.host}:${port}${protocol === "UDP" ? "" : `;transport=${protocol.toLowerCase()}`}>`;
  }

  /** The transport a request to `uri` will use (its transport param or sips:, else UDP when enabled). */
  protocolFor(uri: string): SipProtocol {
    const parsed = sip.parseUri(uri);
    return (parsed && transportOfUri(parsed)) ?? this.defaultProtocol();
  }

  private defaultProtocol(): SipProtocol {
    return this.transport.supports("UDP") ? "UDP" : this.transport.supports("TCP") ? "TCP" : "TLS";
  }

  // ------------------------------------------------------------------------------------------
  // Receiving

  private receive(raw: string, remote: RemoteInfo): void {
    const checked = checkSipMessage(raw, this.limits);
    if (!checked.ok) {
      if (checked.kind === "limit") this.refuse(remote, checked.limit, checked.reason, checked.head);
      else this.dropMalformed(remote, raw, checked.reason);
      return;
    }
    // Keep-alive CRLFs are not worth a log line.
    if (checked.text === "") return;
    let m: SipMessage | undefined;
    try {
      m = sip.parse(checked.text);
    } catch (err) {
      this.logger.warn({ err, remote }, "unparseable SIP message dropped");
      return;
    }
    if (!isValidMessage(m)) {
      this.dropMalformed(remote, checked.text, "not a SIP request or response");
      return;
    }
    this.origins.set(m, remote);
    try {
      if (isRequest(m)) this.receiveRequest(m, remote);
      else this.receiveResponse(m, remote);
    } catch (err) {
      this.logger.error({ err, remote }, "error while handling a SIP message");
    }
  }

  private dropMalformed(remote: RemoteInfo, text: string, reason: string): void {
    this.throttled("malformed", (suppressed) =>
      this.logger.warn({ remote, reason, firstLine: text.trimStart().split("\r\n", 1)[0]?.slice(0, 120), suppressed }, "malformed SIP message dropped"),
    );
  }

  /** A TCP stream we cannot follow; a request over the size bound is answered before it closes. */
  private unframeable(remote: RemoteInfo, reason: string, head: string | undefined): void {
    if (head !== undefined) {
      this.refuse(remote, "maxMessageBytes", `declared ${reason}`, head);
      return;
    }
    const limit = /too large/.test(reason) ? SIP_LIMIT_SETTINGS.maxMessageBytes : undefined;
    this.throttled(`tcp:${limit ?? "framing"}`, (suppressed) =>
      this.logger.warn({ remote, reason, limit, max: limit && this.limits.maxMessageBytes, suppressed }, "unframeable SIP over TCP; connection closed"),
    );
  }

  /**
   * A message over one of the bounds: logged with the setting that bounds it and, when it is a
   * request we can read the headers of, answered statelessly (no transaction is kept for it).
   */
  private refuse(remote: RemoteInfo, limit: keyof SipMessageLimits, reason: string, head: string | undefined): void {
    const setting = SIP_LIMIT_SETTINGS[limit];
    const refusal = REFUSALS[limit];
    let rq: SipRequest | undefined;
    if (head !== undefined) {
      let parsed: SipMessage | undefined;
      try {
        parsed = sip.parse(`${head}\r\n\r\n`);
      } catch {
        parsed = undefined;
      }
      if (isValidMessage(parsed) && isRequest(parsed) && parsed.method !== "ACK") rq = parsed;
    }
    this.throttled(`limit:${limit}`, (suppressed) =>
      this.logger.warn(
        { remote, limit: setting, max: this.limits[limit], reason, method: rq?.method, status: rq ? refusal.status : undefined, suppressed },
        "SIP message over a limit refused",
      ),
    );
    if (!rq) return;
    const via = rq.headers.via[0] as sip.Via;
    via.params.received = remote.address;
    if (Object.prototype.hasOwnProperty.call(via.params, "rport")) via.params.rport = String(remote.port);
    const connection = this.replyConnection(remote, via);
    try {
      connection.send(this.buildResponse(rq, refusal.status, refusal.reason, { toTag: randomToken() }));
    } finally {
      connection.release();
    }
  }

  private throttled(key: string, log: (suppressed: number) => void): void {
    const now = Date.now();
    const entry = this.refusalLog.get(key);
    if (entry && now - entry.at < REFUSAL_LOG_INTERVAL_MS) {
      entry.suppressed++;
      return;
    }
    this.refusalLog.set(key, { at: now, suppressed: 0 });
    log(entry?.suppressed ?? 0);
  }

  private receiveRequest(rq: SipRequest, remote: RemoteInfo): void {
    const via = rq.headers.via[0] as sip.Via;
    via.params.received = remote.address;
    if (Object.prototype.hasOwnProperty.call(via.params, "rport")) via.params.rport = String(remote.port);

    if (rq.method === "ACK") {
      // An ACK for a non-2xx belongs to its INVITE transaction; one for a 2xx (or one that wrongly
      // reuses the INVITE branch) is the dialog layer's. The dialog layer ignores what it does not know.
      this.layer.getServer(rq)?.message(rq, remote);
      this.deliver(rq, remote, undefined);
      return;
    }
    const existing = this.layer.getServer(rq);
    if (existing) {
      existing.message(rq, remote); // retransmission: the transaction repeats its last response
      return;
    }
    const txn = this.layer.createServerTransaction(rq, this.replyConnection(remote, via));
    if (rq.headers.cseq.method.toUpperCase() !== rq.method.toUpperCase()) {
      txn.send(this.buildResponse(rq, 400, "CSeq Method Mismatch", { toTag: randomToken() }));
      return;
    }
    this.deliver(rq, remote, txn);
  }

  private deliver(rq: SipRequest, remote: RemoteInfo, txn: sip.ServerTransaction | undefined): void {
    try {
      this.onRequest(rq, remote);
    } catch (err) {
      this.logger.error({ err, method: rq.method, callId: rq.headers["call-id"] }, "SIP request handler failed");
      if (txn) txn.send(this.buildResponse(rq, 500, "Server Internal Error", { toTag: randomToken() }));
    }
  }

  private receiveResponse(rs: SipResponse, remote: RemoteInfo): void {
    this.fromNetwork.add(rs);
    const txn = this.layer.getClient(rs);
    if (txn) txn.message(rs, remote);
    else this.onStrayResponse(rs);
  }

  private replyConnection(remote: RemoteInfo, via: sip.Via): sip.Connection {
    const fallback: TransportTarget = {
      protocol: remote.protocol,
      address: via.params.received ?? via.host,
      port: via.port ?? (remote.protocol === "TLS" ? 5061 : 5060),
      serverName: via.host,
    };
    let flow: Flow | undefined;
    const getFlow = (): Flow => (flow ??= this.transport.reply(remote, fallback));
    return {
      protocol: remote.protocol,
      send: (m) => {
        try {
          getFlow().send(sip.stringify(m));
        } catch (err) {
          this.logger.warn({ err, remote }, "cannot send SIP response");
        }
      },
      release: () => flow?.release(),
    };
  }

  /**
   * Holds the TCP or TLS connection a received message came on for as long as what it set up (a
   * registration, a dialog) lives, keeping it alive with RFC 5626 pings; `onLost` when it closes.
   * Undefined over UDP.
   */
  leaseFlow(received: SipMessage, onLost: () => void): FlowLease | undefined {
    const remote = this.origins.get(received);
    return remote && !this.stopped ? this.transport.lease(remote, onLost) : undefined;
  }

  // ------------------------------------------------------------------------------------------
  // Responding

  /** A response to `rq` (Via, From, To, Call-ID, CSeq copied; To tag added). */
  buildResponse(rq: SipRequest, status: number, reason: string, extras: ResponseExtras = {}): SipResponse {
    const rs = sip.makeResponse(rq, status, reason) as SipResponse;
    if (extras.toTag && !tagOf(rq.headers.to) && status > 100) {
      rs.headers.to = { ...rq.headers.to, params: { ...rq.headers.to.params, tag: extras.toTag } };
    }
    rs.headers.server = toWire(this.options.userAgent);
    for (const [k, v] of Object.entries(extras.headers ?? {})) rs.headers[k] = typeof v === "string" ? v : headerRows(k, v);
    if (extras.body !== undefined && extras.body !== "") {
      rs.headers["content-type"] = extras.contentType ?? "application/sdp";
      rs.content = toWire(extras.body);
    }
    return rs;
  }

  /** Sends a response through its server transaction (which also retransmits it as RFC 3261 says). */
  sendResponse(rs: SipResponse): void {
    const txn = this.layer.getServer(rs);
    if (!txn) {
      this.logger.debug({ status: rs.status, callId: rs.headers["call-id"] }, "no server transaction for response; not sent");
      return;
    }
    try {
      txn.send(rs);
    } catch (err) {
      this.logger.warn({ err }, "sending SIP response failed");
    }
  }

  respond(rq: SipRequest, status: number, reason: string, extras: ResponseExtras = {}): SipResponse {
    const rs = this.buildResponse(rq, status, reason, extras);
    this.sendResponse(rs);
    return rs;
  }

  // ------------------------------------------------------------------------------------------
  // Sending

  /**
   * Sends a request in a new client transaction. Every response (provisional, final, and for
   * INVITE the retransmitted 2xx) goes to `onResponse`; a transport failure or timeout arrives as
   * a synthesized 503/408 with `fromNetwork` false.
   */
  sendRequest(rq: OutgoingRequest, onResponse: ResponseCallback): ClientTransactionHandle {
    let txn: sip.ClientTransaction | undefined;
    let cancelled = false;
    const safeCallback = (rs: SipMessage): void => {
      try {
        onResponse(rs as SipResponse, this.fromNetwork.has(rs));
      } catch (err) {
        this.logger.error({ err, method: rq.method }, "SIP response handler failed");
      }
    };
    const fail = (status: number, reason: string): void => {
      setImmediate(() => safeCallback(sip.makeResponse(rq, status, reason)));
    };
    this.prepare(rq);
    const below: sip.Via[] = Array.isArray(rq.headers.via) ? rq.headers.via : [];
    const attempt = (targets: TransportTarget[], index: number): void => {
      const target = targets[index]!;
      if (rq.method !== "CANCEL") {
        // Via first on the wire: the serializer writes headers in insertion order. A new branch
        // per target: each attempt is a new client transaction (RFC 3263 §4.3).
        const { via: _old, ...rest } = rq.headers;
        rq.headers = { via: [{ version: "2.0", protocol: target.protocol, host: this.host, port: this.portFor(target.protocol), params: {} }, ...below], ...rest };
      }
      let flow: Flow;
      // This attempt's own transaction: a late error of an abandoned target must not end the next.
      const own: { txn?: sip.ClientTransaction } = {};
      try {
        flow = this.transport.open(target, (reason) => own.txn?.message(sip.makeResponse(rq, 503, reason ?? "Transport Error")));
      } catch (err) {
        this.logger.warn({ err, target }, "cannot open SIP flow");
        if (index + 1 < targets.length) return attempt(targets, index + 1);
        return fail(503, "Transport Error");
      }
      let heard = false;
      own.txn = this.layer.createClientTransaction(this.requestConnection(flow, rq), rq, (rs) => {
        const fromNetwork = this.fromNetwork.has(rs);
        heard ||= fromNetwork;
        // A target that never answered (refused, unreachable, timed out) hands over to the next.
        if (!fromNetwork && !heard && !cancelled && (rs.status === 503 || rs.status === 408) && index + 1 < targets.length) {
          this.logger.info({ target, next: targets[index + 1], method: rq.method, status: rs.status }, "SIP target did not answer; trying the next");
          return attempt(targets, index + 1);
        }
        safeCallback(rs);
      });
      txn = own.txn;
    };
    this.inCallOrder(rq, (targets) => {
      if (cancelled) return;
      if (this.stopped) return fail(503, "Stack Stopped");
      attempt(targets, 0);
    }).catch((err: unknown) => {
      this.logger.warn({ err, uri: rq.uri }, "cannot reach SIP next hop");
      fail(err instanceof UnreachableError ? err.status : 503, err instanceof UnreachableError ? err.reason : "Service Unavailable");
    });
    return {
      shutdown: () => {
        cancelled = true;
        txn?.shutdown();
      },
    };
  }

  /** Sends an ACK for a 2xx: end to end, outside any transaction (RFC 3261 §13.2.2.4). */
  sendAck(ack: OutgoingRequest): void {
    this.prepare(ack);
    this.inCallOrder(ack, (targets) => {
      if (this.stopped) return;
      const target = targets[0]!;
      const { via: _previous, ...rest } = ack.headers;
      ack.headers = { via: [{ version: "2.0", protocol: target.protocol, host: this.host, port: this.portFor(target.protocol), params: { branch: newBranch() } }], ...rest };
      const flow = this.transport.open(target);
      try {
        this.requestConnection(flow, ack).send(ack);
      } finally {
        flow.release();
      }
    }).catch((err: unknown) => this.logger.warn({ err, uri: ack.uri }, "cannot send ACK"));
  }

  /**
   * Resolves `rq`'s next hop and runs `send` with it, after the requests sent earlier on the same
   * Call-ID. Lookups of a name finish in any order, and an ACK overtaken by the next re-INVITE
   * makes the peer refuse that re-INVITE (500, RFC 3261 §14.2): within a call, the wire order
   * must be the order the dialog layer sent in.
   */
  private inCallOrder(rq: OutgoingRequest, send: (targets: TransportTarget[]) => void): Promise<void> {
    const key = String(rq.headers["call-id"] ?? "");
    const run = (this.hopQueues.get(key) ?? Promise.resolve()).then(async () => send(await this.resolveNextHop(rq)));
    const tail = run.catch(() => {});
    this.hopQueues.set(key, tail);
    void tail.then(() => {
      if (this.hopQueues.get(key) === tail) this.hopQueues.delete(key);
    });
    return run;
  }

  private prepare(rq: OutgoingRequest): void {
    const proxy = this.options.outboundProxy;
    const outOfDialog = typeof rq.headers.to === "string" ? !/;\s*tag=/i.test(rq.headers.to) : tagOf(rq.headers.to) === undefined;
    // Set on the request itself, so its CANCEL and the ACK of a failure carry the same Route.
    if (proxy !== undefined && outOfDialog && rq.method !== "ACK" && rq.method !== "CANCEL" && rq.headers.route === undefined) {
      rq.headers.route = `<${proxy}>`;
    }
    if (rq.headers["max-forwards"] === undefined) rq.headers["max-forwards"] = MAX_FORWARDS;
    if (rq.headers["user-agent"] === undefined) rq.headers["user-agent"] = toWire(this.options.userAgent);
  }

  private requestConnection(flow: Flow, original: OutgoingRequest): sip.Connection {
    return {
      protocol: flow.protocol,
      send: (m) => {
        if (m.method) {
          const via = m.headers.via?.[0];
          if (via) {
            via.host = this.host;
            via.port = this.portFor(flow.protocol);
            via.protocol = flow.protocol;
            if (flow.protocol === "UDP" && !("rport" in via.params)) via.params.rport = null;
          }
          // The library's ACK for a non-2xx lacks the INVITE's Route set, which RFC 3261
          // §17.1.1.3 requires.
          if (m.method === "ACK" && m.headers.route === undefined && original.headers.route !== undefined) m.headers.route = original.headers.route;
          if (m.headers["max-forwards"] === undefined) m.headers["max-forwards"] = MAX_FORWARDS;
        }
        try {
          flow.send(sip.stringify(m));
        } catch (err) {
          this.logger.warn({ err }, "SIP send failed");
        }
      },
      release: () => flow.release(),
    };
  }

  /** Where a request goes: its first Route, else its Request-URI, resolved per RFC 3263. */
  private async resolveNextHop(rq: OutgoingRequest): Promise<TransportTarget[]> {
    const hopText = typeof rq.headers.route === "string" && rq.headers.route !== "" ? firstRouteUri(rq.headers.route) : rq.uri;
    const hop = hopText ? sip.parseUri(hopText) : undefined;
    if (!hop) throw new UnreachableError(416, "Unsupported URI", `cannot parse next hop ${hopText}`);
    const protocol = transportOfUri(hop);
    if (protocol && !this.transport.supports(protocol)) throw new UnreachableError(503, `${protocol} Not Enabled`, `${protocol} is not enabled`);
    const port = hop.port && hop.port > 0 ? hop.port : undefined;
    // A `sips:` URI without a transport parameter still lets NAPTR pick among SIPS services.
    const named = hop.params.transport === undefined || hop.params.transport === null ? undefined : protocol;
    const targets = await this.resolver.targets(hop.host, port, named, hop.schema === "sips").catch((err: unknown) => {
      throw new UnreachableError(503, "DNS Failure", `cannot resolve ${hop.host}`, err);
    });
    const usable = targets.filter((t) => this.transport.supports(t.protocol));
    if (usable.length === 0) throw new UnreachableError(503, "DNS Failure", `no usable target for ${hop.host}`);
    return usable;
  }
}

/**
 * npm `sip` writes a string value verbatim after `Name: `, so rows after the first carry their own
 * line break and name. RFC 3261 §7.3.1 forbids folding WWW-Authenticate values into one row.
 */
function headerRows(name: string, values: readonly string[]): string {
  if (values.length === 0 || values.some((v) => /[\r\n\0]/.test(v))) throw new SipArgumentError(`invalid values for header ${name}`);
  return values.join(`\r\n${name}: `);
}

class UnreachableError extends SipTransportError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    cause?: unknown,
  ) {
    super(message, { cause });
  }
}

