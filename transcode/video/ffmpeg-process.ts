/**
 * One ffmpeg child: frames in on stdin, encoded packets out (via EncodedOutputReader on fd 1 + fd 3). It knows
 * nothing about restarts or keyframe policy; VideoTranscoder owns those.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import type { Readable, Writable } from "node:stream";
import { EncodedOutputReader, type EncodedPacket } from "./encoded-output-reader.js";
import { FfmpegExitError, FfmpegNotFoundError } from "./errors.js";
import { readProcessUsage, type ProcessUsage } from "./proc-stat.js";

export interface FfmpegProcessEvents {
  packet: [EncodedPacket];
  /** The process is gone. `error` is undefined when it was stopped by `kill()`. */
  exit: [FfmpegExitError | undefined];
}

export type FfmpegProcessState = "spawning" | "running" | "exited";

const STDERR_TAIL_BYTES = 2048;

/** Every ffmpeg started in this process that has not exited, and the CPU time of those that have. */
const running = new Set<FfmpegProcess>();
let startedCount = 0;
let exitedCpuSeconds = 0;

export interface FfmpegTotals {
  running: number;
  started: number;
  /** CPU time of every ffmpeg started so far: exited ones as last read while they ran, live ones now. */
  cpuSeconds: number;
}

/** Process-wide figures of the transcoders, for metrics; reads /proc of each live one. */
export function ffmpegTotals(): FfmpegTotals {
  let cpu = exitedCpuSeconds;
  for (const p of running) cpu += p.usage().cpuSeconds;
  return { running: running.size, started: startedCount, cpuSeconds: cpu };
}

export class FfmpegProcess extends EventEmitter<FfmpegProcessEvents> {
  private readonly child: ChildProcess;
  private readonly stdin: Writable;
  private state: FfmpegProcessState = "spawning";
  private killed = false;
  private stderrTail = "";
  private lastUsage: ProcessUsage = { cpuSeconds: 0, rssBytes: 0 };
  private readonly reader: EncodedOutputReader;
  private readonly exited: Promise<void>;
  /** Resolves once the process runs; rejects with FfmpegNotFoundError if it could not be started. */
  readonly ready: Promise<void>;

  private constructor(
    readonly path: string,
    readonly args: readonly string[],
  ) {
    super();
    this.reader = new EncodedOutputReader((packet) => this.emit("packet", packet));
    this.child = spawn(path, args, { stdio: ["pipe", "pipe", "pipe", "pipe"] });
    running.add(this);
    startedCount++;
    this.stdin = this.child.stdin!;
    // Writes after ffmpeg died fail with EPIPE; the exit event reports the death, so these are noise.
    this.stdin.on("error", () => {});
    this.child.stdout!.on("data", (chunk: Buffer) => this.read(() => this.reader.pushData(chunk)));
    (this.child.stdio[3] as Readable).on("data", (chunk: Buffer) => this.read(() => this.reader.pushIndex(chunk)));
    this.child.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-STDERR_TAIL_BYTES);
    });
    this.ready = new Promise((resolve, reject) => {
      this.child.once("spawn", () => {
        if (this.state === "spawning") this.state = "running";
        resolve();
      });
      this.child.once("error", (err) => reject(new FfmpegNotFoundError(path, err)));
    });
    // Settled by the caller through ready(); keep an unobserved rejection from being reported twice.
    this.ready.catch(() => {});
    this.exited = new Promise((resolve) => {
      const finish = (error: FfmpegExitError | undefined): void => {
        if (this.state === "exited") return;
        this.state = "exited";
        running.delete(this);
        exitedCpuSeconds += this.lastUsage.cpuSeconds;
        // Whatever ffmpeg left in its pipes is of no use once it is gone; the descriptors are released now.
        this.destroyPipes();
        resolve();
        this.emit("exit", error);
      };
      this.child.once("exit", (code, signal) =>
        finish(this.killed ? undefined : new FfmpegExitError(code, signal, this.stderrTail.trim())),
      );
      this.child.once("error", (err) => finish(new FfmpegExitError(null, null, String(err))));
    });
  }

  /**
   * Starts ffmpeg. Frames may be written at once (they wait in the pipe); `ready` rejects with
   * FfmpegNotFoundError when the binary cannot be executed.
   */
  static spawn(path: string, args: readonly string[]): FfmpegProcess {
    return new FfmpegProcess(path, args);
  }

  private read(action: () => void): void {
    try {
      action();
    } catch (err) {
      // Output we cannot parse is as fatal as a crash: report it as this process's death.
      this.stderrTail = `${this.stderrTail}\n${(err as Error).message}`.slice(-STDERR_TAIL_BYTES);
      this.child.kill("SIGKILL");
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get currentState(): FfmpegProcessState {
    return this.state;
  }

  /** One frame's bytes; corked so header and payload leave in a single writev. */
  write(chunks: readonly Buffer[]): void {
    if (this.state === "exited") return;
    this.stdin.cork();
    for (const chunk of chunks) if (chunk.length > 0) this.stdin.write(chunk);
    this.stdin.uncork();
  }

  /** CPU time and RSS; after exit, the last values read while it ran. */
  usage(): ProcessUsage {
    if (this.state === "running" && this.child.pid !== undefined) {
      const usage = readProcessUsage(this.child.pid);
      if (usage) this.lastUsage = usage;
    }
    return this.lastUsage;
  }

  /** Stops ffmpeg at once (no flushing: a realtime stream has no use for late frames) and frees its pipes. */
  async kill(): Promise<void> {
    if (this.state === "exited") return;
    this.usage();
    this.killed = true;
    this.child.kill("SIGKILL");
    await this.exited;
  }

  /** Kills ffmpeg as a failure (it hung): the exit event then reports an error carrying `reason`. */
  abort(reason: string): void {
    if (this.state === "exited") return;
    this.usage();
    this.stderrTail = `${this.stderrTail}\n${reason}`.slice(-STDERR_TAIL_BYTES);
    this.child.kill("SIGKILL");
  }

  private destroyPipes(): void {
    for (const stream of this.child.stdio) stream?.destroy();
  }
}
