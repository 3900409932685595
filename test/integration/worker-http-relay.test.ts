import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { MessageChannel } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { HttpResponseTooLargeError, MAX_RESPONSE_BYTES, sendHttp, type HttpSend } from "../../gateway/http/http-send.js";
import { HttpRelay, OwnerHttp, RelayedHttpError, type HttpDownMessage, type HttpUpMessage } from "../../gateway/workers/http-relay.js";

/**
 * gateway/http/http-send.ts (the gateway's outgoing HTTP) and gateway/workers/http-relay.ts (a media
 * worker's requests sent by the owner thread). The two relay sides talk over a real MessageChannel,
 * as a worker and its owner do, to a real HTTP server.
 */
const closers: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function server(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise<void>((resolve) => s.close(() => resolve())));
  closers.push(() => s.closeAllConnections());
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** A port nobody listens on: taken, then given back. */
async function closedPortUrl(): Promise<string> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function relayed(): { send: HttpSend; relay: HttpRelay } {
  const { port1: worker, port2: owner } = new MessageChannel();
  const ownerHttp = new OwnerHttp((m) => worker.postMessage(m));
  const relay = new HttpRelay((m) => owner.postMessage(m));
  worker.on("message", (m: HttpDownMessage) => ownerHttp.receive(m));
  owner.on("message", (m: HttpUpMessage) => relay.receive(m));
  closers.push(() => {
    relay.close();
    worker.close();
    owner.close();
  });
  return { send: ownerHttp.send, relay };
}

describe("the Graph clients' HTTP", () => {
  it("reads a response up to 1 MB and refuses a larger one without reading it all", async () => {
    const url = await server((req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      if (req.url === "/small") res.end('{"ok":true}');
      else res.end(Buffer.alloc(MAX_RESPONSE_BYTES + 1, 0x61));
    });
    expect((await sendHttp({ url: `${url}/small`, method: "GET", headers: {} })).body).toBe('{"ok":true}');
    await expect(sendHttp({ url: `${url}/large`, method: "GET", headers: {} })).rejects.toBeInstanceOf(HttpResponseTooLargeError);
  });
});

describe("a media worker's HTTP requests sent by its owner", () => {
  it("carries the method, headers and body there, and the status, headers and body back", async () => {
    let seen: { method?: string; auth?: string; type?: string; body: string } = { body: "" };
    const url = await server((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        seen = { method: req.method, auth: req.headers.authorization, type: req.headers["content-type"], body };
        res.writeHead(400, { "Content-Type": "application/json", "X-FB-Trace-ID": "Abc123" });
        res.end(JSON.stringify({ error: { code: 100 } }));
      });
    });
    const res = await relayed().send({
      url: `${url}/v26.0/1/calls`,
      method: "POST",
      headers: { Authorization: "Bearer t", "Content-Type": "application/json" },
      body: JSON.stringify({ call_id: "c1", action: "accept" }),
    });
    expect(seen).toEqual({ method: "POST", auth: "Bearer t", type: "application/json", body: '{"call_id":"c1","action":"accept"}' });
    expect(res.status).toBe(400);
    expect(res.headers["x-fb-trace-id"]).toBe("Abc123");
    expect(JSON.parse(res.body)).toEqual({ error: { code: 100 } });
  });

  it("rejects with the signal's reason when the caller gives up, and the owner drops the request", async () => {
    let dropped!: () => void;
    const droppedAtServer = new Promise<void>((resolve) => (dropped = resolve));
    const url = await server((req) => req.socket.once("close", () => dropped()));
    const signal = AbortSignal.timeout(200);
    const err = await relayed()
      .send({ url, method: "GET", headers: {}, signal })
      .then(() => undefined, (e: unknown) => e);
    expect(signal.aborted).toBe(true);
    expect((err as Error).name).toBe("TimeoutError");
    await droppedAtServer;
  });

  it("rejects at once for a signal already aborted, sending nothing", async () => {
    let requests = 0;
    const url = await server((_req, res) => {
      requests++;
      res.end();
    });
    const controller = new AbortController();
    controller.abort(new Error("gone"));
    await expect(relayed().send({ url, method: "GET", headers: {}, signal: controller.signal })).rejects.toThrow("gone");
    await new Promise((r) => setTimeout(r, 100));
    expect(requests).toBe(0);
  });

  it("reports a failed request with its cause", async () => {
    const err = await relayed()
      .send({ url: await closedPortUrl(), method: "GET", headers: {} })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RelayedHttpError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it("drops what is in flight when its worker is gone", async () => {
    let dropped!: () => void;
    const droppedAtServer = new Promise<void>((resolve) => (dropped = resolve));
    const url = await server((req) => req.socket.once("close", () => dropped()));
    const { send, relay } = relayed();
    void send({ url, method: "GET", headers: {} }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    relay.close();
    await droppedAtServer;
  });
});
