import dgram from "node:dgram";

/**
 * The phone side of RTP for the fuzz suite's SIP peers: a PCMU tone sender and a receiver that can
 * tell the far end's tone from silence or comfort noise. Written here rather than taken from
 * transcode/ so a codec mistake in the gateway cannot cancel out against the same mistake here.
 */

const BIAS = 0x84;

export function muLawEncode(sample: number): number {
  const sign = sample < 0 ? 0x80 : 0;
  const magnitude = Math.min(Math.abs(sample), 32635) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (magnitude & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (magnitude >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

export function muLawDecode(byte: number): number {
  const u = ~byte & 0xff;
  const magnitude = ((((u & 0x0f) << 3) + BIAS) << ((u & 0x70) >> 4)) - BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

/** Root mean square of a PCMU payload, in linear 16-bit units. */
export function pcmuRms(payload: Buffer): number {
  if (payload.length === 0) return 0;
  let sum = 0;
  for (const b of payload) {
    const s = muLawDecode(b);
    sum += s * s;
  }
  return Math.sqrt(sum / payload.length);
}

/** A UDP socket on an even port with its odd neighbour bound too (RTCP), on 127.0.0.1. */
export async function bindPortPair(): Promise<{ rtp: dgram.Socket; rtcp: dgram.Socket; port: number }> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const rtp = dgram.createSocket("udp4");
    const port = await new Promise<number>((resolve, reject) => {
      rtp.once("error", reject);
      rtp.bind(0, "127.0.0.1", () => resolve(rtp.address().port));
    });
    if (port % 2 === 1) {
      rtp.close();
      continue;
    }
    const rtcp = dgram.createSocket("udp4");
    const ok = await new Promise<boolean>((resolve) => {
      rtcp.once("error", () => resolve(false));
      rtcp.bind(port + 1, "127.0.0.1", () => resolve(true));
    });
    if (ok) return { rtp, rtcp, port };
    rtp.close();
    rtcp.close();
  }
  throw new Error("no free even/odd UDP port pair on 127.0.0.1");
}

export interface StreamStats {
  packets: number;
  lastAt: number;
  /** Arrival times (performance.now) of the last packets, oldest first. */
  arrivals: number[];
}

/**
 * One media stream of a phone: RTP (and RTCP) sockets, a tone sender toward the gateway and
 * counters of what arrives. Packets of every payload type are counted; the audio level is taken
 * from PCMU (0) only.
 */
export class PhoneStream {
  readonly stats: StreamStats = { packets: 0, lastAt: 0, arrivals: [] };
  /** RMS of recent PCMU payloads, newest last. */
  private readonly levels: number[] = [];
  /** Extra listeners, e.g. for video keyframe detection. */
  readonly onPacket = new Set<(packet: Buffer, at: number) => void>();
  private sender: NodeJS.Timeout | undefined;
  private closed = false;
  remote: { port: number; address: string } | undefined;
  private seq = Math.floor(Math.random() * 65535);
  private ts = Math.floor(Math.random() * 2 ** 31);
  readonly ssrc = Math.floor(Math.random() * 2 ** 32) >>> 0;
  private phase = 0;
  rtcpReceived = 0;

  private constructor(
    readonly rtp: dgram.Socket,
    readonly rtcp: dgram.Socket,
    readonly port: number,
  ) {
    rtp.on("message", (m) => this.receive(m));
    rtcp.on("message", () => this.rtcpReceived++);
    // Late ICMP errors after the far end closed must not surface as unhandled socket errors.
    rtp.on("error", () => undefined);
    rtcp.on("error", () => undefined);
  }

  static async open(): Promise<PhoneStream> {
    const pair = await bindPortPair();
    return new PhoneStream(pair.rtp, pair.rtcp, pair.port);
  }

  private receive(m: Buffer): void {
    const at = performance.now();
    this.stats.packets++;
    this.stats.lastAt = at;
    this.stats.arrivals.push(at);
    if (this.stats.arrivals.length > 4000) this.stats.arrivals.splice(0, 2000);
    if (m.length >= 12 && (m[1]! & 0x7f) === 0) {
      const cc = m[0]! & 0x0f;
      this.levels.push(pcmuRms(m.subarray(12 + cc * 4)));
      if (this.levels.length > 100) this.levels.shift();
    }
    for (const l of this.onPacket) l(m, at);
  }

  /** Mean level of the last `n` PCMU packets (0 when none). */
  recentLevel(n = 25): number {
    const recent = this.levels.slice(-n);
    return recent.length === 0 ? 0 : recent.reduce((a, b) => a + b, 0) / recent.length;
  }

  /** Sends a PCMU tone every 20 ms to `remote` (symmetric: from this stream's own RTP socket). */
  startTone(hz: number, amplitude = 8000): void {
    if (this.sender || this.closed) return;
    const tick = (): void => {
      if (!this.remote || this.closed) return;
      const payload = Buffer.alloc(160);
      for (let i = 0; i < 160; i++) {
        payload[i] = muLawEncode(Math.round(amplitude * Math.sin(this.phase)));
        this.phase += (2 * Math.PI * hz) / 8000;
      }
      const header = Buffer.alloc(12);
      header[0] = 0x80;
      header[1] = 0;
      header.writeUInt16BE(this.seq, 2);
      header.writeUInt32BE(this.ts >>> 0, 4);
      header.writeUInt32BE(this.ssrc, 8);
      this.seq = (this.seq + 1) & 0xffff;
      this.ts = (this.ts + 160) >>> 0;
      this.send(Buffer.concat([header, payload]));
    };
    this.sender = setInterval(tick, 20);
  }

  stopTone(): void {
    if (this.sender) clearInterval(this.sender);
    this.sender = undefined;
  }

  /** Sends a datagram from the RTP socket (or the RTCP one) to the gateway's port for this stream. */
  send(datagram: Buffer, rtcp = false): void {
    if (!this.remote || this.closed) return;
    const socket = rtcp ? this.rtcp : this.rtp;
    socket.send(datagram, this.remote.port + (rtcp ? 1 : 0), this.remote.address);
  }

  /** Packets received after `since` (performance.now). */
  packetsSince(since: number): number {
    let n = 0;
    for (let i = this.stats.arrivals.length - 1; i >= 0 && this.stats.arrivals[i]! > since; i--) n++;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTone();
    this.rtp.close();
    this.rtcp.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** Whether an H.264 RTP datagram starts an IDR: alone, in a STAP-A (24), or opening an FU-A (28). */
export function startsH264Idr(datagram: Buffer): boolean {
  if (datagram.length < 13) return false;
  const payload = datagram.subarray(12 + (datagram[0]! & 0x0f) * 4);
  if (payload.length === 0) return false;
  const type = payload[0]! & 0x1f;
  if (type === 28) return payload.length > 1 && (payload[1]! & 0x80) !== 0 && (payload[1]! & 0x1f) === 5;
  if (type !== 24) return type === 5;
  for (let off = 1; off + 2 < payload.length; ) {
    const size = payload.readUInt16BE(off);
    if ((payload[off + 2]! & 0x1f) === 5) return true;
    off += 2 + size;
  }
  return false;
}
