/**
 * A minimal client for the V8 inspector the bench opens in each gateway (`--inspect=127.0.0.1:0`):
 * one WebSocket, Chrome DevTools Protocol requests answered by id.
 */
export class InspectorClient {
  private readonly pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener("message", (event) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message?: string } };
      if (msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(msg.error.message ?? "inspector error"));
      else p?.resolve(msg.result);
    });
    ws.addEventListener("close", () => {
      for (const p of this.pending.values()) p.reject(new Error("inspector closed"));
      this.pending.clear();
    });
  }

  static async connect(url: string, timeoutMs = 5000): Promise<InspectorClient> {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => ws.close(), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.addEventListener("open", () => resolve(), { once: true });
        ws.addEventListener("error", () => reject(new Error(`inspector ${url} not reachable`)), { once: true });
        ws.addEventListener("close", () => reject(new Error(`inspector ${url} closed`)), { once: true });
      });
    } finally {
      clearTimeout(timer);
    }
    return new InspectorClient(ws);
  }

  call<T>(method: string, params?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inspector: ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Evaluates an expression in the process (awaiting a promise) and returns its value. */
  async evaluate<T>(expression: string, timeoutMs = 10_000): Promise<T> {
    const r = await this.call<{ result: { value?: unknown }; exceptionDetails?: { text?: string; exception?: { description?: string } } }>(
      "Runtime.evaluate",
      { expression, awaitPromise: true, returnByValue: true },
      timeoutMs,
    );
    if (r.exceptionDetails) throw new Error(`inspector: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text ?? "exception"}`);
    return r.result.value as T;
  }

  close(): void {
    this.ws.close();
  }
}
