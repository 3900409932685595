import http from "node:http";
import type { AddressInfo } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import { parseGraphBody } from "../../sim/graph-server.js";
import type { GraphFrontData, GraphFrontMessage } from "./graph-front.js";

/** The Graph front's thread (graph-front.ts): note each request's arrival, then hand it on. */
const { target, timed } = workerData as GraphFrontData;
const port = parentPort!;
const post = (m: GraphFrontMessage): void => port.postMessage(m);
const upstream = new http.Agent({ keepAlive: true });

const server = http.createServer((req, res) => {
  const at = performance.timeOrigin + performance.now();
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const timedCall = timedRequest(body.toString("utf8"), req.headers["content-type"]);
    // Reported before the request is handed on, so the owner has it when the request reaches it.
    if (timedCall) post({ t: "arrived", ...timedCall, at });
    const forward = http.request(`${target}${req.url ?? "/"}`, { method: req.method, headers: req.headers, agent: upstream }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain" });
      res.end(`Graph front: ${err.message}`);
    });
    forward.end(body);
  });
});

function timedRequest(raw: string, contentType: string | undefined): { action: string; callId: string } | undefined {
  let body: unknown;
  try {
    body = parseGraphBody(raw, contentType);
  } catch {
    return undefined; // the GraphServer answers it with Graph's error
  }
  if (typeof body !== "object" || body === null) return undefined;
  const { action, call_id: callId } = body as { action?: unknown; call_id?: unknown };
  return typeof action === "string" && typeof callId === "string" && timed.includes(action) ? { action, callId } : undefined;
}

server.listen(0, "127.0.0.1", () => post({ t: "listening", port: (server.address() as AddressInfo).port }));
