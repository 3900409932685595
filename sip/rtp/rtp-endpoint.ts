import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type dgram from "node:dgram";
import type { SipLogger } from "../logger.js";
import { silentLogger } from "../logger.js";
import type { BoundPortPair, PortAllocator } from "./port-allocator.js";
import { ReceptionStats } from "./reception-stats.js";
import { ntpMiddle32, parseRtcp, serializeRtcp, toNtp, type RtcpPacket, type ReportBlock } from "./rtcp-packet.js";
import { parseRtp, serializeRtp, type RtpPacket } from "./rtp-packet.js";
import type { SrtpTransform } from "../srtp/srtp-transform.js";

export interface SocketAddress {
  address: string;
  port: number;
}

export interface RtpRemote {
  address: string;
  port: number;
  /** Default port + 1. */
  rtcpAddress?: string;
  rtcpPort?: number;
}

export interface RtpEndpointOptions {
  allocator: PortAllocator;
  /** Clock rate of the payload, for jitter and SR timestamps. Default 8000. */
  clockRate?: number;
  /** Mean RTCP report interval; each is randomized to 0.5–1.5× (RFC 3550 §6.3.5). Default 5000. */
  rtcpIntervalMs?: number;
  /** A silent latched source is replaced by a new one after this long. Default 1000. */
  relatchAfterMs?: number;
  /** SDES CNAME. Default a random one. */
  cname?: string;
  logger?: SipLogger;
}

export interface RtpSendOptions {
  payloadType: number;
  payload: Buffer;
  /** Media clock of the caller (any origin); the endpoint adds its random per-stream offset. */
  timestamp: number;
  marker?: boolean;
}

export interface RtpEndpointStats {
  localAddress: string;
  localRtpPort: number;
  localRtcpPort: number;
  ssrc: number;
  /** Where the SDP said to send. */
  remote: SocketAddress | undefined;
  /** Where the PBX's RTP really comes from (we send there once known). */
  latched: SocketAddress | undefined;
  remoteSsrc: number | undefined;
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  packetsLost: number;
  /** Loss fraction (0–1) over the last RTCP interval we reported that expected packets. */
  fractionLost: number;
  jitterMs: number;
  rtcpSent: number;
  rtcpReceived: number;
  /**
   * What the PBX last reported about our stream; `expected` is how many of our packets its report
   * covers (from its extended highest sequence number), when that can be worked out.
   */
  remoteReport: { fractionLost: number; cumulativeLost: number; jitterMs: number; expected: number | undefined } | undefined;
  /** Round-trip time from the PBX's last report, when it carried LSR/DLSR. */
  roundTripMs: number | undefined;
  malformed: number;
  /** Packets from a source other than the latched one, dropped. */
  foreignDropped: number;
  /** Packets we could not send because no remote is known yet. */
  unsentNoRemote: number;
}

export interface RtpEndpointEvents {
  rtp: [packet: RtpPacket, from: SocketAddress];
  rtcp: [packets: RtcpPacket[], from: SocketAddress];
  /** Our destination moved to the address the PBX really sends from. */
  latched: [source: SocketAddress];
}

/**
 * One call's RTP/RTCP socket pair toward the PBX. Sends with our SSRC and sequence numbers,
 * receives with symmetric-RTP latching (we send where the PBX's packets come from, which behind
 * NAT or a media proxy differs from its SDP), and runs RTCP sender/receiver reports.
 */
export class RtpEndpoint extends EventEmitter<RtpEndpointEvents> {
  readonly ssrc: number;
  private sequence: number;
  private readonly timestampOffset: number;
  private readonly clockRate: number;
  private readonly rtcpIntervalMs: number;
  private readonly relatchAfterMs: number;
  private readonly cname: string;
  private readonly logger: SipLogger;
  private remote: SocketAddress | undefined;
  private remoteRtcp: SocketAddress | undefined;
  private latched: SocketAddress | undefined;
  private latchedRtcp: SocketAddress | undefined;
  private lastFromLatchedMs = 0;
  private remoteSsrc: number | undefined;
  private reception: ReceptionStats;
  private rtcpTimer: NodeJS.Timeout | undefined;
  private closed: Promise<void> | undefined;
  private lastSent: { timestamp: number; atMs: number } | undefined;
  private readonly counters = {
    packetsSent: 0,
    bytesSent: 0,
    payloadBytesSent: 0,
    packetsReceived: 0,
    bytesReceived: 0,
    rtcpSent: 0,
    rtcpReceived: 0,
    malformed: 0,
    foreignDropped: 0,
    unsentNoRemote: 0,
  };
  private remoteReport: RtpEndpointStats["remoteReport"];
  private roundTripMs: number | undefined;
  private sentSinceLastReport = false;
  /** Our first RTP sequence number, to tell from a report block how many packets it covers. */
  private firstSequenceSent: number | undefined;
  /** SRTP/SRTCP keys of the stream (SDES), when it is encrypted. */
  private srtp: SrtpTransform | undefined;

  private constructor(
    private readonly ports: BoundPortPair,
    options: RtpEndpointOptions,
  ) {
    super();
    const rnd = randomBytes(10);
    this.ssrc = rnd.readUInt32BE(0);
    this.sequence = rnd.readUInt16BE(4);
    this.timestampOffset = rnd.readUInt32BE(6);
    this.clockRate = options.clockRate ?? 8000;
    this.rtcpIntervalMs = options.rtcpIntervalMs ?? 5000;
    this.relatchAfterMs = options.relatchAfterMs ?? 1000;
    this.cname = options.cname ?? `gw-${randomBytes(6).toString("hex")}`;
    this.logger = options.logger ?? silentLogger;
    this.reception = new ReceptionStats(this.clockRate);
    ports.rtp.on("message", (msg, rinfo) => this.onRtp(msg, rinfo));
    ports.rtcp.on("message", (msg, rinfo) => this.onRtcp(msg, rinfo));
    const onSocketError = (err: Error): void => this.logger.warn({ err, port: ports.rtpPort }, "RTP socket error");
    ports.rtp.on("error", onSocketError);
    ports.rtcp.on("error", onSocketError);
    this.scheduleRtcp();
  }

  /** Binds a port pair from the allocator and starts RTCP. */
  static async open(options: RtpEndpointOptions): Promise<RtpEndpoint> {
    const ports = await options.allocator.allocate();
    return new RtpEndpoint(ports, options);
  }

  get localAddress(): string {
    return this.ports.address;
  }
  get localRtpPort(): number {
    return this.ports.rtpPort;
  }
  get localRtcpPort(): number {
    return this.ports.rtcpPort;
  }

  /**
   * Where to send according to the SDP. A new remote (re-INVITE moved the media) also forgets
   * the latched source so the next packets latch afresh.
   */
  setRemote(remote: RtpRemote): void {
    const rtp = { address: remote.address, port: remote.port };
    const rtcp = { address: remote.rtcpAddress ?? remote.address, port: remote.rtcpPort ?? remote.port + 1 };
    if (this.remote && sameAddress(this.remote, rtp)) {
      this.remoteRtcp = rtcp;
      return;
    }
    this.remote = rtp;
    this.remoteRtcp = rtcp;
    this.latched = undefined;
    this.latchedRtcp = undefined;
  }

  /**
   * Encrypts and authenticates the stream from now on (SDES keys agreed in SDP), with new keys on
   * a re-INVITE that changed them, or back to plain RTP with undefined.
   */
  setSrtp(transform: SrtpTransform | undefined): void {
    this.srtp = transform;
  }

  get encrypted(): boolean {
    return this.srtp !== undefined;
  }

  /** Sends one RTP packet; false when dropped (closed, or no remote known yet). */
  send(o: RtpSendOptions): boolean {
    if (this.closed) return false;
    const to = this.latched ?? this.remote;
    if (!to || isUnspecified(to.address)) {
      this.counters.unsentNoRemote++;
      return false;
    }
    this.sequence = (this.sequence + 1) & 0xffff;
    const timestamp = (o.timestamp + this.timestampOffset) >>> 0;
    const plain = serializeRtp({
      payloadType: o.payloadType,
      sequenceNumber: this.sequence,
      timestamp,
      ssrc: this.ssrc,
      marker: o.marker ?? false,
      payload: o.payload,
    });
    const bytes = this.srtp ? this.srtp.protectRtp(plain) : plain;
    if (!sendDatagram(this.ports.rtp, bytes, to, this.logger)) return false;
    this.firstSequenceSent ??= this.sequence;
    this.counters.packetsSent++;
    this.counters.bytesSent += bytes.length;
    this.counters.payloadBytesSent += o.payload.length;
    this.lastSent = { timestamp, atMs: performance.now() };
    this.sentSinceLastReport = true;
    return true;
  }

  stats(): RtpEndpointStats {
    return {
      localAddress: this.ports.address,
      localRtpPort: this.ports.rtpPort,
      localRtcpPort: this.ports.rtcpPort,
      ssrc: this.ssrc,
      remote: this.remote && { ...this.remote },
      latched: this.latched && { ...this.latched },
      remoteSsrc: this.remoteSsrc,
      packetsSent: this.counters.packetsSent,
      bytesSent: this.counters.bytesSent,
      packetsReceived: this.counters.packetsReceived,
      bytesReceived: this.counters.bytesReceived,
      packetsLost: Math.max(0, this.reception.cumulativeLost),
      fractionLost: this.reception.fractionLost,
      jitterMs: this.reception.jitterMs,
      rtcpSent: this.counters.rtcpSent,
      rtcpReceived: this.counters.rtcpReceived,
      remoteReport: this.remoteReport && { ...this.remoteReport },
      roundTripMs: this.roundTripMs,
      malformed: this.counters.malformed,
      foreignDropped: this.counters.foreignDropped,
      unsentNoRemote: this.counters.unsentNoRemote,
    };
  }

  /** Sends an RTCP BYE, closes both sockets and frees the ports; idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    if (this.rtcpTimer) clearTimeout(this.rtcpTimer);
    this.rtcpTimer = undefined;
    const bye = this.buildReport();
    bye.push({ type: "bye", ssrcs: [this.ssrc], reason: undefined });
    this.closed = new Promise<void>((resolve) => {
      const done = (): void => {
        this.removeAllListeners();
        void this.ports.release().then(resolve);
      };
      const to = this.rtcpDestination();
      if (!to) return done();
      try {
        this.ports.rtcp.send(this.rtcpWire(bye), to.port, to.address, () => done());
      } catch {
        done();
      }
    });
    return this.closed;
  }

  private onRtp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    let packet: RtpPacket;
    try {
      // A packet that does not authenticate is dropped before it can latch or count as media.
      packet = parseRtp(this.srtp ? this.srtp.unprotectRtp(msg) : msg);
    } catch {
      this.counters.malformed++;
      return;
    }
    const from = { address: rinfo.address, port: rinfo.port };
    const now = performance.now();
    // Port 0 is no source anyone can be answered at (a forged or replayed packet): its media is
    // used, but it never becomes where we send.
    if (from.port !== 0 && (!this.latched || !sameAddress(this.latched, from))) {
      if (this.latched && now - this.lastFromLatchedMs < this.relatchAfterMs) {
        this.counters.foreignDropped++;
        return;
      }
      this.latched = from;
      this.logger.debug({ source: from, port: this.ports.rtpPort }, "RTP latched");
      this.emit("latched", { ...from });
    }
    this.lastFromLatchedMs = now;
    if (this.remoteSsrc !== packet.ssrc) {
      // A new SSRC is a new stream (e.g. the PBX re-anchored media): restart its statistics.
      this.remoteSsrc = packet.ssrc;
      this.reception = new ReceptionStats(this.clockRate);
    }
    this.reception.onPacket(packet.sequenceNumber, packet.timestamp, now);
    this.counters.packetsReceived++;
    this.counters.bytesReceived += msg.length;
    this.emit("rtp", packet, from);
  }

  private onRtcp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(this.srtp ? this.srtp.unprotectRtcp(msg) : msg);
    } catch {
      this.counters.malformed++;
      return;
    }
    const from = { address: rinfo.address, port: rinfo.port };
    if (from.port !== 0) this.latchedRtcp = from;
    this.counters.rtcpReceived++;
    const now = performance.now();
    for (const p of packets) {
      if (p.type === "sr") this.reception.onSenderReport(ntpMiddle32(p.ntpSeconds, p.ntpFraction), now);
      if (p.type === "sr" || p.type === "rr") {
        const mine = p.reports.find((r) => r.ssrc === this.ssrc);
        if (mine) this.onReportAboutUs(mine);
      }
    }
    this.emit("rtcp", packets, from);
  }

  private onReportAboutUs(r: ReportBlock): void {
    this.remoteReport = {
      fractionLost: r.fractionLost / 256,
      cumulativeLost: r.cumulativeLost,
      jitterMs: (r.jitter * 1000) / this.clockRate,
      expected: this.reportCoverage(r.highestSequence),
    };
    if (r.lastSenderReport !== 0) {
      // RTT = now − LSR − DLSR, all in 1/65536 s of the NTP clock (RFC 3550 §6.4.1).
      const ntp = toNtp(Date.now());
      const nowMiddle = ntpMiddle32(ntp.seconds, ntp.fraction);
      const rtt = (nowMiddle - r.lastSenderReport - r.delaySinceLastSenderReport) >>> 0;
      if (rtt < 65536 * 10) this.roundTripMs = (rtt / 65536) * 1000;
    }
  }

  /**
   * Packets of ours a report block covers: its extended highest sequence number (the receiver
   * counts cycles from its first packet) minus our first. Undefined when that makes no sense (a
   * report about an older stream, or before we sent anything).
   */
  private reportCoverage(highestSequence: number): number | undefined {
    if (this.firstSequenceSent === undefined) return undefined;
    const expected = highestSequence - this.firstSequenceSent + 1;
    return expected > 0 && expected <= this.counters.packetsSent ? expected : undefined;
  }

  private rtcpDestination(): SocketAddress | undefined {
    if (this.latchedRtcp) return this.latchedRtcp;
    // Until RTCP arrives, the latched RTP source's next port is a better guess than the SDP.
    if (this.latched) return { address: this.latched.address, port: this.latched.port + 1 };
    if (this.remoteRtcp && !isUnspecified(this.remoteRtcp.address)) return this.remoteRtcp;
    return undefined;
  }

  private scheduleRtcp(): void {
    const delay = this.rtcpIntervalMs * (0.5 + Math.random());
    this.rtcpTimer = setTimeout(() => {
      this.rtcpTimer = undefined;
      if (this.closed) return;
      this.sendReport();
      this.scheduleRtcp();
    }, delay);
    this.rtcpTimer.unref();
  }

  private buildReport(): RtcpPacket[] {
    const nowMs = performance.now();
    const reports: ReportBlock[] = [];
    if (this.reception.hasReceived && this.remoteSsrc !== undefined) {
      reports.push(this.reception.reportBlock(this.remoteSsrc, nowMs));
    }
    const packets: RtcpPacket[] = [];
    if (this.sentSinceLastReport && this.lastSent) {
      const ntp = toNtp(Date.now());
      const elapsedTicks = Math.round(((nowMs - this.lastSent.atMs) * this.clockRate) / 1000);
      packets.push({
        type: "sr",
        ssrc: this.ssrc,
        ntpSeconds: ntp.seconds,
        ntpFraction: ntp.fraction,
        rtpTimestamp: (this.lastSent.timestamp + elapsedTicks) >>> 0,
        packetCount: this.counters.packetsSent,
        octetCount: this.counters.payloadBytesSent,
        reports,
      });
    } else {
      packets.push({ type: "rr", ssrc: this.ssrc, reports });
    }
    this.sentSinceLastReport = false;
    packets.push({ type: "sdes", chunks: [{ ssrc: this.ssrc, cname: this.cname }] });
    return packets;
  }

  /**
   * Sends RTCP feedback (RFC 4585: PLI, FIR, TMMBR, REMB) after our report in one compound packet.
   * False when there is nowhere to send it yet.
   */
  sendFeedback(feedback: RtcpPacket[]): boolean {
    const to = this.rtcpDestination();
    if (!to || this.closed) return false;
    if (!sendDatagram(this.ports.rtcp, this.rtcpWire([...this.buildReport(), ...feedback]), to, this.logger)) return false;
    this.counters.rtcpSent++;
    return true;
  }

  private rtcpWire(packets: RtcpPacket[]): Buffer {
    const plain = serializeRtcp(packets);
    return this.srtp ? this.srtp.protectRtcp(plain) : plain;
  }

  private sendReport(): void {
    const to = this.rtcpDestination();
    if (!to) return;
    if (!sendDatagram(this.ports.rtcp, this.rtcpWire(this.buildReport()), to, this.logger)) return;
    this.counters.rtcpSent++;
  }
}

/**
 * One datagram out; false when it could not be handed to the socket. dgram throws synchronously for
 * a port or address it cannot use, and a media send must never throw into the caller's packet path.
 */
function sendDatagram(socket: dgram.Socket, bytes: Buffer, to: SocketAddress, logger: SipLogger): boolean {
  if (!(to.port > 0 && to.port < 65536)) return false;
  try {
    // One completion callback for every datagram (not a closure per packet); a failure here is
    // logged at debug level, as a socket "error" event would be at warn level for every packet.
    socket.send(bytes, to.port, to.address, sendCompletion(logger));
    return true;
  } catch (err) {
    logger.debug({ err, to }, "RTP/RTCP send refused");
    return false;
  }
}

const completions = new WeakMap<SipLogger, (err: Error | null) => void>();

function sendCompletion(logger: SipLogger): (err: Error | null) => void {
  let done = completions.get(logger);
  if (!done) {
    done = (err) => {
      if (err) logger.debug({ err }, "RTP/RTCP send failed");
    };
    completions.set(logger, done);
  }
  return done;
}

function sameAddress(a: SocketAddress, b: SocketAddress): boolean {
  return a.address === b.address && a.port === b.port;
}

function isUnspecified(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}
