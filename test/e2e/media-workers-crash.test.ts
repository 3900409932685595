import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Worker } from "node:worker_threads";
import { MetaSimulator, type SimCall } from "../../sim/index.js";
import { loadConfig } from "../../gateway/config/config.js";
import { createLogger } from "../../gateway/log.js";
import { buildGatewayOnce, loopbackGatewayEnv } from "../support/cluster.js";
import { graphRequests, LogCapture, sleep, TEST_APP_SECRET, TEST_PAGE_ID, TEST_PAGE_TOKEN, waitFor } from "../support/harness.js";
import { describe as describeSipp, freePort, killAllSipp, requireSipp, startEchoPbx, type SippProcess } from "../support/sipp.js";

/** The worker pool as built (dist/): its workers load dist/gateway/workers/media-worker.js. */
interface Pool {
  start(): Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
  threads(): readonly Worker[];
  readonly httpAddress: { port: number };
}

/**
 * A media worker thread that dies mid-call (ended from outside, as a crash would end it): its calls
 * are ended at Meta and at the PBX, the process and the other worker's calls go on, /readyz is 503
 * until a new worker is up, and the new worker takes calls.
 */
describe("a media worker that dies", () => {
  let sim: MetaSimulator;
  let pbx: SippProcess;
  let pool: Pool;
  const logs = new LogCapture();

  beforeAll(async () => {
    requireSipp();
    buildGatewayOnce();
    sim = await MetaSimulator.start({ appSecret: TEST_APP_SECRET, pageId: TEST_PAGE_ID, pageAccessToken: TEST_PAGE_TOKEN });
    const pbxPort = await freePort();
    pbx = await startEchoPbx(pbxPort, 10);
    const config = loadConfig({
      ...loopbackGatewayEnv({ graphUrl: sim.graphUrl, httpPort: 0, rtp: [47800, 48399], pbxPort, sipPort: 0 }),
      MEDIA_WORKERS: "2",
    });
    // The built module: its workers start from dist/gateway/workers/media-worker.js beside it.
    const built: string = "../../dist/gateway/workers/worker-pool-gateway.js";
    const { WorkerPoolGateway } = (await import(built)) as { WorkerPoolGateway: new (c: typeof config, l: ReturnType<typeof createLogger>, n: number, sink: (line: string) => void) => Pool };
    pool = new WorkerPoolGateway(config, createLogger("info", logs), 2, (line) => logs.write(line));
    await pool.start();
    sim.setWebhookUrl(`http://127.0.0.1:${pool.httpAddress.port}/webhooks/meta`);
  }, 60_000);

  afterAll(async () => {
    await pool?.stop(0);
    await killAllSipp();
    await sim?.stop();
  });

  const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${pool.httpAddress.port}/readyz`)).status;

  it("ends the dead worker's calls on both legs, keeps the other worker's, and a new worker takes calls", async () => {
    const calls: SimCall[] = [await sim.placeCall({ toneHz: 500 }), await sim.placeCall({ toneHz: 700 })];
    await Promise.all(calls.map((c) => c.waitForState("media", 15_000)));
    expect(await readyz()).toBe(200);

    await pool.threads()[0]!.terminate();
    await waitFor(() => logs.find("media worker exited: its calls are ended").length > 0, 5000, "the owner to notice");
    expect(logs.find("media worker exited: its calls are ended")[0]?.calls).toBe(1);
    // One call was on worker 0 (new calls go to the least loaded worker): it is ended at Meta.
    await waitFor(() => calls.some((c) => graphRequests(sim, "terminate", c.id).length === 1), 10_000, "the lost call's terminate at Meta");
    const [lost, kept] = graphRequests(sim, "terminate", calls[0]!.id).length === 1 ? [calls[0]!, calls[1]!] : [calls[1]!, calls[0]!];
    await lost.waitForState("ended", 5000);
    expect(graphRequests(sim, "terminate", kept.id)).toHaveLength(0);
    expect(kept.state).not.toBe("ended");
    // The kept call's audio still goes both ways through its worker.
    const heard = kept.consumer.detectTone(1);
    expect(Math.abs(heard.hz - (kept === calls[0] ? 500 : 700))).toBeLessThan(10);

    let ready = 0;
    await waitFor(() => {
      void readyz().then((s) => (ready = s));
      return ready === 200;
    }, 10_000, "a new worker to be up");
    const fresh = await sim.placeCall();
    await fresh.waitForState("media", 15_000);
    for (const c of [kept, fresh]) await c.hangup();
    await Promise.all([kept, fresh].map((c) => c.waitForState("ended", 5000)));
    // The PBX got a BYE for the lost call at once: the first BYE it saw is for one of the first two
    // calls' dialogs, sent before the kept call was hung up.
    // (The BYEs of the last two calls get a moment to be answered, or their transactions would
    // wait out their timers at stop.)
    await sleep(500);
    await pbx.kill();
    const r = await pbx.done;
    const callIdAfter = (re: RegExp): string[] => [...r.messages.matchAll(re)].map((m) => m[1]!);
    const invited = callIdAfter(/^\s*INVITE sip:[^\n]*\n(?:[^\n]+\n)*?\s*Call-ID: *(\S+)/gim);
    const byed = callIdAfter(/^\s*BYE sip:[^\n]*\n(?:[^\n]+\n)*?\s*Call-ID: *(\S+)/gim);
    expect(byed.length, describeSipp(r)).toBeGreaterThanOrEqual(1);
    expect(invited.slice(0, 2), describeSipp(r)).toContain(byed[0]);
  });
});
