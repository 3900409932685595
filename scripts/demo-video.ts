/**
 * The video half of `npm run demo -- --video <codec>`: the consumer's camera plays ffmpeg's testsrc2
 * pattern (every frame shows its number) in the chosen codec, the SIP video phone sends its own
 * colour bars back as H.264, and both ends' decoded pictures are written as PNGs.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_CLIP,
  SIM_VIDEO_CODECS,
  decodeVideoFrames,
  imageColours,
  imageThumbnail,
  loadVideoClip,
  thumbnailDistance,
  videoThumbnails,
  writeVideoFramePng,
  type ReceivedVideoFrame,
  type SentVideoStats,
  type SimCall,
  type SimVideoCodec,
  type Thumbnails,
} from "../sim/index.js";
import { VIDEO_CLOCK_RATE } from "../transcode/video/video-codec.js";
import type { Baresip, BaresipVideoStats } from "./peers/baresip.js";

/** Where the PNGs go; the same path on every run, so a viewer left open shows the latest. */
export const VIDEO_OUTPUT_DIR = join(tmpdir(), "meta-sip-gateway-demo");

/** How long video runs after the camera turns on. */
const VIDEO_MS = 4000;
/** Gap between the phone snapshots taken to measure per-frame latency. */
const SAMPLE_GAP_MS = 300;
/** A receiver with frames but no keyframe asks for one after this long, and again after the retry gap. */
const KEYFRAME_WAIT_MS = 200;
const KEYFRAME_RETRY_MS = 500;
/** How long to wait for the first decoded frame at either end. */
const FIRST_FRAME_TIMEOUT_MS = 10_000;
/** Frames each end must decode for video to count as flowing (about a second at the phone's 15 fps). */
const MIN_FRAMES = 15;
/** Thumbnail size for telling clip frames apart: 16:9 like the clip, small enough to compare 120 frames at once. */
const THUMB_W = 160;
const THUMB_H = 90;
/**
 * Thumbnail distances (see thumbnailDistance): re-encoding on the way leaves about 0.01 between a
 * picture and its clip frame, neighbouring clip frames are 0.035 apart and frames 2 s apart 0.09, a
 * picture of something else is over 1. Below PATTERN_DISTANCE a picture shows the test pattern; it names
 * one frame when no other frame comes within CLEAR_MATCH times as close.
 */
const PATTERN_DISTANCE = 0.3;
const CLEAR_MATCH = 0.6;

export class UsageError extends Error {}

/** The codec named by `--video <codec>` (or `--video=<codec>`), undefined without the option. */
export function videoCodecOption(argv: readonly string[]): SimVideoCodec | undefined {
  const names = SIM_VIDEO_CODECS.map((c) => c.toLowerCase()).join("|");
  const index = argv.findIndex((a) => a === "--video" || a.startsWith("--video="));
  if (index < 0) return undefined;
  const arg = argv[index]!;
  const name = (arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[index + 1] ?? "").toUpperCase();
  const codec = SIM_VIDEO_CODECS.find((c) => c === name);
  if (!codec) throw new UsageError(`usage: npm run demo -- --video <${names}>`);
  return codec;
}

/** Epoch milliseconds with sub-millisecond resolution, comparable with file timestamps. */
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface FrameSend {
  /** Position in the clip, which is the number the frame shows. */
  index: number;
  at: number;
}

/**
 * When each frame of the clip left the consumer. The simulator's sender only counts what it sends, so its
 * counters are read every millisecond: a new frame is the next clip position, a keyframe is position 0
 * (the clip's only keyframe is its first frame, sent again when the clip loops or on a keyframe request).
 * When a keyframe and other frames show up in the same reading, the keyframe's RTP timestamp says where
 * among them it was.
 */
class ClipSendLog {
  readonly sends: FrameSend[] = [];
  firstAt: number | undefined;
  private frames = 0;
  private keyframes = 0;
  /** Clip position and RTP timestamp of the last frame sent; undefined while not known. */
  private index: number | undefined;
  private timestamp: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => SentVideoStats | undefined,
    /** RTP clock ticks from one frame to the next. */
    private readonly frameTicks: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poll(), 1);
  }

  stop(): void {
    clearInterval(this.timer);
    this.poll();
  }

  /** When the frame showing `index` was last sent before `before`. */
  sentAt(index: number, before: number): number | undefined {
    for (let i = this.sends.length - 1; i >= 0; i--) {
      const send = this.sends[i]!;
      if (send.index === index && send.at <= before) return send.at;
    }
    return undefined;
  }

  private poll(): void {
    const stats = this.read();
    if (!stats || stats.framesSent <= this.frames) return;
    const at = now();
    const fresh = stats.framesSent - this.frames;
    const keys = stats.keyframesSent - this.keyframes;
    this.frames = stats.framesSent;
    this.keyframes = stats.keyframesSent;
    this.firstAt ??= at;
    const push = (index: number): void => void this.sends.push({ index, at });
    if (keys === 0) {
      if (this.index !== undefined) for (let i = 0; i < fresh; i++) push((this.index += 1));
      if (this.timestamp !== undefined) this.timestamp = (this.timestamp + fresh * this.frameTicks) >>> 0;
      return;
    }
    const keyTimestamp = stats.lastKeyframeTimestamp;
    const place = keys === fresh ? fresh : this.keyframePlace(keyTimestamp, fresh);
    if (place === undefined || keyTimestamp === undefined) {
      this.index = undefined;
      this.timestamp = undefined;
      return;
    }
    // Frames before the last keyframe of this reading: all keyframes, or known only when it is the only one.
    if (keys === fresh) for (let i = 1; i < fresh; i++) push(0);
    else if (keys === 1 && this.index !== undefined) for (let i = 1; i < place; i++) push(this.index + i);
    for (let i = place; i <= fresh; i++) push(i - place);
    this.index = fresh - place;
    this.timestamp = (keyTimestamp + (fresh - place) * this.frameTicks) >>> 0;
  }

  /** 1-based place among `fresh` new frames of the keyframe with this RTP timestamp, from the last known timestamp. */
  private keyframePlace(keyTimestamp: number | undefined, fresh: number): number | undefined {
    if (this.timestamp === undefined || keyTimestamp === undefined) return undefined;
    const steps = ((keyTimestamp - this.timestamp) >>> 0) / this.frameTicks;
    return Number.isInteger(steps) && steps >= 1 && steps <= fresh ? steps : undefined;
  }
}

interface PhoneSnapshot {
  file: string;
  /** When the phone's snapshot filter created the file, right after decoding the frame. */
  at: number;
}

interface Identified {
  index: number;
  distance: number;
  /** Distance of the next closest frame. */
  runnerUp: number;
}

/** What one run recorded, for the report. */
interface VideoRun {
  answeredStatus: number;
  onAt: number;
  answeredAt: number;
  firstPhoneFrame: PhoneSnapshot | undefined;
  samples: PhoneSnapshot[];
  /** When the consumer sent a PLI because no keyframe had come. */
  keyframeRequests: number[];
  phone: BaresipVideoStats | undefined;
  sent: SentVideoStats | undefined;
  received: readonly ReceivedVideoFrame[];
  receivedAnnexB: Buffer;
}

type Out = (s: string) => void;
/** Continuation lines line up under the text of the labelled ones. */
const INDENT = " ".repeat(17);

/**
 * The video part of one demo call against a baresip video phone: camera on, first frames at both ends,
 * phone snapshots for the per-frame latency, and afterwards the report and the PNGs.
 */
export class VideoDemo {
  private run: VideoRun | undefined;
  private sendLog: ClipSendLog | undefined;

  private constructor(
    readonly codec: SimVideoCodec,
    private readonly clip: Thumbnails,
    private readonly workDir: string,
  ) {}

  /**
   * Encodes the consumer's clip before the call (the simulator caches it, so turning the camera on later
   * costs no encoding) and decodes it once into thumbnails to recognise its frames at the phone.
   */
  static async prepare(codec: SimVideoCodec): Promise<VideoDemo> {
    const clip = await loadVideoClip({ codec, ...DEFAULT_CLIP });
    const thumbs = await videoThumbnails(codec, clip.frames, THUMB_W, THUMB_H);
    if (thumbs.frames.length !== clip.frames.length) {
      throw new Error(`the ${codec} clip decoded to ${thumbs.frames.length} of its ${clip.frames.length} frames`);
    }
    mkdirSync(VIDEO_OUTPUT_DIR, { recursive: true });
    return new VideoDemo(codec, thumbs, mkdtempSync(join(tmpdir(), "demo-video-")));
  }

  get phonePng(): string {
    return join(VIDEO_OUTPUT_DIR, `${this.codec.toLowerCase()}-at-phone.png`);
  }

  get consumerPng(): string {
    return join(VIDEO_OUTPUT_DIR, `${this.codec.toLowerCase()}-at-consumer.png`);
  }

  /** Camera on, then VIDEO_MS of video with phone snapshots along the way; the call stays up. */
  async start(call: SimCall, phone: Baresip, controlPort: number): Promise<void> {
    const consumer = call.consumer;
    const sendLog = new ClipSendLog(() => consumer.videoStats.sent, VIDEO_CLOCK_RATE / DEFAULT_CLIP.fps);
    this.sendLog = sendLog;
    sendLog.start();
    const keyframeRequests: number[] = [];
    // The consumer decodes nothing until a keyframe comes; like a WebRTC receiver it asks for one (PLI).
    const asker = setInterval(() => {
      const received = consumer.videoStats.received;
      const t = now();
      if (received.keyframes > 0 || received.firstPacketAt === undefined || t < received.firstPacketAt + KEYFRAME_WAIT_MS) return;
      const last = keyframeRequests.at(-1);
      if ((last === undefined || t - last >= KEYFRAME_RETRY_MS) && consumer.requestKeyframe()) keyframeRequests.push(t);
    }, 20);
    try {
      // Armed before the camera turns on, so the first frame the phone decodes is the one saved.
      const firstFile = join(this.workDir, "first.png");
      await phone.snapshotReceived(controlPort, firstFile);
      const onAt = now();
      const answeredStatus = await call.startVideo({ codec: this.codec });
      const answeredAt = now();
      const consumerFirst = consumer.waitForVideoFrames(1, FIRST_FRAME_TIMEOUT_MS).catch(() => undefined);
      const firstPhoneFrame = await waitForSnapshot(phone, firstFile, FIRST_FRAME_TIMEOUT_MS);
      const samples: PhoneSnapshot[] = [];
      for (let i = 0; firstPhoneFrame && now() < onAt + VIDEO_MS - SAMPLE_GAP_MS; i++) {
        await sleep(SAMPLE_GAP_MS);
        const file = join(this.workDir, `sample-${i}.png`);
        await phone.snapshotReceived(controlPort, file);
        const snap = await waitForSnapshot(phone, file, 2000);
        if (snap) samples.push(snap);
      }
      await consumerFirst;
      const received = (): { framesDepacketized: number; keyframes: number } => consumer.videoStats.received;
      while (received().framesDepacketized > 0 && received().keyframes === 0 && now() < onAt + FIRST_FRAME_TIMEOUT_MS) await sleep(20);
      this.run = {
        answeredStatus,
        onAt,
        answeredAt,
        firstPhoneFrame,
        samples,
        keyframeRequests,
        phone: await phone.videoStats(controlPort),
        sent: consumer.videoStats.sent,
        received: [...consumer.receivedVideoFrames()],
        receivedAnnexB: consumer.receivedVideoAnnexB("H264"),
      };
    } finally {
      clearInterval(asker);
      sendLog.stop();
    }
  }

  /** Prints what happened and writes the PNGs; true when video went both ways. */
  async report(out: Out): Promise<boolean> {
    const run = this.run;
    if (!run || !this.sendLog) {
      out("\nconsumer camera  never turned on");
      return false;
    }
    const { width, height, fps } = DEFAULT_CLIP;
    out(
      `\nconsumer camera  ${this.codec} ${width}x${height} at ${fps} fps (test pattern showing frame numbers);` +
        ` media_update answered ${run.answeredStatus} after ${this.after(run.answeredAt)}`,
    );
    const toPhone = await this.reportToPhone(run, this.sendLog, out);
    const toConsumer = await this.reportToConsumer(run, out);
    const phonePng = toPhone.png ? `${this.phonePng} (${toPhone.png})` : "none: no picture the phone decoded matched the consumer's test pattern";
    out(`phone PNG        ${phonePng}`);
    out(`consumer PNG     ${toConsumer.png ? `${this.consumerPng} (${toConsumer.png})` : "none"}`);
    return run.answeredStatus === 200 && toPhone.ok && toConsumer.ok;
  }

  /** Removes the phone's snapshots; the PNGs in VIDEO_OUTPUT_DIR stay. */
  dispose(): void {
    rmSync(this.workDir, { recursive: true, force: true });
  }

  private after(at: number | undefined): string {
    return at === undefined || !this.run ? "-" : `${Math.round(at - this.run.onAt)} ms`;
  }

  private async reportToPhone(run: VideoRun, sendLog: ClipSendLog, out: Out): Promise<{ ok: boolean; png: string | undefined }> {
    const first = run.firstPhoneFrame;
    const decoded = run.phone?.framesDisplayed ?? 0;
    const firstDecoded = first ? `after ${this.after(first.at)}` : `: none within ${FIRST_FRAME_TIMEOUT_MS} ms`;
    out(`consumer → phone first frame sent after ${this.after(sendLog.firstAt)}, first frame decoded at the phone ${firstDecoded}`);
    out(
      `consumer → phone ${run.sent?.framesSent ?? 0} ${this.codec} frames sent by the consumer,` +
        ` ${decoded} H.264 frames decoded by the phone (${plural(run.phone?.keyframesReceived ?? 0, "keyframe")})`,
    );

    const latencies: number[] = [];
    let shown: { snap: PhoneSnapshot; index: number } | undefined;
    for (const snap of [...(first ? [first] : []), ...run.samples]) {
      const frame = identify(await imageThumbnail(snap.file, THUMB_W, THUMB_H), this.clip);
      if (frame.distance > PATTERN_DISTANCE) continue;
      shown = { snap, index: frame.index };
      // The first frame waited for the phone's re-INVITE and the video path to start: it is reported above instead.
      const clear = frame.distance < CLEAR_MATCH * frame.runnerUp;
      const sentAt = snap === first || !clear ? undefined : sendLog.sentAt(frame.index, snap.at);
      if (sentAt !== undefined) latencies.push(snap.at - sentAt);
    }
    if (latencies.length > 0) {
      const p = percentiles(latencies);
      out(`consumer → phone frame latency p50 ${p.p50.toFixed(1)} ms, min ${p.min.toFixed(1)}, max ${p.max.toFixed(1)} over ${latencies.length} frames:`);
      out(`${INDENT}from the consumer handing a frame to its RTP sender to the phone's decoder output, frames told`);
      out(`${INDENT}apart by the number each shows; includes the one frame the phone's jitter buffer holds`);
      out(`${INDENT}(${(1000 / DEFAULT_CLIP.fps).toFixed(0)} ms); phone times are its snapshot files' creation, stamped by the kernel to a few ms`);
    }
    if (!shown) return { ok: false, png: undefined };
    copyFileSync(shown.snap.file, this.phonePng);
    return { ok: decoded >= MIN_FRAMES, png: `the consumer's test pattern, frame ${shown.index}` };
  }

  private async reportToConsumer(run: VideoRun, out: Out): Promise<{ ok: boolean; png: string | undefined }> {
    const frames = run.received;
    const captured = run.phone ? `${run.phone.framesCaptured} frames from the phone's camera` : "the phone's camera frames unknown";
    if (frames.length === 0 || run.receivedAnnexB.length === 0) {
      out(`phone → consumer no video reached the consumer within ${FIRST_FRAME_TIMEOUT_MS} ms of the camera turning on (${captured})`);
      return { ok: false, png: undefined };
    }
    const asked = run.keyframeRequests;
    const pli = asked.length === 0 ? "" : ` (the consumer asked for one: ${plural(asked.length, "PLI")}, the first after ${this.after(asked[0])})`;
    const firstKey = frames.find((f) => f.keyframe);
    out(`phone → consumer first frame at the consumer after ${this.after(frames[0]!.receivedAt)}, first keyframe after ${this.after(firstKey?.receivedAt)}${pli}`);
    const decoded = await decodeVideoFrames("H264", run.receivedAnnexB);
    out(`phone → consumer ${captured}, ${frames.length} H.264 frames received by the consumer, ${decoded.frames} decoded by ffmpeg`);
    if (frames.length > 1) {
      const p = percentiles(delayVariation(frames));
      out(`phone → consumer delay variation p50 ${p.p50.toFixed(1)} ms, max ${p.max.toFixed(1)} over ${frames.length} frames: arrival against the phone's`);
      out(`${INDENT}RTP timestamps; the delay itself is not measurable, the phone's camera repeats one still picture`);
    }
    if (decoded.frames === 0) return { ok: false, png: undefined };
    await writeVideoFramePng("H264", run.receivedAnnexB, this.consumerPng);
    const bars = existsSync(this.consumerPng) && showsColourBars(await imageColours(this.consumerPng, 3, 1));
    return { ok: bars && decoded.frames >= MIN_FRAMES, png: bars ? "the phone's red, green and blue bars" : "not the phone's colour bars" };
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function percentiles(values: readonly number[]): { p50: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: sorted[Math.floor((sorted.length - 1) / 2)]!, min: sorted[0]!, max: sorted.at(-1)! };
}

/**
 * Each frame's arrival minus its RTP timestamp (the phone's capture clock), less the smallest such
 * difference: how much later than the quickest frame each one came.
 */
function delayVariation(frames: readonly ReceivedVideoFrame[]): number[] {
  const base = frames[0]!.timestamp;
  const ticksPerMs = VIDEO_CLOCK_RATE / 1000;
  const delays = frames.map((f) => f.receivedAt - ((f.timestamp - base) >>> 0) / ticksPerMs);
  const quickest = Math.min(...delays);
  return delays.map((d) => d - quickest);
}

/** Waits for the phone to finish writing a snapshot it was asked for; undefined when none comes. */
async function waitForSnapshot(phone: Baresip, file: string, timeoutMs: number): Promise<PhoneSnapshot | undefined> {
  const deadline = Date.now() + timeoutMs;
  // Its log line comes after the PNG is complete; the file alone may still be half written.
  while (!phone.log.includes(`png: wrote ${file}`)) {
    if (Date.now() > deadline) return undefined;
    await sleep(5);
  }
  const stat = statSync(file);
  // Creation is when the phone started saving the decoded frame; without a birth time the last write is next best.
  return { file, at: stat.birthtimeMs > 0 ? stat.birthtimeMs : stat.mtimeMs };
}

/** The clip frame a picture is closest to. */
function identify(thumb: Buffer, clip: Thumbnails): Identified {
  let best: Identified = { index: -1, distance: Infinity, runnerUp: Infinity };
  clip.frames.forEach((frame, index) => {
    const distance = thumbnailDistance(thumb, frame);
    if (distance < best.distance) best = { index, distance, runnerUp: best.distance };
    else if (distance < best.runnerUp) best = { ...best, runnerUp: distance };
  });
  return best;
}

/** baresip's fakevideo camera: red, green and blue vertical thirds. */
function showsColourBars(rgb: Buffer): boolean {
  const dominant = (cell: number, channel: number): boolean => {
    const c = [rgb[cell * 3]!, rgb[cell * 3 + 1]!, rgb[cell * 3 + 2]!];
    return c[channel]! > 150 && c.every((v, i) => i === channel || v < 100);
  };
  return dominant(0, 0) && dominant(1, 1) && dominant(2, 2);
}
