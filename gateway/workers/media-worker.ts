/**
 * A media worker thread: the gateway's calls (both call directions, both platforms, their WebRTC
 * and RTP sockets, transcoding and timers) for the share of calls its owner hands it. HTTP and the
 * SIP stack stay with the owner; SIP reaches the calls here through the SIP port.
 */
import { parentPort, workerData } from "node:worker_threads";
import { checkFfmpeg } from "../../transcode/video/ffmpeg-binary.js";
import { Gateway } from "../gateway.js";
import { createLogger } from "../log.js";
import { LOAD_SAMPLE_MS, LoopDelayMeter } from "../observe/load-monitor.js";
import { OwnerHttp } from "./http-relay.js";
import { RemoteSipSignaling } from "./remote-sip.js";
import { toWireError } from "./sip-protocol.js";
import { isHttpDown, isSipDown, type FromWorker, type MediaWorkerData, type ToWorker, type WorkerRequest } from "./worker-protocol.js";

const port = parentPort;
if (!port) throw new Error("media-worker.js runs as a worker thread");
const { index, config, digestSecret } = workerData as MediaWorkerData;
const post = (m: FromWorker): void => port.postMessage(m);
// Lines go to the owner, which writes every thread's through one writer: two threads writing to
// stdout themselves can interleave inside a line, and a worker's buffered lines are lost at its exit.
const log = createLogger(config.logLevel, { write: (line: string) => post({ t: "log", line }) }).child({ worker: index });

// werift's socket layers can throw outside any promise chain (see main.ts): one call's transport
// failure must not end this worker's other calls.
process.on("uncaughtException", (err) => log.error({ err }, "uncaught exception (worker continues)"));
process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection (worker continues)"));

const sip = new RemoteSipSignaling({ postMessage: (m) => post(m) });
// Outgoing HTTP (the Graph API, call events) leaves from the owner's loop, which carries no media.
const ownerHttp = new OwnerHttp((m) => post(m));
// New calls are admitted by the owner, which counts the whole process's calls: its verdict comes
// with each delivery and holds while that delivery is handled (synchronously).
let admitting = true;
const gateway = new Gateway(config, log, {
  signaling: sip,
  serveHttp: false,
  admitting: () => admitting,
  digestSecret: Buffer.from(digestSecret),
  httpSend: ownerHttp.send,
});
// The owner decides admission for the whole process from every worker's lateness.
const loopDelay = new LoopDelayMeter();
setInterval(() => post({ t: "load", loopDelayMs: loopDelay.take() }), LOAD_SAMPLE_MS).unref();

gateway.registry.onCallAdded((callId, call) => {
  post({ t: "call-added", callId, businessId: call.businessId });
  call.whenEnded(() => post({ t: "call-ended", callId }));
});

async function answer(m: WorkerRequest): Promise<unknown> {
  switch (m.t) {
    case "metrics":
      return gateway.metrics.registry.getMetricsAsJSON();
    case "calls":
      return gateway.monitor.live();
    case "terminate":
      return gateway.terminateAtMeta(m.callId, m.businessId);
    case "stop":
      await gateway.stop(m.deadlineMs);
      return undefined;
  }
}

port.on("message", (m: ToWorker) => {
  if (isSipDown(m)) {
    sip.receive(m);
    return;
  }
  if (isHttpDown(m)) {
    ownerHttp.receive(m);
    return;
  }
  switch (m.t) {
    case "webhook":
      admitting = m.admit;
      try {
        gateway.calls.handleWebhook(m.delivery);
      } finally {
        admitting = true;
      }
      return;
    case "drain":
      gateway.calls.startDraining();
      return;
    default:
      answer(m)
        .then(
          (value) => post({ t: "reply", req: m.req, ok: true, value }),
          (err: unknown) => post({ t: "reply", req: m.req, ok: false, error: toWireError(err) }),
        )
        .then(() => {
          // Stopped: the thread ends (its log lines are with the owner already; a library's idle
          // timer must not keep it).
          if (m.t === "stop") process.exit(0);
        });
  }
});

/**
 * The ffmpeg video calls will start, checked once: the thread's first child process also makes
 * libuv open a descriptor it keeps for the thread's life, which then belongs to start-up rather
 * than to the first video call.
 */
async function checkVideoTranscoder(): Promise<void> {
  try {
    const info = await checkFfmpeg();
    log.debug({ ffmpeg: info.version }, "ffmpeg for video calls");
  } catch (err) {
    log.warn({ err }, "ffmpeg does not run: video calls will carry audio only");
  }
}

Promise.all([checkVideoTranscoder(), gateway.start()]).then(
  () => post({ t: "ready" }),
  (err: unknown) => {
    log.error({ err }, "media worker could not start");
    process.exit(1);
  },
);
