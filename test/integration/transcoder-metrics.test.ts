import { describe, expect, it } from "vitest";
import { GatewayMetrics } from "../../gateway/metrics.js";
import { FfmpegProcess, ffmpegTotals } from "../../transcode/video/ffmpeg-process.js";
import { sleep, waitFor } from "../support/harness.js";

describe("transcoder processes in the metrics", () => {
  it("counts a real ffmpeg while it runs and keeps its CPU time after it stops", async () => {
    const metrics = new GatewayMetrics({
      registry: () => ({ active: 0, started: 0, ended: {} }),
      // The other sources are not what this test reads; zeros keep their collectors quiet.
      manager: () =>
        ({ eventsHandled: 0, duplicatesDropped: 0, staleDropped: 0, unknownCallEvents: 0, otherPageDropped: 0, admissionRejected: 0, sipRefused: 0, transfers: { succeeded: 0, failed: 0, refused: 0 }, holds: 0, sessionRefreshes: 0 }) as never,
      graph: () => ({ requests: {}, errors: {}, latencyMs: {} }) as never,
      transcoders: () => ffmpegTotals(),
    });
    const value = async (name: string): Promise<number> => {
      const text = (await metrics.exposition()).body;
      return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    };
    const before = ffmpegTotals();
    // Busy work for ffmpeg: encode a generated picture to nowhere.
    const p = FfmpegProcess.spawn("ffmpeg", ["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=30", "-c:v", "libx264", "-preset", "medium", "-f", "null", "-"]);
    await p.ready;
    expect(await value("gateway_transcoder_processes")).toBe(before.running + 1);
    expect(await value("gateway_transcoder_processes_started_total")).toBeGreaterThanOrEqual(1);
    await sleep(1500);
    await waitFor(() => p.usage().cpuSeconds > 0.2, 5000, "ffmpeg to use some CPU");
    const during = await value("gateway_transcoder_cpu_seconds_total");
    expect(during).toBeGreaterThan(0.2);
    await p.kill();
    expect(ffmpegTotals().running).toBe(before.running);
    expect(await value("gateway_transcoder_processes")).toBe(before.running);
    // Its CPU time stays counted once it is gone.
    expect(await value("gateway_transcoder_cpu_seconds_total")).toBeGreaterThanOrEqual(during);
  }, 20_000);
});
