/** VideoTranscoder against ffmpeg stand-ins that crash or hang, to exercise restarts, the budget and the watchdog. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TranscoderFailedError } from "../../transcode/video/errors.js";
import { VideoTranscoder, type TranscoderState } from "../../transcode/video/transcoder.js";
import { encodeSample, requireFfmpeg, type EncodedSample } from "../unit/video-samples.js";

let dir: string;
let sample: EncodedSample;

function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe("VideoTranscoder failure handling", () => {
  beforeAll(async () => {
    requireFfmpeg();
    dir = mkdtempSync(join(tmpdir(), "video-fail-"));
    sample = await encodeSample("VP8", { width: 320, height: 240, frames: 10, gop: 10 });
  }, 60_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("restarts an ffmpeg that keeps dying with growing delays, then fails with a typed error", async () => {
    const crash = script("crash.sh", 'echo "codec exploded" >&2; exit 3');
    const transcoder = new VideoTranscoder({ codec: "VP8", ffmpegPath: crash, restart: { maxRestarts: 3, initialDelayMs: 20, backoffBaseMs: 40, maxDelayMs: 1000 } });
    const restarts: Array<{ attempt: number; delayMs: number }> = [];
    const states: TranscoderState[] = [];
    transcoder.on("restart", ({ attempt, delayMs }) => restarts.push({ attempt, delayMs }));
    transcoder.on("state-change", ({ to }) => states.push(to));
    const failed = new Promise<TranscoderFailedError>((resolve) => transcoder.on("failed", resolve));
    await transcoder.start();
    const error = await failed;
    expect(error).toBeInstanceOf(TranscoderFailedError);
    expect(error.lastExit?.code).toBe(3);
    expect(error.lastExit?.stderrTail).toContain("codec exploded");
    expect(restarts).toEqual([
      { attempt: 1, delayMs: 20 },
      { attempt: 2, delayMs: 40 },
      { attempt: 3, delayMs: 80 },
    ]);
    expect(transcoder.currentState).toBe("failed");
    expect(states).toContain("restarting");
    expect(transcoder.stats().lastExit).toContain("code 3");
    transcoder.write({ data: sample.frames[0]!, timestamp: 0 });
    expect(transcoder.stats().framesDropped.notRunning).toBe(1);
    await transcoder.close();
  });

  it("kills and restarts an ffmpeg that takes frames but never answers", async () => {
    const hang = script("hang.sh", "exec cat > /dev/null");
    const transcoder = new VideoTranscoder({ codec: "VP8", ffmpegPath: hang });
    const causes: string[] = [];
    transcoder.on("restart", ({ cause }) => causes.push(cause.message));
    await transcoder.start();
    const t0 = performance.now();
    for (let i = 0; causes.length === 0 && performance.now() - t0 < 8000; i++) {
      transcoder.write({ data: sample.frames[i % sample.frames.length]!, timestamp: i * 3000 });
      await sleep(33);
    }
    expect(causes.length).toBe(1);
    expect(causes[0]).toContain("no output");
    expect(performance.now() - t0).toBeGreaterThan(3000);
    await transcoder.close();
  }, 15_000);
});
