/**
 * A load-generator process, driven by the orchestrator (bench/run.ts) over the IPC channel. It
 * plays consumers and PBX phones for one system under test and reports what it measured.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { opusLoop, pcmuLoop } from "../audio/frames.js";
import type { LoadgenApi, LoadgenCommand, LoadgenInit, LoadgenReady, RpcRequest, RpcResponse } from "../ipc.js";
import type { CallEnvironment } from "./bench-call.js";
import { CallPool } from "./call-pool.js";
import type { CallDriver } from "./driver.js";
import { GatewayDriver } from "./gateway-driver.js";
import { MeasurementWindow } from "./measurement-window.js";
import { MediaClock } from "./media-clock.js";
import { RtpengineDriver } from "./rtpengine-driver.js";

const clock = new MediaClock();
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
let window: MeasurementWindow | undefined;
const env: CallEnvironment = {
  clock,
  opus: opusLoop(),
  pcmu: pcmuLoop(),
  srtpProfile: "AES_CM_128_HMAC_SHA1_80",
  window: () => window,
};
let driver: CallDriver | undefined;
let gatewayDriver: GatewayDriver | undefined;
let calls: CallPool | undefined;

async function init(a: LoadgenInit): Promise<LoadgenReady> {
  env.srtpProfile = a.srtpProfile;
  let ready: LoadgenReady = {};
  if (a.mode === "gateway") {
    gatewayDriver = new GatewayDriver(a);
    ready = await gatewayDriver.start();
    driver = gatewayDriver;
  } else {
    const r = new RtpengineDriver(a.ngHost, a.ngPort);
    await r.start();
    driver = r;
  }
  calls = new CallPool(env, driver);
  return ready;
}

function pool(): CallPool {
  if (!calls) throw new Error("load generator not initialised");
  return calls;
}

async function shutdown(): Promise<null> {
  clock.stop();
  calls?.failAll("shutdown");
  await driver?.close();
  setImmediate(() => process.exit(0));
  return null;
}

const handlers: { [C in LoadgenCommand]: (args: LoadgenApi[C]["args"]) => Promise<LoadgenApi[C]["result"]> | LoadgenApi[C]["result"] } = {
  init,
  setWebhookUrl: (a) => {
    gatewayDriver?.setWebhookUrl(a.url);
    return null;
  },
  addCalls: (a) => pool().add(a),
  hangupAll: (a) => pool().hangupAll(a),
  windowStart: (a) => {
    window = new MeasurementWindow(pool().active.values(), loopDelay, a.jitterBudgetMs);
    return null;
  },
  windowEnd: () => {
    const w = window;
    window = undefined;
    if (!w) throw new Error("no window open");
    return w.close();
  },
  churn: (a) => pool().churn(a),
  arrivals: (a) => pool().arrivals(a),
  shutdown,
};

process.on("message", (message: RpcRequest) => {
  const handler = handlers[message.command] as (args: unknown) => Promise<unknown> | unknown;
  Promise.resolve()
    .then(() => handler(message.args))
    .then(
      (result) => reply({ id: message.id, ok: true, result }),
      (err: unknown) => reply({ id: message.id, ok: false, error: (err as Error).stack ?? String(err) }),
    );
});

function reply(r: RpcResponse): void {
  process.send?.(r);
}

// The orchestrator owns this process: when its channel closes, nothing is left to do. Exiting
// through process.exit (not the default signal action) lets --cpu-prof write its profile.
process.on("disconnect", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
// A misbehaving peer must not end every other call this process plays.
process.on("uncaughtException", (err) => process.stderr.write(`loadgen: uncaught ${err.stack ?? String(err)}\n`));
process.on("unhandledRejection", (err) => process.stderr.write(`loadgen: unhandled ${String(err)}\n`));
