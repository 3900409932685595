/**
 * VideoTranscoder: one incoming video stream (VP8, VP9, AV1, H.264 or H.265 frames) → H.264 constrained
 * baseline access units, through one long-running ffmpeg process.
 *
 * - Every output access unit carries the RTP timestamp of the input frame it came from, matched exactly by pts
 *   (see encoded-output-reader.ts), and the time from writing that frame to reading it back.
 * - IDRs on demand without a restart: the frame to become an IDR is written with an odd pts, which
 *   `-force_key_frames expr:` turns into a keyframe. Requests are spaced at least `keyframeMinIntervalMs`
 *   apart; one arriving sooner is served when the interval ends, never dropped.
 * - A new ffmpeg must start at an input keyframe. Until then frames are dropped and `keyframe-needed` asks the
 *   caller for one (a PLI toward the sender), repeated at the same spacing while still waiting.
 * - ffmpeg that dies is restarted with growing delays, at most `restart.maxRestarts` times per
 *   `restart.windowMs`; the frames since the last keyframe are replayed into the new process so the stream
 *   goes on without waiting for the sender. Past the budget the transcoder fails (`failed` event).
 * - Bitrate: libx264's rate control cannot be changed from outside a running ffmpeg 5.1, so a new target takes
 *   effect through a second process started at the next input keyframe with the new settings; once it is warm
 *   it is made to produce an IDR, the output switches over on that IDR and the old process is stopped. No
 *   frame is lost or repeated. With "annexb" framing (no pts side channel) the new rate waits for the next
 *   restart.
 */
import { EventEmitter } from "node:events";
import type { EncodedPacket } from "./encoded-output-reader.js";
import { EncoderSlot } from "./encoder-slot.js";
import { FfmpegExitError, TranscoderClosedError, TranscoderFailedError } from "./errors.js";
import { buildFfmpegArgs, DEFAULT_ENCODER_SETTINGS, type EncoderSettings } from "./ffmpeg-args.js";
import { resolveFfmpegPath } from "./ffmpeg-binary.js";
import { createInputFramer, defaultFraming, type InputFraming } from "./input-framing.js";
import { hasAv1SequenceHeader, isKeyframe } from "./keyframe.js";
import { LatencyWindow } from "./latency-window.js";
import { timestampUnwrapper } from "./rtp-unwrap.js";
import type { VideoCodec } from "./video-codec.js";

export interface TranscoderInputFrame {
  /** IVF frame payload (VP8/VP9/AV1) or Annex-B access unit (H.264/H.265). */
  data: Buffer;
  /** RTP timestamp, 90 kHz. */
  timestamp: number;
  /** From the depacketizer; the transcoder checks the bitstream itself before starting a process on it. */
  keyframe?: boolean;
  /** When the frame's last packet arrived (carried through to the output for end-to-end accounting). */
  arrivalMs?: number;
}

export interface EncodedAccessUnit {
  /** Annex-B H.264 access unit (SPS and PPS in-band before every IDR). */
  data: Buffer;
  /** RTP timestamp (90 kHz) of the input frame this picture was encoded from. */
  timestamp: number;
  keyframe: boolean;
  /** performance.now() when the input frame was written to ffmpeg. */
  writtenAtMs: number;
  /** performance.now() when this access unit was read back. */
  emittedAtMs: number;
  /** emittedAtMs - writtenAtMs: the latency the transcoder added. */
  latencyMs: number;
  arrivalMs: number | undefined;
}

export type TranscoderState = "idle" | "awaiting-keyframe" | "running" | "restarting" | "failed" | "closed";

export type KeyframeNeededReason = "startup" | "restart" | "overload" | "reconfigure" | "idr-request";

export interface RestartPolicy {
  /** Restarts allowed within `windowMs` before giving up. Default 5. */
  maxRestarts: number;
  windowMs: number;
  /** Delay before the first restart in a window; default 0 (the replay makes an immediate restart seamless). */
  initialDelayMs: number;
  /** Delay before the second restart in a window, doubling with each further one up to maxDelayMs. Default 100. */
  backoffBaseMs: number;
  maxDelayMs: number;
}

export interface VideoTranscoderOptions extends Partial<EncoderSettings> {
  codec: VideoCodec;
  /** Default: FFMPEG_PATH, else `ffmpeg` on PATH. */
  ffmpegPath?: string;
  /** Default "ivf" for VP8/VP9/AV1, "matroska" for H.264/H.265 (see input-framing.ts). */
  framing?: InputFraming;
  /** Minimum spacing of forced IDRs and of keyframe-needed events; default 500 ms. */
  keyframeMinIntervalMs?: number;
  restart?: Partial<RestartPolicy>;
  /** Frames in ffmpeg at most before it counts as overloaded (input then skips to a keyframe). Default 30. */
  maxInFlightFrames?: number;
  /** Relative bitrate change below which no process handover is worth it; default 0.15. */
  bitrateChangeThreshold?: number;
  /** Frames since the last keyframe kept for replay into a restarted process; default 90. */
  maxReplayFrames?: number;
  /** Latency samples kept for the percentiles; default 1000. */
  latencyWindow?: number;
}

export interface VideoTranscoderStats {
  state: TranscoderState;
  codec: VideoCodec;
  framing: InputFraming;
  pid: number | undefined;
  framesIn: number;
  framesWritten: number;
  framesOut: number;
  keyframesOut: number;
  framesDropped: { awaitingKeyframe: number; overload: number; notRunning: number; noOutput: number };
  keyframeRequests: number;
  keyframesForced: number;
  keyframeNeededEvents: number;
  restarts: number;
  handovers: number;
  bitrateKbps: number;
  targetBitrateKbps: number;
  latencyMs: { p50: number | undefined; p99: number | undefined; samples: number };
  /** CPU seconds of every ffmpeg this transcoder ran (the live one read from /proc now). */
  cpuSeconds: number;
  rssBytes: number;
  /** Why the last ffmpeg died, if one did. */
  lastExit: string | undefined;
}

export interface VideoTranscoderEvents {
  "access-unit": [EncodedAccessUnit];
  /** Ask the sender for a keyframe (PLI/FIR): the transcoder cannot continue or switch without one. */
  "keyframe-needed": [{ reason: KeyframeNeededReason }];
  "state-change": [{ from: TranscoderState; to: TranscoderState }];
  restart: [{ attempt: number; delayMs: number; cause: FfmpegExitError }];
  failed: [TranscoderFailedError];
}

interface PendingAccessUnit {
  au: EncodedAccessUnit;
  ext: number;
}

const RESTART_DEFAULTS: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 60_000,
  initialDelayMs: 0,
  backoffBaseMs: 100,
  maxDelayMs: 2_000,
};
/** A standby that has not delivered its switch-over IDR this long after it was forced is abandoned. */
const HANDOVER_TIMEOUT_MS = 2_000;
/** A standby that produced nothing this long after it started is abandoned. */
const STANDBY_WARMUP_TIMEOUT_MS = 5_000;
/** After an abandoned handover, the next attempt waits this long. */
const HANDOVER_RETRY_MS = 5_000;
/** ffmpeg holding frames without any output this long is hung: it is killed and restarted. */
const STALL_TIMEOUT_MS = 3_000;
const USAGE_SAMPLE_INTERVAL_MS = 1_000;
/**
 * Internal timeline (90 kHz) the pts are derived from. It starts well above zero so pts never go negative, and
 * a jump in input timestamps larger than this (a new stream after an SSRC change, a sender restart) is folded
 * into one frame step, so ffmpeg always sees rising pts. Output keeps the input's own RTP timestamps.
 */
const TIMELINE_START = 90_000 * 60;
const MAX_TIMELINE_JUMP = 90_000 * 10;

export class VideoTranscoder extends EventEmitter<VideoTranscoderEvents> {
  readonly codec: VideoCodec;
  readonly framing: InputFraming;
  private readonly ffmpegPath: string;
  private readonly settings: EncoderSettings;
  private readonly keyframeMinIntervalMs: number;
  private readonly restartPolicy: RestartPolicy;
  private readonly maxInFlightFrames: number;
  private readonly bitrateChangeThreshold: number;
  private readonly maxReplayFrames: number;

  private state: TranscoderState = "idle";
  private starting = false;
  private active: EncoderSlot | undefined;
  private standby: EncoderSlot | undefined;
  private standbyForcedAtMs = 0;
  /** Active AUs at or after the switch-over frame, held until the standby's IDR arrives (or it fails). */
  private heldForSwitch: PendingAccessUnit[] = [];
  private handoverNotBeforeMs = 0;
  private targetBitrateKbps: number;
  private readonly unwrap = timestampUnwrapper();

  private forceRequested = false;
  private lastForcedAtMs = Number.NEGATIVE_INFINITY;
  private lastKeyframeNeededAtMs = Number.NEGATIVE_INFINITY;
  /** Frames since the last input keyframe (with their timeline position), for replay after a restart. */
  private replay: Array<{ frame: TranscoderInputFrame; ext: number }> = [];
  private timeline: { offset: number; last: number } | undefined;
  private restartTimes: number[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private usageTimer: NodeJS.Timeout | undefined;
  private lastExit: FfmpegExitError | undefined;
  private retiredCpuSeconds = 0;
  private lastEmittedExt = Number.NEGATIVE_INFINITY;

  private readonly latency: LatencyWindow;
  private readonly counters = {
    framesIn: 0,
    framesWritten: 0,
    framesOut: 0,
    keyframesOut: 0,
    keyframeRequests: 0,
    keyframesForced: 0,
    keyframeNeededEvents: 0,
    restarts: 0,
    handovers: 0,
  };
  private readonly drops = { awaitingKeyframe: 0, overload: 0, notRunning: 0, noOutput: 0 };

  constructor(options: VideoTranscoderOptions) {
    super();
    this.codec = options.codec;
    this.framing = options.framing ?? defaultFraming(options.codec);
    createInputFramer(this.codec, this.framing); // rejects unsupported codec/framing pairs now, not at spawn
    this.ffmpegPath = options.ffmpegPath ?? resolveFfmpegPath();
    this.settings = {
      bitrateKbps: options.bitrateKbps ?? DEFAULT_ENCODER_SETTINGS.bitrateKbps,
      frameRate: options.frameRate ?? DEFAULT_ENCODER_SETTINGS.frameRate,
      gopFrames: options.gopFrames ?? DEFAULT_ENCODER_SETTINGS.gopFrames,
      threads: options.threads ?? DEFAULT_ENCODER_SETTINGS.threads,
      sliceMaxSize: options.sliceMaxSize ?? DEFAULT_ENCODER_SETTINGS.sliceMaxSize,
      vbvBufferMs: options.vbvBufferMs ?? DEFAULT_ENCODER_SETTINGS.vbvBufferMs,
      outputSize: options.outputSize,
    };
    this.targetBitrateKbps = this.settings.bitrateKbps;
    this.keyframeMinIntervalMs = options.keyframeMinIntervalMs ?? 500;
    this.restartPolicy = { ...RESTART_DEFAULTS, ...options.restart };
    this.maxInFlightFrames = options.maxInFlightFrames ?? 30;
    this.bitrateChangeThreshold = options.bitrateChangeThreshold ?? 0.15;
    this.maxReplayFrames = options.maxReplayFrames ?? 90;
    this.latency = new LatencyWindow(options.latencyWindow ?? 1000);
  }

  get currentState(): TranscoderState {
    return this.state;
  }

  /** The ffmpeg command line this transcoder runs (for logs and diagnostics). */
  commandLine(bitrateKbps: number = this.targetBitrateKbps): string[] {
    return [this.ffmpegPath, ...buildFfmpegArgs(createInputFramer(this.codec, this.framing), { ...this.settings, bitrateKbps })];
  }

  /** Starts ffmpeg. Rejects with FfmpegNotFoundError if it cannot be run. */
  async start(): Promise<void> {
    if (this.state !== "idle") throw new TranscoderClosedError(`cannot start a transcoder in state ${this.state}`);
    const slot = this.spawnSlot(this.targetBitrateKbps);
    this.active = slot;
    this.setState("awaiting-keyframe");
    this.starting = true;
    try {
      await slot.proc.ready;
      this.starting = false;
    } catch (err) {
      this.starting = false;
      // Not a crash to restart from: there is no ffmpeg to run.
      this.active = undefined;
      this.setState("failed");
      throw err;
    }
    this.usageTimer = setInterval(() => this.sampleUsage(), USAGE_SAMPLE_INTERVAL_MS);
    this.usageTimer.unref();
    this.keyframeNeeded("startup", performance.now(), true);
  }

  write(frame: TranscoderInputFrame): void {
    this.counters.framesIn++;
    if (this.state === "closed" || this.state === "failed" || this.state === "idle") {
      this.drops.notRunning++;
      return;
    }
    const now = performance.now();
    const startable = this.isStartable(frame);
    const ext = this.timelinePosition(frame.timestamp);
    this.remember(frame, ext, startable);
    if (this.state === "restarting") {
      this.drops.notRunning++;
      return;
    }
    const active = this.active!;
    this.feed(active, frame, ext, startable, now, true);
    this.feedStandby(frame, ext, startable, now);
  }

  /** Ask for an IDR as soon as the spacing allows (the encoder's own, not the sender's). */
  requestKeyframe(): void {
    this.counters.keyframeRequests++;
    if (this.framing === "annexb") {
      // No side channel into the encoder: an IDR follows the next input keyframe.
      this.keyframeNeeded("idr-request", performance.now());
      return;
    }
    this.forceRequested = true;
  }

  /** New target bitrate; see the file comment for when it takes effect. */
  setTargetBitrate(kbps: number): void {
    if (!(kbps > 0)) throw new RangeError(`bitrate must be positive, got ${kbps}`);
    this.targetBitrateKbps = kbps;
    const active = this.active;
    if (!active || this.framing === "annexb" || this.state === "closed" || this.state === "failed") return;
    // A handover already under way toward another rate is no longer wanted.
    if (this.standby && this.standby.bitrateKbps !== kbps) this.abandonStandby(false);
    if (Math.abs(kbps - active.bitrateKbps) / active.bitrateKbps < this.bitrateChangeThreshold) return;
    this.handoverNotBeforeMs = 0;
    if (!this.standby) this.keyframeNeeded("reconfigure", performance.now(), true);
  }

  stats(): VideoTranscoderStats {
    const live = [this.active, this.standby].filter((s): s is EncoderSlot => s !== undefined);
    const usage = live.map((s) => s.proc.usage());
    return {
      state: this.state,
      codec: this.codec,
      framing: this.framing,
      pid: this.active?.proc.pid,
      ...this.counters,
      framesDropped: { ...this.drops },
      bitrateKbps: this.active?.bitrateKbps ?? this.targetBitrateKbps,
      targetBitrateKbps: this.targetBitrateKbps,
      latencyMs: { p50: this.latency.percentile(50), p99: this.latency.percentile(99), samples: this.latency.count },
      cpuSeconds: this.retiredCpuSeconds + usage.reduce((sum, u) => sum + u.cpuSeconds, 0),
      rssBytes: usage.reduce((sum, u) => sum + u.rssBytes, 0),
      lastExit: this.lastExit?.message,
    };
  }

  /** Kills ffmpeg and frees its pipes; the transcoder cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.setState("closed");
    clearTimeout(this.restartTimer);
    clearInterval(this.usageTimer);
    const slots = [this.active, this.standby].filter((s): s is EncoderSlot => s !== undefined);
    this.active = undefined;
    this.standby = undefined;
    this.replay = [];
    await Promise.all(slots.map((slot) => this.retire(slot)));
  }

  /* ---------------------------------------------------------------------------------------------------------- */

  private spawnSlot(bitrateKbps: number): EncoderSlot {
    const slot = new EncoderSlot(this.ffmpegPath, this.codec, this.framing, { ...this.settings, bitrateKbps });
    slot.proc.on("packet", (packet) => this.onPacket(slot, packet));
    slot.proc.on("exit", (error) => {
      if (error) this.onUnexpectedExit(slot, error);
    });
    return slot;
  }

  /** A frame a fresh decoder can start from (AV1 also needs the sequence header in the same temporal unit). */
  private isStartable(frame: TranscoderInputFrame): boolean {
    if (frame.keyframe === false) return false;
    if (!isKeyframe(this.codec, frame.data)) return false;
    return this.codec !== "AV1" || hasAv1SequenceHeader(frame.data);
  }

  private remember(frame: TranscoderInputFrame, ext: number, startable: boolean): void {
    if (startable) this.replay = [{ frame, ext }];
    else if (this.replay.length > 0) this.replay.push({ frame, ext });
    if (this.replay.length > this.maxReplayFrames) this.replay = [];
  }

  private timelinePosition(timestamp: number): number {
    const ext = this.unwrap.unwrap(timestamp);
    if (!this.timeline) this.timeline = { offset: TIMELINE_START - ext, last: TIMELINE_START };
    let position = ext + this.timeline.offset;
    if (Math.abs(position - this.timeline.last) > MAX_TIMELINE_JUMP) {
      this.timeline.offset += this.timeline.last + 3000 - position;
      position = this.timeline.last + 3000;
    }
    if (position > this.timeline.last) this.timeline.last = position;
    return position;
  }

  /** Writes a frame into a slot if it may take it; `primary` marks the slot whose state the caller sees. */
  private feed(slot: EncoderSlot, frame: TranscoderInputFrame, ext: number, startable: boolean, now: number, primary: boolean): void {
    if (!slot.started || slot.overloaded) {
      const caughtUp = slot.framesInFlight <= this.maxInFlightFrames / 2;
      if (!startable || !caughtUp) {
        if (primary) {
          if (slot.overloaded) this.drops.overload++;
          else this.drops.awaitingKeyframe++;
          this.keyframeNeeded(slot.overloaded ? "overload" : this.counters.restarts > 0 ? "restart" : "startup", now);
        }
        return;
      }
      slot.started = true;
      slot.overloaded = false;
      if (primary) {
        // The first frame of a process comes out as an IDR anyway.
        this.forceRequested = false;
        this.setState("running");
      }
    }
    let force = false;
    if (slot.idrAfterExt !== undefined && ext > slot.idrAfterExt) {
      // The receiver holds the dead process's pictures, not this one's: restart its references here.
      slot.idrAfterExt = undefined;
      force = slot.framesInFlight > 0 || !startable;
    } else if (primary && this.forceRequested && now - this.lastForcedAtMs >= this.keyframeMinIntervalMs) {
      force = true;
      this.forceRequested = false;
      this.lastForcedAtMs = now;
      this.counters.keyframesForced++;
    }
    if (!primary && slot.warm && slot.switchAt === undefined) force = true;
    const key = slot.write(frame, ext, startable, force, now);
    if (!primary && force) {
      slot.switchAt = { key, ext };
      this.standbyForcedAtMs = now;
    }
    if (primary) this.counters.framesWritten++;
    if (slot.framesInFlight > this.maxInFlightFrames) {
      slot.overloaded = true;
      if (primary) this.keyframeNeeded("overload", now, true);
    }
  }

  private feedStandby(frame: TranscoderInputFrame, ext: number, startable: boolean, now: number): void {
    const active = this.active;
    if (!active || this.state !== "running") return;
    const wantsHandover =
      this.framing !== "annexb" &&
      Math.abs(this.targetBitrateKbps - active.bitrateKbps) / active.bitrateKbps >= this.bitrateChangeThreshold;
    if (!this.standby) {
      if (!wantsHandover || !startable || now < this.handoverNotBeforeMs) return;
      this.standby = this.spawnSlot(this.targetBitrateKbps);
      this.standby.proc.ready.catch(() => this.abandonStandby());
    }
    const standby = this.standby;
    const stuck = standby.switchAt
      ? now - this.standbyForcedAtMs > HANDOVER_TIMEOUT_MS
      : !standby.warm && now - standby.spawnedAtMs > STANDBY_WARMUP_TIMEOUT_MS;
    if (stuck) {
      this.abandonStandby();
      return;
    }
    this.feed(standby, frame, ext, startable, now, false);
  }

  private onPacket(slot: EncoderSlot, packet: EncodedPacket): void {
    if (slot !== this.active && slot !== this.standby) return;
    const { frame, skipped } = slot.match(packet);
    if (slot === this.active) this.drops.noOutput += skipped;
    if (!frame) return;
    const now = performance.now();
    const au: EncodedAccessUnit = {
      data: packet.data,
      timestamp: frame.timestamp,
      keyframe: packet.keyframe,
      writtenAtMs: frame.writtenAtMs,
      emittedAtMs: now,
      latencyMs: now - frame.writtenAtMs,
      arrivalMs: frame.arrivalMs,
    };

    if (slot === this.standby) {
      if (!slot.warm) slot.warm = true;
      if (slot.switchAt && frame.key === slot.switchAt.key && au.keyframe) this.switchOver(slot, { au, ext: frame.ext });
      return;
    }
    const switchAt = this.standby?.switchAt;
    if (switchAt && frame.ext >= switchAt.ext) {
      this.heldForSwitch.push({ au, ext: frame.ext });
      return;
    }
    this.emitAccessUnit({ au, ext: frame.ext });
  }

  private switchOver(standby: EncoderSlot, idr: PendingAccessUnit): void {
    const old = this.active!;
    this.active = standby;
    this.standby = undefined;
    this.heldForSwitch = [];
    standby.switchAt = undefined;
    this.counters.handovers++;
    void this.retire(old);
    this.emitAccessUnit(idr);
  }

  /** Drops the standby; the active process's held output goes out after all. */
  private abandonStandby(failed = true): void {
    const standby = this.standby;
    if (!standby) return;
    this.standby = undefined;
    if (failed) this.handoverNotBeforeMs = performance.now() + HANDOVER_RETRY_MS;
    this.releaseHeld();
    void this.retire(standby);
  }

  private releaseHeld(): void {
    const held = this.heldForSwitch;
    this.heldForSwitch = [];
    for (const pending of held) this.emitAccessUnit(pending);
  }

  private emitAccessUnit({ au, ext }: PendingAccessUnit): void {
    // A replayed frame the receiver already has from the previous process.
    if (ext <= this.lastEmittedExt) return;
    this.lastEmittedExt = ext;
    this.counters.framesOut++;
    if (au.keyframe) this.counters.keyframesOut++;
    this.latency.add(au.latencyMs);
    this.emit("access-unit", au);
  }

  private onUnexpectedExit(slot: EncoderSlot, error: FfmpegExitError): void {
    if (this.state === "closed" || this.state === "failed") return;
    // The first process failing to spawn is start()'s to report, not a death to restart from.
    if (this.starting) return;
    this.lastExit = error;
    this.retiredCpuSeconds += slot.proc.usage().cpuSeconds;
    if (slot === this.standby) {
      this.standby = undefined;
      this.handoverNotBeforeMs = performance.now() + HANDOVER_RETRY_MS;
      this.releaseHeld();
      this.countRestart();
      return;
    }
    if (slot !== this.active) return;
    this.active = undefined;
    if (this.standby) this.abandonStandby();
    const now = performance.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < this.restartPolicy.windowMs);
    if (this.restartTimes.length >= this.restartPolicy.maxRestarts) {
      const failure = new TranscoderFailedError(this.counters.restarts, error);
      this.setState("failed");
      clearInterval(this.usageTimer);
      this.emit("failed", failure);
      return;
    }
    const attempt = this.restartTimes.length;
    const { initialDelayMs, backoffBaseMs, maxDelayMs } = this.restartPolicy;
    const delayMs = Math.min(maxDelayMs, attempt === 0 ? initialDelayMs : backoffBaseMs * 2 ** (attempt - 1));
    this.countRestart();
    this.setState("restarting");
    this.emit("restart", { attempt: attempt + 1, delayMs, cause: error });
    this.restartTimer = setTimeout(() => this.restartNow(), delayMs);
  }

  private countRestart(): void {
    this.restartTimes.push(performance.now());
    this.counters.restarts++;
  }

  private restartNow(): void {
    if (this.state !== "restarting") return;
    const slot = this.spawnSlot(this.targetBitrateKbps);
    this.active = slot;
    this.setState("awaiting-keyframe");
    // A binary that vanished fails through the exit event like any other death, within the same budget.
    slot.proc.ready.catch(() => {});
    // Replay the frames since the last keyframe, so the stream continues without a round trip to the sender.
    // Without the pts side channel the first new picture could not be made an IDR: wait for the sender then.
    const replay = this.framing === "annexb" ? [] : this.replay;
    if (replay.length === 0) {
      this.keyframeNeeded("restart", performance.now(), true);
      return;
    }
    slot.idrAfterExt = this.lastEmittedExt;
    const now = performance.now();
    for (const { frame, ext } of replay) this.feed(slot, frame, ext, this.isStartable(frame), now, true);
  }

  private keyframeNeeded(reason: KeyframeNeededReason, now: number, immediate = false): void {
    if (!immediate && now - this.lastKeyframeNeededAtMs < this.keyframeMinIntervalMs) return;
    this.lastKeyframeNeededAtMs = now;
    this.counters.keyframeNeededEvents++;
    this.emit("keyframe-needed", { reason });
  }

  private async retire(slot: EncoderSlot): Promise<void> {
    const cpu = slot.proc.usage().cpuSeconds;
    await slot.proc.kill();
    this.retiredCpuSeconds += Math.max(cpu, slot.proc.usage().cpuSeconds);
  }

  /** Once a second: CPU sampling (a crashed process's /proc entry is gone) and the hang watchdog. */
  private sampleUsage(): void {
    const now = performance.now();
    for (const slot of [this.active, this.standby]) {
      if (!slot) continue;
      slot.proc.usage();
      const oldest = slot.oldestInFlight;
      if (oldest && now - oldest.writtenAtMs > STALL_TIMEOUT_MS && now - slot.lastOutputAtMs > STALL_TIMEOUT_MS) {
        slot.proc.abort(`no output for ${Math.round(now - slot.lastOutputAtMs)} ms with ${slot.framesInFlight} frames in`);
      }
    }
  }

  private setState(to: TranscoderState): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.emit("state-change", { from, to });
  }
}
