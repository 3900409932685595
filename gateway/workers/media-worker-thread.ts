import { Worker } from "node:worker_threads";
import type { GatewayConfig } from "../config/config.js";
import { fromWireError } from "./sip-protocol.js";
import type { FromWorker, MediaWorkerData, ToWorker, WorkerRequest } from "./worker-protocol.js";

/** A worker that does not come up within this is a fault at start. */
const WORKER_START_MS = 20_000;
/** A request to a worker (metrics, live calls) that takes longer is answered without it. */
const WORKER_REQUEST_MS = 5_000;
/**
 * A media worker's young generation in MB (V8 gives a third to each of its two semi-spaces). Its
 * garbage is per packet and dies young, so scavenges stay short at this size; V8's default lets
 * the semi-spaces grow to 16 MB each under a packet rate's allocation, which only adds memory:
 * `npm run bench -- --quick --steps 50,100`, RSS per call at 50 calls 0.6 MB against 1.1–1.2 MB,
 * with CPU per call and the share of packets within 20 ms no worse.
 */
const MEDIA_WORKER_YOUNG_GENERATION_MB = 12;

export type WorkerState = "starting" | "up" | "stopping" | "gone";

/** One media worker thread as its owner sees it: its start, its messages, its requests and its end. */
export class MediaWorker {
  state: WorkerState = "starting";
  readonly thread: Worker;
  readonly ready: Promise<void>;
  /**
   * Settles when the thread has ended. Kept from the start: a thread that ends right after its last
   * reply emits "exit" in the same turn as that reply, before anyone awaiting the reply could listen.
   */
  readonly exited: Promise<number>;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextReq = 1;

  constructor(
    readonly index: number,
    config: GatewayConfig,
    digestSecret: Uint8Array,
    onMessage: (m: FromWorker) => void,
    onExit: (code: number) => void,
  ) {
    const data: MediaWorkerData = { index, config, digestSecret };
    this.thread = new Worker(new URL("./media-worker.js", import.meta.url), {
      workerData: data,
      resourceLimits: { maxYoungGenerationSizeMb: MEDIA_WORKER_YOUNG_GENERATION_MB },
    });
    this.exited = new Promise((resolve) => this.thread.once("exit", resolve));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`media worker ${index} did not start within ${WORKER_START_MS} ms`)), WORKER_START_MS);
      this.thread.on("message", (m: FromWorker) => {
        if (m.t === "ready") {
          clearTimeout(timer);
          this.state = "up";
          resolve();
        } else if (m.t === "reply") {
          const p = this.pending.get(m.req);
          if (!p) return;
          this.pending.delete(m.req);
          clearTimeout(p.timer);
          if (m.ok) p.resolve(m.value);
          else p.reject(fromWireError(m.error));
        } else onMessage(m);
      });
      this.thread.on("exit", (code) => {
        clearTimeout(timer);
        this.state = "gone";
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new Error(`media worker ${index} exited`));
        }
        this.pending.clear();
        reject(new Error(`media worker ${index} exited with code ${code}`));
        onExit(code);
      });
    });
    this.ready.catch(() => undefined);
  }

  /** Messages to a starting worker wait in its port until it listens. */
  post(m: ToWorker): void {
    if (this.state !== "gone") this.thread.postMessage(m);
  }

  request(build: (req: number) => WorkerRequest, timeoutMs = WORKER_REQUEST_MS): Promise<unknown> {
    if (this.state === "gone") return Promise.reject(new Error(`media worker ${this.index} is gone`));
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req);
        reject(new Error(`media worker ${this.index} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(req, { resolve, reject, timer });
      this.thread.postMessage(build(req));
    });
  }
}
