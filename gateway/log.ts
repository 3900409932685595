import pino, { type Logger } from "pino";
import type { LogLevel } from "./config/config.js";

/** Where the process's log lines go: stdout, through one writer for every thread (see workers/). */
export function stdoutDestination(): pino.DestinationStream {
  return pino.destination(1);
}

/**
 * JSON logs on stdout, one line per event, with secrets redacted wherever they could appear.
 * Each call gets a child logger carrying its ids, so one grep follows a call through both legs.
 */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "meta-sip-gateway" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ["accessToken", "appSecret", "verifyToken", "*.accessToken", "*.appSecret", "headers.authorization", "sdp", "*.sdp"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}

/**
 * Logs at most once per interval per key, saying how many were left out meanwhile: a flood of bad
 * input or a failing handler must not turn into a flood of log lines. Keys are a small fixed set
 * (limit names, handler kinds), so the map stays small.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly intervalMs = 1000) {}

  run(key: string, log: (suppressed: number) => void, now = Date.now()): void {
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    log(suppressed);
  }
}
