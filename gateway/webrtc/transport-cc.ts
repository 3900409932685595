/**
 * Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01),
 * built by us because werift's own is malformed (werift-notes §2): wrong length, no 32-bit
 * alignment, gaps reported as received, fewer deltas than announced. A sender that cannot parse our
 * feedback, or parses it wrongly, estimates bandwidth from garbage, so the encoding follows the draft
 * and libwebrtc's choices exactly. Pure: the caller feeds arrivals and sends the bytes.
 */

export const TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/** One RTP header extension element as werift parses it (RFC 8285 one-byte or two-byte form). */
export interface RtpHeaderExtensionElement {
  id: number;
  payload: Uint8Array;
}

/**
 * The transport-wide sequence number carried in a packet's header extensions under the negotiated
 * `id`, or undefined when absent or not the 2-byte big-endian value the draft (§2) defines. Both
 * RFC 8285 forms carry the same 2-byte payload; only the element header differs, and werift strips it.
 */
export function transportSequenceNumber(extensions: readonly RtpHeaderExtensionElement[], id: number): number | undefined {
  for (const ext of extensions) {
    if (ext.id !== id) continue;
    const p = ext.payload;
    if (p.length !== 2) return undefined;
    return (p[0]! << 8) | p[1]!;
  }
  return undefined;
}

export interface TransportFeedbackOptions {
  /**
   * Largest feedback packet in bytes, padding included; a multiple of 4 (rounded down). Keeps the
   * SRTCP datagram well under a 1280-byte path MTU.
   */
  maxPacketBytes?: number;
  /** Most transport sequence numbers held at once (memory bound, ~8 bytes each). */
  maxPackets?: number;
  /**
   * How late a packet may arrive and still be reported: as long as the received packet that follows
   * it in sequence arrived less than this long before the newest arrival. libwebrtc keeps 500 ms.
   */
  reorderWindowMs?: number;
}

export const TWCC_RTCP_PT = 205;
export const TWCC_FMT = 15;

/** Packet status symbols (§3.1.1). 3 is reserved and never written. */
const NOT_RECEIVED = 0;
const SMALL_DELTA = 1;
const LARGE_DELTA = 2;
type StatusSymbol = typeof NOT_RECEIVED | typeof SMALL_DELTA | typeof LARGE_DELTA;

const DELTA_TICK_US = 250;
const REFERENCE_TICK_US = 64_000;
const REFERENCE_WRAP = 1 << 24;
/** RTCP header, two SSRCs, base sequence number, status count, reference time and fb count. */
const FIXED_BYTES = 20;
const MAX_RUN_LENGTH = 0x1fff;
const ONE_BIT_CAPACITY = 14;
const TWO_BIT_CAPACITY = 7;
const MAX_STATUS_COUNT = 0xffff;
const MIN_PACKET_BYTES = 64;

/**
 * The chunk still being filled, as libwebrtc's LastChunk: it stays open while its symbols fit one
 * chunk of some kind, and when they no longer do, emits the largest chunk it can. This gives
 * run-length chunks for long uniform stretches, one-bit vectors (14 symbols) where no large delta
 * occurs, and two-bit vectors (7 symbols) otherwise: the smallest encoding for typical traffic.
 */
class OpenChunk {
  private symbols: StatusSymbol[] = [];
  private size = 0;
  private allSame = true;
  private hasLarge = false;

  get empty(): boolean {
    return this.size === 0;
  }

  canAdd(s: StatusSymbol): boolean {
    if (this.size < TWO_BIT_CAPACITY) return true;
    if (this.size < ONE_BIT_CAPACITY && !this.hasLarge && s !== LARGE_DELTA) return true;
    return this.size < MAX_RUN_LENGTH && this.allSame && this.symbols[0] === s;
  }

  add(s: StatusSymbol): void {
    // A run needs only its first symbol; the vector forms never hold more than 14.
    if (this.size < ONE_BIT_CAPACITY) this.symbols[this.size] = s;
    this.size++;
    this.allSame = this.allSame && s === this.symbols[0];
    this.hasLarge = this.hasLarge || s === LARGE_DELTA;
  }

  /** Encodes as many symbols as one chunk takes and keeps the rest open. Only when canAdd failed. */
  emit(): number {
    if (this.allSame) {
      const chunk = this.runLength();
      this.clear();
      return chunk;
    }
    if (this.size === ONE_BIT_CAPACITY) {
      const chunk = this.oneBit();
      this.clear();
      return chunk;
    }
    const chunk = this.twoBit(TWO_BIT_CAPACITY);
    const rest = this.symbols.slice(TWO_BIT_CAPACITY, this.size);
    this.clear();
    for (const s of rest) this.add(s);
    return chunk;
  }

  /** Encodes everything still open as the final chunk; unused vector slots are zero. */
  last(): number {
    if (this.allSame) return this.runLength();
    if (this.size <= TWO_BIT_CAPACITY) return this.twoBit(this.size);
    return this.oneBit();
  }

  clone(): OpenChunk {
    const c = new OpenChunk();
    c.symbols = this.symbols.slice();
    c.size = this.size;
    c.allSame = this.allSame;
    c.hasLarge = this.hasLarge;
    return c;
  }

  private clear(): void {
    this.symbols = [];
    this.size = 0;
    this.allSame = true;
    this.hasLarge = false;
  }

  /** T=0, S (2 bits), run length (13 bits). */
  private runLength(): number {
    return (this.symbols[0]! << 13) | this.size;
  }

  /** T=1, S=0, 14 one-bit symbols (0 not received, 1 small delta). */
  private oneBit(): number {
    let chunk = 0x8000;
    for (let i = 0; i < this.size; i++) chunk |= this.symbols[i]! << (ONE_BIT_CAPACITY - 1 - i);
    return chunk;
  }

  /** T=1, S=1, 7 two-bit symbols. */
  private twoBit(count: number): number {
    let chunk = 0xc000;
    for (let i = 0; i < count; i++) chunk |= this.symbols[i]! << (2 * (TWO_BIT_CAPACITY - 1 - i));
    return chunk;
  }
}

/** One feedback packet under construction. Every add either fits entirely or changes nothing. */
class FeedbackPacketWriter {
  private readonly chunks: number[] = [];
  private open = new OpenChunk();
  private readonly deltas: number[] = [];
  private deltaBytes = 0;
  private statusCount = 0;
  /** Arrival time (µs) the next delta is relative to: the quantised time of the previous packet. */
  private lastUs: number;

  constructor(
    private readonly baseSeq: number,
    private readonly referenceTicks: number,
    private readonly fbCount: number,
    private readonly maxBytes: number,
  ) {
    this.lastUs = referenceTicks * REFERENCE_TICK_US;
  }

  /** Adds `seq` (unwrapped) received at `arrivalUs`, with every packet before it since the last as lost. */
  tryAdd(seq: number, arrivalUs: number): boolean {
    const missing = seq - (this.baseSeq + this.statusCount);
    if (missing < 0 || this.statusCount + missing + 1 > MAX_STATUS_COUNT) return false;
    // Quantise against the previous quantised time, not the previous true time, so rounding never
    // accumulates: the sender reconstructs every arrival to within half a tick.
    const ticks = Math.round((arrivalUs - this.lastUs) / DELTA_TICK_US);
    if (ticks < -0x8000 || ticks > 0x7fff) return false;
    const symbol: StatusSymbol = ticks >= 0 && ticks <= 0xff ? SMALL_DELTA : LARGE_DELTA;
    const deltaSize = symbol === SMALL_DELTA ? 1 : 2;

    const saved = { chunks: this.chunks.length, open: this.open.clone() };
    for (let i = 0; i < missing; i++) this.addSymbol(NOT_RECEIVED);
    this.addSymbol(symbol);
    if (this.bytes(this.deltaBytes + deltaSize) > this.maxBytes) {
      this.chunks.length = saved.chunks;
      this.open = saved.open;
      return false;
    }
    this.statusCount += missing + 1;
    this.deltas.push(ticks);
    this.deltaBytes += deltaSize;
    this.lastUs += ticks * DELTA_TICK_US;
    return true;
  }

  get count(): number {
    return this.statusCount;
  }

  serialize(senderSsrc: number, mediaSsrc: number): Buffer<ArrayBuffer> {
    const unpadded = this.bytes(this.deltaBytes);
    const total = (unpadded + 3) & ~3;
    const padding = total - unpadded;
    const buf = Buffer.alloc(total);
    buf[0] = 0x80 | (padding > 0 ? 0x20 : 0) | TWCC_FMT;
    buf[1] = TWCC_RTCP_PT;
    buf.writeUInt16BE(total / 4 - 1, 2);
    buf.writeUInt32BE(senderSsrc >>> 0, 4);
    buf.writeUInt32BE(mediaSsrc >>> 0, 8);
    buf.writeUInt16BE(this.baseSeq & 0xffff, 12);
    buf.writeUInt16BE(this.statusCount, 14);
    // Two's complement in 24 bits is the same bit pattern as the value modulo 2^24.
    buf.writeUIntBE(((this.referenceTicks % REFERENCE_WRAP) + REFERENCE_WRAP) % REFERENCE_WRAP, 16, 3);
    buf[19] = this.fbCount & 0xff;
    let pos = FIXED_BYTES;
    for (const chunk of this.chunks) pos = buf.writeUInt16BE(chunk, pos);
    if (!this.open.empty) pos = buf.writeUInt16BE(this.open.last(), pos);
    for (const ticks of this.deltas) {
      if (ticks >= 0 && ticks <= 0xff) buf[pos++] = ticks;
      else pos = buf.writeInt16BE(ticks, pos);
    }
    // RFC 3550 padding, as libwebrtc writes it: zeros, then the padding length in the last byte.
    if (padding > 0) buf[total - 1] = padding;
    return buf;
  }

  private addSymbol(s: StatusSymbol): void {
    if (!this.open.canAdd(s)) this.chunks.push(this.open.emit());
    this.open.add(s);
  }

  private bytes(deltaBytes: number): number {
    return FIXED_BYTES + 2 * (this.chunks.length + (this.open.empty ? 0 : 1)) + deltaBytes;
  }
}

/**
 * Arrival times of received packets by transport-wide sequence number, and the feedback that
 * reports them. One per transport (with BUNDLE, one per call): the sequence space is shared by
 * every SSRC on it, audio, video and RTX padding probes alike.
 *
 * Each build reports from the first sequence number not yet reported up to the newest received,
 * the gaps as not received. A packet that arrives after it was reported lost moves the next report
 * back to it, as libwebrtc does, so the sender learns it was late rather than lost; earlier packets
 * in that range are repeated with their original times. Packets too old for that are ignored.
 */
export class TransportFeedbackRecorder {
  private readonly maxBytes: number;
  private readonly maxPackets: number;
  private readonly reorderWindowUs: number;
  /** Ring of arrival times (µs) by unwrapped sequence number; NaN for not received. */
  private times = new Float64Array(256).fill(Number.NaN);
  /** Held sequence numbers are [begin, end), unwrapped. Empty until the first packet. */
  private begin = 0;
  private end = 0;
  private started = false;
  /** First sequence number the next feedback reports. */
  private windowStart = 0;
  private latestUs = Number.NEGATIVE_INFINITY;
  private fbCount = 0;
  /** Whether history below `begin` was ever dropped: what lies below is then known to be too old. */
  private trimmed = false;

  constructor(options: TransportFeedbackOptions = {}) {
    this.maxBytes = Math.max(MIN_PACKET_BYTES, (options.maxPacketBytes ?? 1200) & ~3);
    // A power of two so ring positions are a mask; at least the initial ring.
    this.maxPackets = 2 ** Math.ceil(Math.log2(Math.max(256, Math.min(1 << 15, options.maxPackets ?? 8192))));
    this.reorderWindowUs = (options.reorderWindowMs ?? 500) * 1000;
  }

  /** Sequence numbers currently held (reported history plus unreported), for bounds and metrics. */
  get heldPackets(): number {
    return this.end - this.begin;
  }

  /** Feedback packets built so far (the next one's fb pkt. count, before wrapping at 256). */
  get feedbackPackets(): number {
    return this.fbCount;
  }

  /**
   * Records one received packet: its 16-bit transport-wide sequence number and arrival time in ms
   * (any monotonic clock, e.g. performance.now(); sub-millisecond precision is used). Returns false
   * for a duplicate or a packet too old to report.
   */
  record(sequenceNumber: number, arrivalMs: number): boolean {
    if (!Number.isInteger(sequenceNumber) || sequenceNumber < 0 || sequenceNumber > 0xffff || !Number.isFinite(arrivalMs)) return false;
    const arrivalUs = arrivalMs * 1000;
    if (!this.started) {
      this.started = true;
      this.begin = sequenceNumber;
      this.end = sequenceNumber + 1;
      this.windowStart = sequenceNumber;
      this.set(sequenceNumber, arrivalUs);
      this.latestUs = arrivalUs;
      return true;
    }
    // Nearest unwrapped value to the newest held: a 16-bit difference read as signed.
    const highest = this.end - 1;
    const seq = highest + ((((sequenceNumber - highest) & 0xffff) << 16) >> 16);

    if (seq >= this.end) {
      this.extendForward(seq);
    } else if (seq < this.begin) {
      // Below everything held. Once history was dropped, what lies below was dropped for being old.
      // Before that, it is a reordered start, judged like any late packet: by the packet after it.
      if (this.trimmed || this.end - seq > this.maxPackets || !this.isRecent(this.nextReceived(this.begin))) return false;
      this.extendBackward(seq);
    } else if (!Number.isNaN(this.get(seq))) {
      return false;
    }
    this.set(seq, arrivalUs);
    if (seq < this.windowStart) this.windowStart = seq;
    if (arrivalUs > this.latestUs) this.latestUs = arrivalUs;
    return true;
  }

  /**
   * Feedback for everything not yet reported, as RTCP packets (RTPFB, PT 205, FMT 15), usually one;
   * several when a receive delta needs more than 16 bits (a pause of over 8.19 s) or one packet
   * would exceed the size limit. Empty when nothing new was received. Packets lost after the newest
   * received one are reported once something after them arrives. Each buffer is freshly allocated
   * (an ArrayBuffer of its own), the type werift's RTCP serialize() returns.
   */
  build(senderSsrc: number, mediaSsrc: number): Buffer<ArrayBuffer>[] {
    const packets: Buffer<ArrayBuffer>[] = [];
    if (!this.started) return packets;
    for (;;) {
      const first = this.nextReceived(this.windowStart);
      if (first === undefined) break;
      const firstUs = this.get(first);
      const writer = new FeedbackPacketWriter(this.windowStart, Math.floor(firstUs / REFERENCE_TICK_US), this.fbCount, this.maxBytes);
      let next = this.windowStart;
      for (let seq = first; seq < this.end; seq++) {
        const t = this.get(seq);
        if (Number.isNaN(t)) continue;
        if (!writer.tryAdd(seq, t)) break;
        next = seq + 1;
      }
      // The first received packet always fits (its delta is under 64 ms from the reference time and
      // the limit leaves room for the chunks before it), so every round makes progress.
      if (next === this.windowStart) break;
      packets.push(writer.serialize(senderSsrc, mediaSsrc));
      this.fbCount = (this.fbCount + 1) >>> 0;
      this.windowStart = next;
    }
    this.forgetOld();
    return packets;
  }

  private get(seq: number): number {
    return this.times[seq & (this.times.length - 1)]!;
  }

  private set(seq: number, us: number): void {
    this.times[seq & (this.times.length - 1)] = us;
  }

  private isRecent(seq: number | undefined): boolean {
    return seq !== undefined && this.get(seq) > this.latestUs - this.reorderWindowUs;
  }

  private nextReceived(from: number): number | undefined {
    for (let seq = from; seq < this.end; seq++) if (!Number.isNaN(this.get(seq))) return seq;
    return undefined;
  }

  private extendForward(seq: number): void {
    if (seq - this.begin + 1 > this.maxPackets) {
      // A jump past what we hold drops the oldest, reported or not, to keep memory bounded.
      this.begin = seq - this.maxPackets + 1;
      this.trimmed = true;
      if (this.windowStart < this.begin) this.windowStart = this.begin;
      if (this.end < this.begin) this.end = this.begin;
    }
    this.ensureCapacity(seq - this.begin + 1);
    if (seq - this.end >= this.times.length) this.times.fill(Number.NaN);
    else for (let s = this.end; s < seq; s++) this.set(s, Number.NaN);
    this.end = seq + 1;
  }

  private extendBackward(seq: number): void {
    this.ensureCapacity(this.end - seq);
    for (let s = seq + 1; s < this.begin; s++) this.set(s, Number.NaN);
    this.begin = seq;
  }

  private ensureCapacity(span: number): void {
    if (span <= this.times.length) return;
    let size = this.times.length;
    while (size < span) size *= 2;
    const grown = new Float64Array(size).fill(Number.NaN);
    for (let s = this.begin; s < this.end; s++) grown[s & (size - 1)] = this.get(s);
    this.times = grown;
  }

  /**
   * Drops reported history the sender no longer needs: each received packet older than the reorder
   * window together with the unreceived ones before it. A lost packet is kept while the packet after
   * it is recent, so it can still be reported as late rather than lost when it turns up.
   */
  private forgetOld(): void {
    for (;;) {
      const r = this.nextReceived(this.begin);
      if (r === undefined || r >= this.windowStart || this.isRecent(r)) break;
      this.begin = r + 1;
      this.trimmed = true;
    }
  }
}
