import net from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { DrachtioProcess, SHARED_DRACHTIO_SECRET } from "../../scripts/peers/drachtio.js";
import { DrachtioSipSignaling } from "../../sip/drachtio/drachtio-signaling.js";
import { drachtioAvailability, drachtioRequired, startDrachtio, type DrachtioServer } from "../support/drachtio.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/**
 * The gateway on the drachtio backend when its drachtio-server goes away and comes back: readiness
 * follows the control connection, consumer calls are refused at Meta at once while it is down,
 * calls that were up end cleanly at Meta, and calls work again after it returns, with no restart.
 */

function skipReason(): string | undefined {
  const where = drachtioAvailability();
  if (where.kind === "local") return undefined;
  if (drachtioRequired()) return undefined; // in CI: run, and fail on the missing server
  return where.kind === "none" ? where.reason : "DRACHTIO_HOST names a server these tests cannot kill and restart";
}

const skip = skipReason();
if (skip) process.stdout.write(`drachtio connection tests skipped: ${skip}\n`);

async function readyz(h: Harness): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/readyz`);
  return res.status;
}

async function waitReady(h: Harness, status: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await readyz(h)) === status) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`/readyz did not turn ${status} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function endedOutcome(h: Harness, callId: string): string | undefined {
  return h.logs.find("call ended").find((l) => l.callId === callId)?.outcome as string | undefined;
}

describe.skipIf(skip !== undefined)("drachtio-server killed and restarted under a live gateway", () => {
  let h: Harness;
  let phone: Baresip;

  beforeAll(async () => {
    const phonePort = await freePort();
    phone = await Baresip.start({ port: phonePort, toneHz: 1000, rtpPortMin: 34000 + 100 * Math.floor(Math.random() * 50) });
    h = await startHarness({ sipBackend: "drachtio", env: { SIP_TARGET: `sip:agent@127.0.0.1:${phonePort}` } });
  });
  afterAll(async () => {
    await h?.stop();
    await phone?.stop();
  });

  it("ends the live call at Meta, refuses calls at once while down, takes calls with audio again once back", async () => {
    expect(await readyz(h)).toBe(200);
    const live = await h.sim.placeCall({ toneHz: 440 });
    await live.waitForState("media", 15_000);
    await sleep(500);

    await h.drachtio!.kill();
    const notReadyAfter = await waitReady(h, 503, 3000);
    await live.waitForState("ended", 5000);
    expect(graphRequests(h.sim, "terminate", live.id)).toHaveLength(1);
    expect(h.logs.find(/drachtio-server connection lost/).at(-1)).toMatchObject({ level: "warn", calls: 1 });
    await waitFor(() => endedOutcome(h, live.id) !== undefined, 3000, "the live call's end record");
    expect(h.gateway.registry.size).toBe(0);

    // While it is down: refused at Meta at once, never accepted.
    const refusedAt = Date.now();
    const refused = await h.sim.placeCall({ toneHz: 440 });
    await refused.waitForState("ended", 5000);
    const refusedMs = Date.now() - refusedAt;
    expect(refusedMs).toBeLessThan(2000);
    expect(graphRequests(h.sim, "reject", refused.id)).toHaveLength(1);
    expect(graphRequests(h.sim, "accept", refused.id)).toHaveLength(0);
    await waitFor(() => endedOutcome(h, refused.id) !== undefined, 3000, "the refused call's end record");
    expect(endedOutcome(h, refused.id)).toBe("target-unreachable");

    await h.drachtio!.restart();
    const readyAfter = await waitReady(h, 200, 10_000);
    process.stdout.write(`drachtio connection: /readyz 503 ${notReadyAfter} ms after the kill, refused call ended in ${refusedMs} ms, /readyz 200 ${readyAfter} ms after the restart\n`);

    const again = await h.sim.placeCall({ toneHz: 440 });
    await again.waitForState("media", 15_000);
    await sleep(2500);
    const heard = again.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-35);
    const stats = h.gateway.registry.get(again.id)!.pbxMediaStats()!;
    expect(stats.rtp!.packetsReceived).toBeGreaterThan(50);
    expect(stats.rtp!.packetsSent).toBeGreaterThan(50);
    await again.hangup();
    await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
  });
});

/**
 * A TCP relay between the gateway and drachtio-server that the test can cut: the connection drops
 * while drachtio-server (and the dialogs it holds) stays up.
 */
class CuttableRelay {
  private readonly sockets = new Set<net.Socket>();
  private refusing = false;
  private constructor(private readonly server: net.Server) {}

  static async start(target: { host: string; port: number }): Promise<CuttableRelay> {
    const server = net.createServer();
    const relay = new CuttableRelay(server);
    server.on("connection", (client) => {
      if (relay.refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(target);
      for (const s of [client, upstream]) {
        relay.sockets.add(s);
        s.on("close", () => relay.sockets.delete(s));
        s.on("error", () => s.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    return relay;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Drops every connection and refuses new ones until `mend()`. */
  cut(): void {
    this.refusing = true;
    for (const s of this.sockets) s.destroy();
  }

  mend(): void {
    this.refusing = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe.skipIf(skip !== undefined)("the control connection drops while drachtio-server stays up", () => {
  let h: Harness;
  let server: DrachtioServer;
  let relay: CuttableRelay;
  let pbxPort: number;

  beforeAll(async () => {
    pbxPort = await freePort();
    server = await startDrachtio();
    relay = await CuttableRelay.start({ host: server.host, port: server.port });
    h = await startHarness({
      sipBackend: "drachtio",
      env: { DRACHTIO_HOST: "127.0.0.1", DRACHTIO_PORT: String(relay.port), DRACHTIO_SECRET: server.secret, SIP_TARGET: `sip:agent@127.0.0.1:${pbxPort}` },
    });
  });
  afterAll(async () => {
    await h?.stop();
    await relay?.stop();
    await server?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });

  it("the call ended at Meta is BYEd at the PBX once the connection is back", async () => {
    const sipp = startSipp({ scenario: "gw-answer.xml", port: pbxPort, timeoutS: 30 });
    await sipp.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("accepted", 10_000);

    relay.cut();
    await call.waitForState("ended", 5000);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    expect(h.gateway.sip.ready).toBe(false);

    relay.mend();
    await waitFor(() => h.gateway.sip.ready, 10_000, "the gateway to reconnect");
    const result = await finish(sipp, 10_000);
    expect(result.code, describeSipp(result)).toBe(0);
    // drachtio-server confirms the BYE went out on the control connection; that may come after SIPp is done.
    await waitFor(() => h.logs.find("BYE sent for a call ended while drachtio-server was unreachable").length === 1, 3000, "the BYE to be confirmed");
  });
});

describe.skipIf(skip !== undefined)("a gateway started before its drachtio-server", () => {
  let h: Harness;
  let server: DrachtioProcess | undefined;
  let controlPort: number;

  beforeAll(async () => {
    controlPort = await freePort();
    h = await startHarness({ sipBackend: "drachtio", env: { DRACHTIO_HOST: "127.0.0.1", DRACHTIO_PORT: String(controlPort), DRACHTIO_SECRET: SHARED_DRACHTIO_SECRET } });
  });
  afterAll(async () => {
    await h?.stop();
    await server?.stop();
  });

  it("comes up healthy but not ready, and turns ready once drachtio-server is there, without a restart", async () => {
    expect(await readyz(h)).toBe(503);
    expect((await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/healthz`)).status).toBe(200);
    expect(h.logs.find("drachtio-server not reachable yet; not taking calls until it is")).toHaveLength(1);
    const where = drachtioAvailability();
    if (where.kind !== "local") throw new Error("a local drachtio-server is needed here");
    server = await DrachtioProcess.start({ bin: where.bin, port: controlPort, sipPort: await freePort() });
    await waitReady(h, 200, 10_000);
    expect(h.gateway.sipAddress.port).toBe(server.sipPort);
  });
});

describe.skipIf(skip !== undefined)("a drachtio-server that hangs with its socket open", () => {
  let server: DrachtioProcess | undefined;
  let sig: DrachtioSipSignaling | undefined;

  afterAll(async () => {
    await sig?.stop();
    await server?.stop();
  });

  it("is noticed by its unanswered pings, and taken back once it answers again", async () => {
    const where = drachtioAvailability();
    if (where.kind !== "local") throw new Error("a local drachtio-server is needed here");
    server = await DrachtioProcess.start({ bin: where.bin, port: await freePort(), sipPort: await freePort() });
    sig = new DrachtioSipSignaling({ host: server.host, port: server.port, secret: server.secret, pingIntervalMs: 5000, reconnectMaxDelayMs: 500 });
    const changes: [boolean, number][] = [];
    sig.on("readiness", (ready) => changes.push([ready, Date.now()]));
    await sig.start();
    expect(sig.ready).toBe(true);

    const pausedAt = Date.now();
    server.pause();
    await waitFor(() => !sig!.ready, 20_000, "the hung server to be noticed");
    const noticedMs = Date.now() - pausedAt;
    // Two and a half ping intervals of silence since the last answer, checked every half interval.
    expect(noticedMs).toBeGreaterThanOrEqual(7_000);
    expect(noticedMs).toBeLessThan(17_000);

    server.resume();
    await waitFor(() => sig!.ready, 10_000, "the server to be taken back");
    expect(changes.map(([ready]) => ready)).toEqual([true, false, true]);
    process.stdout.write(`drachtio connection: a hung drachtio-server noticed after ${noticedMs} ms (ping interval 5000 ms)\n`);
  });
});
