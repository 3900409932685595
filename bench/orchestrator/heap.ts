/**
 * The live heap of a gateway after a full garbage collection, read over the V8 inspector the bench
 * opens on 127.0.0.1 (`--inspect=127.0.0.1:0`). Heap in use without a collection swings by tens of
 * megabytes with the collector's timing, which would hide or invent a leak over a churn run.
 */
import { InspectorClient } from "./inspector.js";

/** The inspector's WebSocket URL from the line Node prints at start. */
export function inspectorUrl(lines: readonly string[]): string | undefined {
  for (const line of lines) {
    const m = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+)/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** Collects garbage in the process behind `url` and answers its heap in use, in MB. */
export async function heapAfterGc(url: string, timeoutMs = 10_000): Promise<number> {
  const client = await InspectorClient.connect(url, timeoutMs);
  try {
    await client.call("HeapProfiler.collectGarbage", undefined, timeoutMs);
    const usage = await client.call<{ usedSize: number }>("Runtime.getHeapUsage", undefined, timeoutMs);
    return usage.usedSize / 2 ** 20;
  } finally {
    client.close();
  }
}
