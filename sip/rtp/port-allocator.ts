import dgram from "node:dgram";
import { PortAllocationError } from "../errors.js";
import { bindUdpSocket } from "../udp-bind.js";

/** An RTP socket on an even port and its RTCP socket on the next (odd) port, both bound. */
export interface BoundPortPair {
  readonly address: string;
  readonly rtpPort: number;
  readonly rtcpPort: number;
  readonly rtp: dgram.Socket;
  readonly rtcp: dgram.Socket;
  /** Closes both sockets and returns the pair to the allocator; idempotent. */
  release(): Promise<void>;
}

export interface PortAllocatorOptions {
  /** Address the sockets bind to. */
  address: string;
  /** First port of the range (rounded up to even). */
  minPort: number;
  /** Last port of the range (an RTCP port may equal it). */
  maxPort: number;
}

/**
 * Hands out RTP/RTCP port pairs from a configured range. Pairs are taken round-robin rather than
 * lowest-first so a pair just released is not reused at once: late packets from the previous
 * call would otherwise land in the next one. A pair someone else holds (bind fails) is skipped.
 */
export class PortAllocator {
  readonly address: string;
  private readonly first: number;
  private readonly pairCount: number;
  private readonly inUse = new Set<number>();
  private cursor = 0;

  constructor(options: PortAllocatorOptions) {
    const first = options.minPort + (options.minPort % 2);
    if (!Number.isInteger(options.minPort) || !Number.isInteger(options.maxPort) || first < 1024 || options.maxPort > 65535) {
      throw new PortAllocationError(`bad RTP port range ${options.minPort}-${options.maxPort}`);
    }
    const pairCount = Math.floor((options.maxPort - first + 1) / 2);
    if (pairCount < 1) throw new PortAllocationError(`RTP port range ${options.minPort}-${options.maxPort} holds no even/odd pair`);
    this.address = options.address;
    this.first = first;
    this.pairCount = pairCount;
  }

  /** Pairs currently handed out. */
  get allocatedCount(): number {
    return this.inUse.size;
  }

  get capacity(): number {
    return this.pairCount;
  }

  /**
   * Reserves the next free even port without binding it (pure bookkeeping); undefined when the
   * range is exhausted. Prefer allocate(), which also binds.
   */
  reserve(): number | undefined {
    for (let i = 0; i < this.pairCount; i++) {
      const index = (this.cursor + i) % this.pairCount;
      const port = this.first + index * 2;
      if (!this.inUse.has(port)) {
        this.inUse.add(port);
        this.cursor = (index + 1) % this.pairCount;
        return port;
      }
    }
    return undefined;
  }

  /** Returns a reserved pair (by its RTP port) to the pool. */
  unreserve(rtpPort: number): void {
    this.inUse.delete(rtpPort);
  }

  /** Binds the next free pair, skipping pairs whose ports are taken by other processes. */
  async allocate(): Promise<BoundPortPair> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.pairCount; attempt++) {
      const rtpPort = this.reserve();
      if (rtpPort === undefined) break;
      try {
        const [rtp, rtcp] = await bindPair(this.address, rtpPort);
        return this.makePair(rtpPort, rtp, rtcp);
      } catch (err) {
        lastError = err;
        this.unreserve(rtpPort);
      }
    }
    throw new PortAllocationError(
      `no free RTP/RTCP port pair on ${this.address} in ${this.first}-${this.first + this.pairCount * 2 - 1} (${this.inUse.size} in use)`,
      { cause: lastError },
    );
  }

  private makePair(rtpPort: number, rtp: dgram.Socket, rtcp: dgram.Socket): BoundPortPair {
    let released: Promise<void> | undefined;
    // A send error on a socket without an 'error' listener would throw from the event loop;
    // whoever uses the pair adds its own listener for logging.
    const ignore = (): void => {};
    rtp.on("error", ignore);
    rtcp.on("error", ignore);
    return {
      address: this.address,
      rtpPort,
      rtcpPort: rtpPort + 1,
      rtp,
      rtcp,
      release: () => {
        released ??= Promise.all([closeSocket(rtp), closeSocket(rtcp)]).then(() => this.unreserve(rtpPort));
        return released;
      },
    };
  }
}


async function bindPair(address: string, rtpPort: number): Promise<[dgram.Socket, dgram.Socket]> {
  const rtp = await bindUdpSocket(address, rtpPort);
  try {
    return [rtp, await bindUdpSocket(address, rtpPort + 1)];
  } catch (err) {
    await closeSocket(rtp);
    throw err;
  }
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}
