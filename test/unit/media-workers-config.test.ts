import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../gateway/config/config.js";
import { workerConfig, workerCount } from "../../gateway/workers/worker-share.js";

const base = { META_APP_SECRET: "s3cret", META_VERIFY_TOKEN: "verify-me", META_PAGE_ID: "1234567890", META_PAGE_ACCESS_TOKEN: "EAAtoken" };

describe("MEDIA_WORKERS", () => {
  it("defaults to one worker per core; auto says the same; a number is taken as given", () => {
    expect(loadConfig(base).media.workers).toBe(Math.min(64, availableParallelism()));
    expect(loadConfig({ ...base, MEDIA_WORKERS: "auto" }).media.workers).toBe(Math.min(64, availableParallelism()));
    expect(loadConfig({ ...base, MEDIA_WORKERS: "1" }).media.workers).toBe(1);
    expect(loadConfig({ ...base, MEDIA_WORKERS: "8" }).media.workers).toBe(8);
  });

  it("refuses anything else, naming the setting", () => {
    for (const bad of ["0", "65", "-2", "two", "1.5"]) expect(() => loadConfig({ ...base, MEDIA_WORKERS: bad })).toThrow(/MEDIA_WORKERS/);
  });
});

describe("each worker's share", () => {
  const config = loadConfig({ ...base, MEDIA_WORKERS: "3", RTP_PORT_MIN: "10000", RTP_PORT_MAX: "10999", MAX_CONCURRENT_CALLS: "100" });

  it("splits the media ports into disjoint slices that cover the range", () => {
    const slices = [0, 1, 2].map((i) => workerConfig(config, i, 3).media);
    expect(slices.map((m) => [m.rtpPortMin, m.rtpPortMax])).toEqual([
      [10000, 10332],
      [10333, 10665],
      [10666, 10999],
    ]);
    for (const m of slices) expect(m.workers).toBe(1);
  });

  it("leaves MAX_CONCURRENT_CALLS, SIP_MAX_CALLS_PER_SECOND and cluster membership to the owner, for the whole process", () => {
    const w = workerConfig({ ...config, cluster: { redisUrl: "redis://127.0.0.1:6379" } as never }, 1, 3);
    expect(w.calls.maxConcurrent).toBe(100);
    expect(w.limits.sip.callsPerSecond).toBe(0);
    expect(w.cluster).toBeUndefined();
    // The rest of the configuration is the owner's, unchanged.
    expect(w.meta).toBe(config.meta);
    expect(w.sip).toBe(config.sip);
  });

  it("runs fewer workers than asked when the port range is too small to give each 16 ports", () => {
    expect(workerCount(config)).toBe(3);
    expect(workerCount(loadConfig({ ...base, MEDIA_WORKERS: "8", RTP_PORT_MIN: "20000", RTP_PORT_MAX: "20047" }))).toBe(3);
    expect(workerCount(loadConfig({ ...base, MEDIA_WORKERS: "8", RTP_PORT_MIN: "20000", RTP_PORT_MAX: "20010" }))).toBe(1);
  });
});
