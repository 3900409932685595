import { Worker } from "node:worker_threads";

/** What the front's thread tells its owner. */
export type GraphFrontMessage = { t: "listening"; port: number } | { t: "arrived"; action: string; callId: string; at: number };

/** What the front's thread is started with. */
export interface GraphFrontData {
  /** The GraphServer the front hands every request to. */
  target: string;
  /** Graph actions whose arrival is reported (per call, taken once). */
  timed: string[];
}

/**
 * Meta's Graph API as the gateway reaches it: an HTTP front on a thread of its own that notes when
 * each request arrived and hands it on to the load generator's GraphServer. The load generator's
 * own loop is busy with its consumers' DTLS handshakes and media, which Meta's API servers are not:
 * timed there, a burst's `accept` would wait behind the load generator's work and be charged to
 * the gateway. The front's loop does nothing else, so its arrival time is the request's.
 */
export class GraphFront {
  private readonly arrivals = new Map<string, number>();

  private constructor(
    private readonly thread: Worker,
    readonly port: number,
  ) {
    thread.on("message", (m: GraphFrontMessage) => {
      if (m.t === "arrived") this.arrivals.set(`${m.action} ${m.callId}`, m.at);
    });
  }

  static async start(target: string, timed: string[]): Promise<GraphFront> {
    const data: GraphFrontData = { target, timed };
    const thread = new Worker(new URL("./graph-front-thread.js", import.meta.url), { workerData: data });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the Graph front did not listen within 10 s")), 10_000);
      thread.once("error", reject);
      thread.on("message", (m: GraphFrontMessage) => {
        if (m.t !== "listening") return;
        clearTimeout(timer);
        resolve(m.port);
      });
    });
    return new GraphFront(thread, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * When `action` for `callId` reached the front, on this thread's performance.now() clock (both
   * threads read the same monotonic clock from their own origins); undefined when it has not
   * been reported (yet).
   */
  takeArrival(action: string, callId: string): number | undefined {
    const key = `${action} ${callId}`;
    const at = this.arrivals.get(key);
    this.arrivals.delete(key);
    return at === undefined ? undefined : at - performance.timeOrigin;
  }

  async close(): Promise<void> {
    await this.thread.terminate();
  }
}
