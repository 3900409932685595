/**
 * The live heap of a gateway after a full garbage collection, read over the V8 inspector the bench
 * opens on 127.0.0.1 (`--inspect=127.0.0.1:0`). Heap in use without a collection swings by tens of
 * megabytes with the collector's timing, which would hide or invent a leak over a churn run.
 */

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
  const ws = new WebSocket(url);
  const pending = new Map<number, (result: unknown) => void>();
  let nextId = 1;
  const timer = setTimeout(() => ws.close(), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`inspector ${url} not reachable`)), { once: true });
    });
    ws.addEventListener("message", (event) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
    });
    const call = (method: string): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, resolve);
        ws.addEventListener("close", () => reject(new Error(`inspector closed during ${method}`)), { once: true });
        ws.send(JSON.stringify({ id, method }));
      });
    await call("HeapProfiler.collectGarbage");
    const usage = (await call("Runtime.getHeapUsage")) as { usedSize: number };
    return usage.usedSize / 2 ** 20;
  } finally {
    clearTimeout(timer);
    ws.close();
  }
}
