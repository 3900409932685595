/**
 * HTTP requests a media worker makes (the Graph API, call events) are sent by the owner thread. A
 * worker's loop carries its calls' media and set-up: under load each step of a request (connect,
 * write, read) waits behind that work, and a burst's accepts reached Meta 100–300 ms after the
 * worker sent them. The owner's loop has no media, so a request leaves at once; the worker only
 * waits for the answer.
 */
import { describeHttpError, sendHttp, type HttpRequest, type HttpResponse, type HttpSend } from "../http/http-send.js";

/** Worker → owner. */
export type HttpUpMessage = { t: "http.request"; id: number; request: Omit<HttpRequest, "signal"> } | { t: "http.abort"; id: number };

/** Owner → worker. */
export type HttpDownMessage = { t: "http.response"; id: number; response: HttpResponse } | { t: "http.failed"; id: number; message: string };

/** The owner gives up on a request its worker never aborted (a worker gone mid-request) after this. */
const OWNER_CAP_MS = 120_000;

export class RelayedHttpError extends Error {
  override readonly name = "RelayedHttpError";
}

/**
 * The worker's side: an HttpSend that hands each request to the owner and resolves with its
 * answer. An aborted signal rejects at once with its reason and tells the owner to drop the request.
 */
export class OwnerHttp {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: HttpResponse) => void; reject: (e: unknown) => void; done: () => void }>();

  constructor(private readonly post: (m: HttpUpMessage) => void) {}

  readonly send: HttpSend = ({ signal, ...request }) => {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.nextId++;
    return new Promise<HttpResponse>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.delete(id)) return;
        this.post({ t: "http.abort", id });
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, { resolve, reject, done: () => signal?.removeEventListener("abort", onAbort) });
      this.post({ t: "http.request", id, request });
    });
  };

  receive(m: HttpDownMessage): void {
    const p = this.pending.get(m.id);
    if (!p) return; // aborted meanwhile
    this.pending.delete(m.id);
    p.done();
    if (m.t === "http.failed") p.reject(new RelayedHttpError(m.message));
    else p.resolve(m.response);
  }
}

/**
 * The owner's side for one worker: sends its requests and posts the answers back. `close` (the
 * worker is gone) drops what is in flight.
 */
export class HttpRelay {
  private readonly inFlight = new Map<number, AbortController>();

  constructor(
    private readonly post: (m: HttpDownMessage) => void,
    private readonly send: HttpSend = sendHttp,
  ) {}

  receive(m: HttpUpMessage): void {
    if (m.t === "http.abort") {
      this.inFlight.get(m.id)?.abort();
      this.inFlight.delete(m.id);
      return;
    }
    const controller = new AbortController();
    this.inFlight.set(m.id, controller);
    const cap = setTimeout(() => controller.abort(new RelayedHttpError(`no response within ${OWNER_CAP_MS} ms`)), OWNER_CAP_MS);
    cap.unref();
    void this.exchange(m.id, { ...m.request, signal: controller.signal }).then((answer) => {
      clearTimeout(cap);
      // Aborted or closed meanwhile: nobody waits for it.
      if (this.inFlight.delete(m.id)) this.post(answer);
    });
  }

  close(): void {
    for (const controller of this.inFlight.values()) controller.abort();
    this.inFlight.clear();
  }

  private async exchange(id: number, request: HttpRequest): Promise<HttpDownMessage> {
    try {
      return { t: "http.response", id, response: await this.send(request) };
    } catch (err) {
      return { t: "http.failed", id, message: describeHttpError(err) };
    }
  }
}

