import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MetaSimulator } from "../../sim/index.js";
import {
  graphRequests,
  requestSdp,
  TEST_APP_SECRET,
  TEST_PAGE_ID,
  TEST_PAGE_TOKEN,
  TEST_VERIFY_TOKEN,
  waitFor,
} from "../support/harness.js";

const ROOT = new URL("../..", import.meta.url).pathname;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The gateway as an operator runs it: the built program, configured by its environment. */
describe("the gateway process (npm start)", () => {
  let sim: MetaSimulator;
  let proc: ChildProcess;
  let port: number;
  const stdout: string[] = [];

  beforeAll(async () => {
    execFileSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
    sim = await MetaSimulator.start({ appSecret: TEST_APP_SECRET, pageId: TEST_PAGE_ID, pageAccessToken: TEST_PAGE_TOKEN });
    port = await freePort();
    proc = spawn(process.execPath, ["dist/gateway/main.js"], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        META_APP_SECRET: TEST_APP_SECRET,
        META_VERIFY_TOKEN: TEST_VERIFY_TOKEN,
        META_PAGE_ID: TEST_PAGE_ID,
        META_PAGE_ACCESS_TOKEN: TEST_PAGE_TOKEN,
        META_GRAPH_URL: sim.graphUrl,
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(port),
        PUBLIC_IP: "127.0.0.1",
        MEDIA_BIND_IP: "127.0.0.1",
        RTP_PORT_MIN: "43000",
        RTP_PORT_MAX: "43999",
        SIP_TARGET: "echo",
        SIP_LISTEN: "127.0.0.1:0",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    proc.stdout!.on("data", (d: Buffer) => stdout.push(...d.toString().split("\n").filter(Boolean)));
    await waitFor(() => stdout.some((l) => l.includes('"gateway started"')), 15_000, "the gateway to start");
    sim.setWebhookUrl(`http://127.0.0.1:${port}/webhooks/meta`);
  }, 120_000);

  afterAll(async () => {
    if (proc && proc.exitCode === null) proc.kill("SIGKILL");
    await sim?.stop();
  });

  it("answers the verify handshake", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/webhooks/meta?hub.mode=subscribe&hub.verify_token=${TEST_VERIFY_TOKEN}&hub.challenge=8675309`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("8675309");
  });

  it("refuses a webhook signed with the wrong secret, and says so in its log", async () => {
    const call = await sim.placeCall({ delivery: { signature: "wrong", retries: 0 } });
    expect(call.connectWebhookStatus).toBe(401);
    await waitFor(() => stdout.some((l) => l.includes("signature check failed")), 2000, "the refusal log line");
    expect(graphRequests(sim, "accept", call.id)).toHaveLength(0);
  });

  it("posts an accept whose offer has BUNDLE, actpass, a sha-256 fingerprint, host candidates and Opus", async () => {
    const call = await sim.placeCall();
    await call.waitForState("media", 10_000);
    const accepts = graphRequests(sim, "accept", call.id);
    expect(accepts).toHaveLength(1);
    expect(accepts[0]!.headers.authorization).toBe(`Bearer ${TEST_PAGE_TOKEN}`);
    const sdp = requestSdp(accepts[0]!)!;
    expect(sdp).toMatch(/^a=group:BUNDLE 0\r?$/m);
    expect(sdp).toMatch(/^a=setup:actpass\r?$/m);
    expect(sdp).toMatch(/^a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}\r?$/m);
    expect(sdp).not.toMatch(/^a=fingerprint:sha-(1|384|512) /m);
    expect(sdp).toMatch(/^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/m);
    expect(sdp).toMatch(/^a=rtpmap:111 opus\/48000\/2\r?$/im);
    expect(sdp).toMatch(/^a=rtcp-mux\r?$/m);
    expect((accepts[0]!.body as { session: { sdp_type: string } }).session.sdp_type).toBe("offer");
    await call.hangup();
    await call.waitForState("ended", 5000);
  });

  it("serves Prometheus metrics", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toMatch(/^gateway_webhooks_total\{result="bad-signature"\} [1-9]/m);
    expect(text).toMatch(/^gateway_calls_ended_total\{outcome="completed-consumer-hangup",platform="messenger"\} 1$/m);
  });

  it("exits cleanly on SIGTERM", async () => {
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("refuses to start without a required setting, naming it", () => {
    let status = 0;
    let stderr = "";
    try {
      execFileSync(process.execPath, ["dist/gateway/main.js"], { cwd: ROOT, env: { PATH: process.env.PATH, META_PAGE_ID: TEST_PAGE_ID }, stdio: "pipe" });
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      status = e.status;
      stderr = e.stderr.toString();
    }
    expect(status).toBe(2);
    expect(stderr).toMatch(/META_APP_SECRET: is required/);
  });
});
