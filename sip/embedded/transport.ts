import dgram from "node:dgram";
import net from "node:net";
import tls from "node:tls";
import { SipTransportError } from "../errors.js";
import type { SipLogger } from "../logger.js";
import type { RemoteInfo } from "./message.js";
import type { SipMessageLimits } from "./message-limits.js";
import { StreamFramer, StreamFramingError } from "./stream-framer.js";
import { bindUdpSocket } from "../udp-bind.js";

export type SipProtocol = "UDP" | "TCP" | "TLS";

/** One way to send to one peer (a UDP destination, or a TCP or TLS connection). */
export interface Flow {
  readonly protocol: SipProtocol;
  send(text: string): void;
  /** The transaction using this flow is done with it. */
  release(): void;
}

export interface TransportTarget {
  protocol: SipProtocol;
  address: string;
  port: number;
  /** TLS: the name the peer's certificate must carry (the URI's host); default the address. */
  serverName?: string;
}

/** SIP over TLS (RFC 3261 §26): our certificate, and how the peer's is checked. */
export interface SipTlsOptions {
  /** PEM certificate chain and key we present, as server and as client. */
  cert: string | Buffer;
  key: string | Buffer;
  /** PEM CA certificates the peer's certificate must chain to; undefined = the system's trust. */
  ca?: string | Buffer;
  /** Verify the peer's certificate and name (off only for testing against self-signed peers). */
  verify: boolean;
  /** TLS listening port; 0 picks a free one. */
  port: number;
}

/** A hold on a TCP or TLS connection for as long as something (a registration, a dialog) lives on it. */
export interface FlowLease {
  release(): void;
}

/** Why a flow failed, for the transaction's synthesized response. */
export type FlowErrorListener = (reason?: string) => void;

export interface SipTransportOptions {
  address: string;
  /** 0 picks a free port (the same number for UDP and TCP). */
  port: number;
  udp: boolean;
  tcp: boolean;
  tls?: SipTlsOptions;
  logger: SipLogger;
  /** An unused TCP connection is closed after this long. Default 120 s. */
  tcpIdleMs?: number;
  /**
   * RFC 5626 keep-alives on TCP and TLS connections a registration or a dialog holds: a CRLFCRLF
   * ping this often (80–100 %, jittered); 0 or unset = none. Received pings are always answered.
   */
  keepAliveMs?: number;
  /** Bounds what a TCP stream may make us buffer for one message. */
  limits: SipMessageLimits;
}

/** Where received text goes. Neither function may throw; the transport guards them anyway. */
export interface TransportSink {
  message(raw: string, remote: RemoteInfo): void;
  /**
   * A TCP stream that cannot be framed (it is closed right after). `head` is the header block of
   * a request whose declared body is over the bound, so it can still be answered.
   */
  unframeable(remote: RemoteInfo, reason: string, head: string | undefined): void;
}

/** How long a refused TCP peer gets to read our last response before the socket is destroyed. */
const CLOSE_GRACE_MS = 1_000;
/** RFC 5626 §4.4.1: a pong later than this means the flow has failed. */
const PONG_TIMEOUT_MS = 10_000;

/**
 * Where a connection's keep-alive stands: not running (nothing holds the connection), waiting to
 * send the next ping, or waiting for the pong of the one sent.
 */
type KeepAliveState = { name: "off" } | { name: "waiting"; timer: NodeJS.Timeout } | { name: "awaiting-pong"; timer: NodeJS.Timeout };

/** When the next ping goes: 80–100 % of the interval (RFC 5626 §4.4.1), so flows do not ping in step. */
export function nextPingDelayMs(intervalMs: number, random: () => number = Math.random): number {
  return Math.round(intervalMs * (0.8 + 0.2 * random()));
}

/** A missing pong is waited for this long: 10 s, or the interval when that is shorter. */
export function pongTimeoutMs(intervalMs: number): number {
  return Math.min(PONG_TIMEOUT_MS, intervalMs);
}

class TcpConnection {
  refs = 0;
  readonly errorListeners = new Set<FlowErrorListener>();
  /** Why the connection failed, when it did (a TLS handshake refused, a reset). */
  private failure: string | undefined;
  private readonly framer: StreamFramer;
  private closing = false;
  private leases = 0;
  private keepAlive: KeepAliveState = { name: "off" };
  /**
   * Whether the peer has answered a ping. A peer that never has may not do RFC 5626 (pings are
   * harmless to it, RFC 3261 §7.5): only a peer that answers is judged by a missing pong.
   */
  private peerAnswersPings = false;

  constructor(
    readonly key: string,
    readonly protocol: "TCP" | "TLS",
    readonly socket: net.Socket,
    readonly remote: RemoteInfo,
    sink: TransportSink,
    private readonly logger: SipLogger,
    idleMs: number,
    limits: SipMessageLimits,
    private readonly keepAliveMs: number,
    onGone: (c: TcpConnection) => void,
  ) {
    // One message may be as large as the bound, its header block included.
    this.framer = new StreamFramer(
      limits.maxMessageBytes,
      limits.maxMessageBytes,
      (signal) => (signal === "ping" ? this.answerPing() : this.pongReceived()),
      () => this.keepAlive.name === "awaiting-pong",
    );
    socket.setEncoding("latin1");
    socket.setNoDelay(true);
    socket.setTimeout(idleMs);
    socket.on("data", (chunk: string) => {
      if (this.closing) return;
      let messages: string[];
      let failure: StreamFramingError | undefined;
      try {
        messages = this.framer.push(chunk);
      } catch (err) {
        failure = err instanceof StreamFramingError ? err : new StreamFramingError(String(err));
        messages = failure.framed;
      }
      for (const m of messages) guard(logger, remote, () => sink.message(m, this.remote));
      if (failure) {
        const reason = failure.message;
        const head = failure.head;
        guard(logger, remote, () => sink.unframeable(this.remote, reason, head));
        this.close();
      }
    });
    socket.on("timeout", () => {
      if (this.refs === 0) socket.destroy();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (protocol === "TLS" && isTlsFailure(err)) {
        this.failure = `TLS ${err.code ?? "handshake"} failed`;
        logger.warn({ remote, code: err.code, reason: err.message }, "SIP TLS connection refused: the peer's certificate did not verify");
      } else logger.debug({ err, remote }, `SIP ${protocol} connection error`);
    });
    socket.on("close", () => {
      this.setKeepAlive({ name: "off" });
      onGone(this);
      // Pending transactions learn at once instead of waiting for their timers.
      for (const l of [...this.errorListeners]) l(this.failure);
      this.errorListeners.clear();
    });
  }

  /** Lets a response written just before leave, then drops the connection whatever the peer does. */
  private close(): void {
    this.closing = true;
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    timer.unref();
    this.socket.once("close", () => clearTimeout(timer));
    this.socket.end();
  }

  /** Holds the connection open (never idle) and keeps it alive until released; `onLost` when it closes. */
  lease(onLost: () => void): FlowLease {
    const flow = this.flow(() => onLost());
    this.leases++;
    if (this.leases === 1 && this.keepAliveMs > 0) this.schedulePing();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        flow.release();
        this.leases--;
        if (this.leases === 0) this.setKeepAlive({ name: "off" });
      },
    };
  }

  private setKeepAlive(next: KeepAliveState): void {
    if (this.keepAlive.name !== "off") clearTimeout(this.keepAlive.timer);
    this.keepAlive = next;
  }

  private schedulePing(): void {
    const timer = setTimeout(() => this.ping(), nextPingDelayMs(this.keepAliveMs));
    timer.unref();
    this.setKeepAlive({ name: "waiting", timer });
  }

  private ping(): void {
    if (this.socket.destroyed || this.closing) return;
    this.socket.write("\r\n\r\n", "latin1");
    const timer = setTimeout(() => this.pongMissed(), pongTimeoutMs(this.keepAliveMs));
    timer.unref();
    this.setKeepAlive({ name: "awaiting-pong", timer });
  }

  private pongReceived(): void {
    if (this.keepAlive.name !== "awaiting-pong") return;
    if (!this.peerAnswersPings) {
      this.peerAnswersPings = true;
      this.logger.info({ remote: this.remote }, "SIP flow answers keep-alives (RFC 5626); an unanswered one closes it");
    }
    this.schedulePing();
  }

  private pongMissed(): void {
    if (!this.peerAnswersPings) {
      this.schedulePing();
      return;
    }
    this.failure = "keep-alive unanswered";
    this.logger.warn({ remote: this.remote, protocol: this.protocol }, "SIP flow did not answer a keep-alive; closed");
    this.setKeepAlive({ name: "off" });
    this.socket.destroy();
  }

  /** RFC 5626 §3.5.1: a CRLFCRLF ping is answered with one CRLF. */
  private answerPing(): void {
    if (!this.socket.destroyed && !this.closing) this.socket.write("\r\n", "latin1");
  }

  flow(onError?: FlowErrorListener): Flow {
    this.refs++;
    if (onError) this.errorListeners.add(onError);
    let released = false;
    return {
      protocol: this.protocol,
      send: (text) => {
        if (this.socket.destroyed) {
          // Asynchronously, as a socket error would be: the transaction may be mid-transition.
          if (onError) setImmediate(() => onError(this.failure));
          return;
        }
        this.socket.write(text, "latin1");
      },
      release: () => {
        if (released) return;
        released = true;
        this.refs--;
        if (onError) this.errorListeners.delete(onError);
      },
    };
  }
}

/**
 * UDP and TCP sockets of the SIP stack. Unlike npm `sip`'s own transports, every socket here has
 * an error listener (a refused bind or failed send is logged or reported, never thrown from the
 * event loop), and stop() closes TCP connections as well as the listeners.
 */
export class SipTransport {
  private udp: dgram.Socket | undefined;
  private tcpServer: net.Server | undefined;
  private tlsServer: tls.Server | undefined;
  private boundTlsPort = 0;
  private readonly connections = new Map<string, TcpConnection>();
  private boundPort = 0;
  private stopped = false;

  constructor(
    private readonly options: SipTransportOptions,
    private readonly sink: TransportSink,
  ) {
    if (!options.udp && !options.tcp && !options.tls) throw new SipTransportError("at least one of UDP, TCP and TLS must be enabled");
  }

  get port(): number {
    return this.boundPort;
  }

  /** The TLS listening port (0 when TLS is off). */
  get tlsPort(): number {
    return this.boundTlsPort;
  }

  get address(): string {
    return this.options.address;
  }

  supports(protocol: SipProtocol): boolean {
    return protocol === "UDP" ? this.options.udp : protocol === "TCP" ? this.options.tcp : this.options.tls !== undefined;
  }

  async start(): Promise<void> {
    const attempts = this.options.port === 0 ? 10 : 1;
    let lastError: unknown;
    for (let i = 0; i < attempts; i++) {
      try {
        await this.bindAll(this.options.port);
        return;
      } catch (err) {
        lastError = err;
        await this.closeListeners();
      }
    }
    const e = lastError as NodeJS.ErrnoException | undefined;
    throw new SipTransportError(`cannot bind SIP on ${this.options.address}:${this.options.port}: ${e?.code ?? e?.message ?? e}`, { cause: lastError });
  }

  private async bindAll(port: number): Promise<void> {
    let chosen = port;
    if (this.options.udp) {
      this.udp = await bindUdpSocket(this.options.address, chosen, (msg, rinfo) => {
        const remote: RemoteInfo = { protocol: "UDP", address: rinfo.address, port: rinfo.port };
        guard(this.options.logger, remote, () => this.sink.message(msg.toString("latin1"), remote));
      });
      this.udp.on("error", (err) => this.options.logger.warn({ err }, "SIP UDP socket error"));
      chosen = this.udp.address().port;
    }
    if (this.options.tcp) {
      this.tcpServer = await listenTcp(this.options.address, chosen, (socket) => this.adopt(socket));
      this.tcpServer.on("error", (err) => this.options.logger.warn({ err }, "SIP TCP server error"));
      chosen = (this.tcpServer.address() as net.AddressInfo).port;
    }
    const tlsOptions = this.options.tls;
    if (tlsOptions) {
      this.tlsServer = await listen(
        tls.createServer({ cert: tlsOptions.cert, key: tlsOptions.key, ca: tlsOptions.ca, requestCert: false }, (socket) => this.adopt(socket, "TLS")),
        this.options.address,
        tlsOptions.port,
      );
      // A failed handshake from a caller is its problem; it is logged, never thrown.
      this.tlsServer.on("tlsClientError", (err, socket) => this.options.logger.debug({ err, remote: socket.remoteAddress }, "SIP TLS handshake from a peer failed"));
      this.tlsServer.on("error", (err) => this.options.logger.warn({ err }, "SIP TLS server error"));
      this.boundTlsPort = (this.tlsServer.address() as net.AddressInfo).port;
    }
    this.boundPort = this.options.udp || this.options.tcp ? chosen : this.boundTlsPort;
  }

  private adopt(socket: net.Socket, protocol: "TCP" | "TLS" = "TCP"): void {
    if (this.stopped || !socket.remoteAddress || !socket.remotePort) {
      socket.destroy();
      return;
    }
    this.track({ protocol, address: socket.remoteAddress, port: socket.remotePort }, socket);
  }

  private track(remote: RemoteInfo & { protocol: "TCP" | "TLS" }, socket: net.Socket, serverName?: string): TcpConnection {
    const key = connectionKey(remote.protocol, remote.address, remote.port, serverName);
    const o = this.options;
    const conn = new TcpConnection(key, remote.protocol, socket, remote, this.sink, o.logger, o.tcpIdleMs ?? 120_000, o.limits, o.keepAliveMs ?? 0, (c) => {
      if (this.connections.get(c.key) === c) this.connections.delete(c.key);
    });
    this.connections.set(key, conn);
    return conn;
  }

  /**
   * A flow toward a peer, reusing a TCP connection to the same address and port, or a TLS one to
   * the same address, port and certificate name.
   */
  open(target: TransportTarget, onError?: FlowErrorListener): Flow {
    if (this.stopped) throw new SipTransportError("SIP transport stopped");
    if (target.protocol === "UDP") {
      const udp = this.udp;
      if (!udp) throw new SipTransportError("UDP is not enabled");
      return {
        protocol: "UDP",
        send: (text) => {
          const bytes = Buffer.from(text, "latin1");
          udp.send(bytes, target.port, target.address, (err) => {
            if (err) {
              this.options.logger.warn({ err, to: target }, "SIP UDP send failed");
              onError?.();
            }
          });
        },
        release: () => {},
      };
    }
    if (target.protocol === "TLS") return this.openTls(target, onError);
    if (!this.tcpServer) throw new SipTransportError("TCP is not enabled");
    const key = connectionKey("TCP", target.address, target.port);
    const existing = this.connections.get(key);
    if (existing && !existing.socket.destroyed) return existing.flow(onError);
    const socket = net.connect({ host: target.address, port: target.port, localAddress: this.options.address });
    return this.track({ protocol: "TCP", address: target.address, port: target.port }, socket).flow(onError);
  }

  private openTls(target: TransportTarget, onError?: FlowErrorListener): Flow {
    const o = this.options.tls;
    if (!o || !this.tlsServer) throw new SipTransportError("TLS is not enabled");
    const serverName = target.serverName ?? target.address;
    const key = connectionKey("TLS", target.address, target.port, serverName);
    const existing = this.connections.get(key);
    if (existing && !existing.socket.destroyed) return existing.flow(onError);
    const socket = tls.connect({
      socket: net.connect({ host: target.address, port: target.port, localAddress: this.options.address }),
      // SNI carries names only (RFC 6066 §3); an address is still checked against the IP SANs.
      servername: net.isIP(serverName) ? undefined : serverName,
      cert: o.cert,
      key: o.key,
      ca: o.ca,
      rejectUnauthorized: o.verify,
      // The certificate must name the host of the URI we were given, not the address it resolved to
      // (RFC 5922 §7.2).
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(serverName, cert),
    });
    this.options.logger.debug({ remote: { address: target.address, port: target.port }, serverName }, "SIP TLS connection opened");
    return this.track({ protocol: "TLS", address: target.address, port: target.port }, socket, serverName).flow(onError);
  }

  /**
   * The flow to answer a request on: the same UDP source, or the TCP connection it came on; if
   * that connection is gone, a new one to the Via's sent-by (RFC 3261 §18.2.2).
   */
  reply(remote: RemoteInfo, viaFallback: TransportTarget): Flow {
    if (remote.protocol !== "UDP") {
      const conn = this.connections.get(connectionKey(remote.protocol, remote.address, remote.port));
      if (conn && !conn.socket.destroyed) return conn.flow();
      return this.open(viaFallback);
    }
    return this.open(remote);
  }

  /**
   * Holds the TCP or TLS connection a message came on (see `RemoteInfo`) while a registration or
   * a dialog lives on it; undefined for UDP or a connection already gone.
   */
  lease(remote: RemoteInfo, onLost: () => void): FlowLease | undefined {
    if (remote.protocol === "UDP") return undefined;
    for (const c of this.connections.values()) {
      if (c.protocol === remote.protocol && c.remote.address === remote.address && c.remote.port === remote.port && !c.socket.destroyed) return c.lease(onLost);
    }
    return undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const c of this.connections.values()) c.socket.destroy();
    this.connections.clear();
    await this.closeListeners();
  }

  private async closeListeners(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcpServer;
    const tlsServer = this.tlsServer;
    this.udp = undefined;
    this.tcpServer = undefined;
    this.tlsServer = undefined;
    await Promise.all([
      udp && new Promise<void>((r) => {
        try {
          udp.close(() => r());
        } catch {
          r();
        }
      }),
      tcp && new Promise<void>((r) => tcp.close(() => r())),
      tlsServer && new Promise<void>((r) => tlsServer.close(() => r())),
    ]);
  }
}

/**
 * Connections by protocol and peer; a TLS connection we opened also by the name its certificate
 * was checked against, so a connection verified for one name is never reused for another.
 */
function connectionKey(protocol: "TCP" | "TLS", address: string, port: number, serverName?: string): string {
  return serverName === undefined ? `${protocol}:${address}:${port}` : `${protocol}:${address}:${port}:${serverName}`;
}

/** A refused certificate or name, as opposed to a connection that merely broke. */
function isTlsFailure(err: NodeJS.ErrnoException): boolean {
  return /CERT|SELF_SIGNED|ALTNAME|UNABLE_TO|VERIFY|HANDSHAKE|SSL|TLS/i.test(`${err.code ?? ""} ${err.message}`);
}

function listen<T extends net.Server>(server: T, address: string, port: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.close();
      reject(err);
    };
    server.once("error", onError);
    server.listen(port, address, () => {
      server.off("error", onError);
      resolve(server);
    });
  });
}

function listenTcp(address: string, port: number, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  return listen(net.createServer(onConnection), address, port);
}

/** Nothing a peer sends may throw out of a socket handler: that would reach uncaughtException. */
function guard(logger: SipLogger, remote: RemoteInfo, work: () => void): void {
  try {
    work();
  } catch (err) {
    logger.error({ err, remote }, "error while handling received SIP data");
  }
}
