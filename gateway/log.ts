import pino, { type Logger } from "pino";
import type { LogLevel } from "./config/config.js";

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
