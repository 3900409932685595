#!/usr/bin/env node
import { parseArgs } from "node:util";
import { ConfigError, loadConfig, readConfigFile } from "./config/config.js";
import { Gateway } from "./gateway.js";
import { createLogger, stdoutDestination } from "./log.js";
import { WorkerPoolGateway } from "./workers/worker-pool-gateway.js";
import { workerCount } from "./workers/worker-share.js";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write("usage: meta-sip-gateway [--config gateway.yaml]\nSettings come from the environment (see README), optionally from a YAML file.\n");
    return;
  }
  let config;
  try {
    config = loadConfig(process.env, values.config ? readConfigFile(values.config) : {});
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const stdout = stdoutDestination();
  const log = createLogger(config.logLevel, stdout);
  // The video transcoder looks ffmpeg up through FFMPEG_PATH when it starts one; a value given in
  // the YAML file reaches it the same way.
  if (config.media.ffmpegPath !== undefined) process.env.FFMPEG_PATH = config.media.ffmpegPath;
  // werift's TURN client and socket layers can throw outside any promise chain (upstream #364,
  // #414); one call's transport failure must not take every other call down with it.
  process.on("uncaughtException", (err) => log.error({ err }, "uncaught exception (process continues)"));
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection (process continues)"));

  // One process per machine: with more than one core the calls go to media workers, one per core.
  const workers = workerCount(config);
  const gateway = workers > 1 ? new WorkerPoolGateway(config, log, workers, (line) => stdout.write(line)) : new Gateway(config, log);
  await gateway.start();
  const drainSeconds = config.calls.drainSeconds;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainSeconds }, "draining");
    gateway
      .stop(signal === "SIGTERM" ? drainSeconds * 1000 : 0)
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
