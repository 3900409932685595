import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { GraphClient, type GraphClientOptions, type MediaUpdateRequest } from "../../gateway/meta/graph-client.js";
import { GraphApiError } from "../../gateway/meta/graph-errors.js";

const PAGE = "111222333";
const TOKEN = "EAAG-secret-page-token";
const OFFER = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AA:BB\r\n";
const ANSWER = "v=0\r\no=- 1 1 IN IP4 157.240.22.131\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n";
const REOFFER = "v=0\r\no=- 1 2 IN IP4 157.240.22.131\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";

interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

type Reply = (res: ServerResponse, request: RecordedRequest, n: number) => void;

interface GraphStub {
  baseUrl: string;
  requests: RecordedRequest[];
  close: () => Promise<void>;
}

const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

/** A real HTTP server on 127.0.0.1 that records each request and answers with `reply`. */
async function startGraph(reply: Reply): Promise<GraphStub> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const recorded: RecordedRequest = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: text.length > 0 ? JSON.parse(text) : undefined,
      };
      requests.push(recorded);
      reply(res, recorded, requests.length);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return (res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
}

function graphError(status: number, error: Record<string, unknown>): Reply {
  return json(status, { error: { message: "failure", type: "OAuthException", fbtrace_id: "AbCdEf123", ...error } });
}

function client(stub: { baseUrl: string }, extra: Partial<GraphClientOptions> = {}): GraphClient {
  return new GraphClient({ graphUrl: stub.baseUrl, graphVersion: "v26.0", pageId: PAGE, accessToken: TOKEN, ...extra });
}

async function rejection(p: Promise<unknown>): Promise<GraphApiError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphApiError);
  return err as GraphApiError;
}

describe("GraphClient.accept", () => {
  it("posts the offer and reads object-shaped SDPs", async () => {
    const stub = await startGraph(
      json(200, {
        success: true,
        session: { sdp_response: { sdp_type: "answer", sdp: ANSWER }, sdp_renegotiation: { sdp_type: "offer", sdp: REOFFER } },
      }),
    );
    const result = await client(stub).accept("c_123", OFFER);
    expect(result).toEqual({ answer: ANSWER, reoffer: REOFFER });

    expect(stub.requests).toHaveLength(1);
    const [req] = stub.requests;
    expect(req?.method).toBe("POST");
    expect(req?.url).toBe(`/v26.0/${PAGE}/calls`);
    expect(req?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req?.headers["content-type"]).toBe("application/json");
    expect(req?.body).toEqual({ platform: "messenger", action: "accept", call_id: "c_123", session: { sdp_type: "offer", sdp: OFFER } });
  });

  it("reads bare-string SDPs and leaves reoffer absent when there is none", async () => {
    const stub = await startGraph(json(200, { success: true, session: { sdp_response: ANSWER } }));
    const result = await client(stub).accept("c_1", OFFER);
    expect(result).toEqual({ answer: ANSWER });
    expect("reoffer" in result).toBe(false);

    const both = await startGraph(json(200, { success: true, session: { sdp_response: ANSWER, sdp_renegotiation: REOFFER } }));
    expect(await client(both).accept("c_1", OFFER)).toEqual({ answer: ANSWER, reoffer: REOFFER });
  });

  it("turns a Graph error envelope into a typed error carrying the call id", async () => {
    const stub = await startGraph(graphError(400, { code: 100, error_subcode: 2018396, message: "Cannot join an ended call" }));
    const err = await rejection(client(stub).accept("c_gone", OFFER));
    expect(err).toMatchObject({
      kind: "graph",
      action: "accept",
      callId: "c_gone",
      httpStatus: 400,
      code: 100,
      subcode: 2018396,
      fbtraceId: "AbCdEf123",
      type: "OAuthException",
      errorClass: "call-gone",
      isTransient: false,
    });
    expect(err.message).toContain("Cannot join an ended call");
  });

  it("does not retry even a transient failure", async () => {
    const stub = await startGraph(graphError(500, { code: 2, is_transient: true }));
    const err = await rejection(client(stub).accept("c_1", OFFER));
    expect(err.isTransient).toBe(true);
    await delay(400);
    expect(stub.requests).toHaveLength(1);
  });

  it("surfaces a timeout without retrying: the server sees exactly one request", async () => {
    const stub = await startGraph(() => {
      /* never answers */
    });
    const c = client(stub, { timeoutMs: 150 });
    const started = Date.now();
    const err = await rejection(c.accept("c_slow", OFFER));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err).toMatchObject({ kind: "timeout", action: "accept", callId: "c_slow" });
    await delay(500);
    expect(stub.requests).toHaveLength(1);
    expect(c.stats().requests.accept).toBe(1);
    expect(c.stats().errors.accept).toBe(1);
  });

  it("reports a 200 without an answer as a bad response", async () => {
    const stub = await startGraph(json(200, { success: true }));
    const err = await rejection(client(stub).accept("c_1", OFFER));
    expect(err).toMatchObject({ kind: "bad-response", callId: "c_1", isTransient: false });
  });

  it("reports a non-JSON error page as a bad response with its HTTP status", async () => {
    const stub = await startGraph((res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end("<html>Bad Gateway</html>");
    });
    const err = await rejection(client(stub).accept("c_1", OFFER));
    expect(err).toMatchObject({ kind: "bad-response", httpStatus: 502, errorClass: "transient" });
    expect(stub.requests).toHaveLength(1);
  });

  it("rejects empty arguments before sending anything", async () => {
    const stub = await startGraph(json(200, {}));
    await expect(client(stub).accept("", OFFER)).rejects.toThrow(RangeError);
    await expect(client(stub).accept("c_1", "")).rejects.toThrow(RangeError);
    expect(stub.requests).toHaveLength(0);
  });
});

describe("GraphClient.connect", () => {
  it("sends to:<psid> and reads the call id from `id`", async () => {
    const stub = await startGraph(json(200, { success: true, id: "c_new", session: { sdp_response: { sdp_type: "answer", sdp: ANSWER } } }));
    expect(await client(stub).connect("psid-9", OFFER)).toEqual({ callId: "c_new", answer: ANSWER });
    expect(stub.requests[0]?.body).toEqual({ platform: "messenger", action: "connect", to: "psid-9", session: { sdp_type: "offer", sdp: OFFER } });
  });

  it("reads the call id from `call_id` too", async () => {
    const stub = await startGraph(json(200, { success: true, call_id: "c_alt", session: { sdp_response: ANSWER, sdp_renegotiation: REOFFER } }));
    expect(await client(stub).connect("psid-9", OFFER)).toEqual({ callId: "c_alt", answer: ANSWER, reoffer: REOFFER });
  });

  it("is never retried, and a missing call id is a bad response", async () => {
    const failing = await startGraph(graphError(503, { code: 1, is_transient: true }));
    const err = await rejection(client(failing).connect("psid-9", OFFER));
    expect(err).toMatchObject({ kind: "graph", action: "connect", errorClass: "transient" });
    expect(err.callId).toBeUndefined();
    await delay(400);
    expect(failing.requests).toHaveLength(1);

    const noId = await startGraph(json(200, { success: true, session: { sdp_response: ANSWER } }));
    expect(await rejection(client(noId).connect("psid-9", OFFER))).toMatchObject({ kind: "bad-response" });
  });
});

describe("GraphClient.mediaUpdate", () => {
  it("sends integer versions, lower-case tracks and the offer", async () => {
    const stub = await startGraph(
      json(200, { success: true, session: { sdp_response: { sdp_type: "answer", sdp: ANSWER }, sdp_renegotiation: { sdp_type: "offer", sdp: REOFFER } } }),
    );
    const result = await client(stub).mediaUpdate({
      callId: "c_1",
      fromVersion: 1,
      toVersion: 2,
      sdpOffer: OFFER,
      tracks: [
        { msid: "a1", label: "default_audio", status: "enabled" },
        { msid: "v1", label: "default_video", status: "disabled" },
      ],
    });
    expect(result).toEqual({ answer: ANSWER, reoffer: REOFFER });
    expect(stub.requests[0]?.body).toEqual({
      platform: "messenger",
      action: "media_update",
      call_id: "c_1",
      from_version: 1,
      to_version: 2,
      tracks: [
        { msid: "a1", label: "default_audio", status: "enabled" },
        { msid: "v1", label: "default_video", status: "disabled" },
      ],
      session: { sdp_type: "offer", sdp: OFFER },
    });
  });

  it("returns neither SDP for a 200 without one (a version collision)", async () => {
    const stub = await startGraph(json(200, { success: true }));
    expect(await client(stub).mediaUpdate({ callId: "c_1", fromVersion: 0, toVersion: 1, sdpOffer: OFFER })).toEqual({});
  });

  it("sends a tracks-only update without a session or a new version", async () => {
    const stub = await startGraph(json(200, { success: true }));
    await client(stub).updateTracks({ callId: "c_1", version: 3, tracks: [{ msid: "v1", label: "default_video", status: "disabled" }] });
    expect(stub.requests[0]?.body).toEqual({
      platform: "messenger",
      action: "media_update",
      call_id: "c_1",
      from_version: 3,
      tracks: [{ msid: "v1", label: "default_video", status: "disabled" }],
    });
    await expect(client(stub).updateTracks({ callId: "c_1", version: 3, tracks: [] })).rejects.toThrow(RangeError);
    const noOffer = { callId: "c_1", fromVersion: 3, toVersion: 4, tracks: [{ msid: "v1", label: "default_video", status: "enabled" }] };
    await expect(client(stub).mediaUpdate(noOffer as unknown as MediaUpdateRequest)).rejects.toThrow(/updateTracks/);
    expect(stub.requests).toHaveLength(1);
  });

  it("validates versions and content before sending", async () => {
    const stub = await startGraph(json(200, { success: true }));
    const c = client(stub);
    await expect(c.mediaUpdate({ callId: "c_1", fromVersion: 2, toVersion: 2, sdpOffer: OFFER })).rejects.toThrow(RangeError);
    await expect(c.mediaUpdate({ callId: "c_1", fromVersion: 0.5, toVersion: 2, sdpOffer: OFFER })).rejects.toThrow(RangeError);
    await expect(c.mediaUpdate({ callId: "c_1", fromVersion: 0, toVersion: 1, sdpOffer: "" })).rejects.toThrow(RangeError);
    expect(stub.requests).toHaveLength(0);
  });

  it("is not retried after a timeout", async () => {
    const stub = await startGraph(() => {
      /* never answers */
    });
    const err = await rejection(client(stub, { timeoutMs: 100 }).mediaUpdate({ callId: "c_1", fromVersion: 0, toVersion: 1, sdpOffer: OFFER }));
    expect(err.kind).toBe("timeout");
    await delay(500);
    expect(stub.requests).toHaveLength(1);
  });
});

describe("GraphClient.reject and terminate", () => {
  it("retries terminate once after a transient 500 and then succeeds", async () => {
    const stub = await startGraph((res, req, n) =>
      n === 1 ? graphError(500, { code: 2, is_transient: true, message: "Service temporarily unavailable" })(res, req, n) : json(200, { success: true })(res, req, n),
    );
    const c = client(stub);
    await c.terminate("c_9");
    expect(stub.requests).toHaveLength(2);
    for (const r of stub.requests) {
      expect(r.body).toEqual({ platform: "messenger", action: "terminate", call_id: "c_9" });
      expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
    }
    const s = c.stats();
    expect(s.requests.terminate).toBe(2);
    expect(s.errors.terminate).toBe(1);
    expect(s.latencyMs.terminate.count).toBe(2);
  });

  it("retries only once: two transient failures surface the error", async () => {
    const stub = await startGraph(graphError(500, { code: 2, is_transient: true }));
    const err = await rejection(client(stub).reject("c_9"));
    expect(err).toMatchObject({ action: "reject", callId: "c_9", kind: "graph" });
    expect(stub.requests).toHaveLength(2);
    expect(stub.requests[0]?.body).toEqual({ platform: "messenger", action: "reject", call_id: "c_9" });
  });

  it("does not retry a permanent error", async () => {
    const stub = await startGraph(graphError(400, { code: 100, error_subcode: 2018396 }));
    const err = await rejection(client(stub).terminate("c_9"));
    expect(err.errorClass).toBe("call-gone");
    expect(stub.requests).toHaveLength(1);
  });

  it("treats 'call already gone' on the retry as done", async () => {
    const stub = await startGraph((res, req, n) =>
      n === 1 ? graphError(500, { code: 1, is_transient: true })(res, req, n) : graphError(400, { code: 2018396 })(res, req, n),
    );
    await expect(client(stub).terminate("c_9")).resolves.toBeUndefined();
    expect(stub.requests).toHaveLength(2);
  });

  it("retries terminate once on a network failure, never accept", async () => {
    const stub = await startGraph(json(200, {}));
    const closedUrl = stub.baseUrl;
    await stub.close();
    const c = client({ baseUrl: closedUrl });

    const err = await rejection(c.terminate("c_1"));
    expect(err).toMatchObject({ kind: "network", callId: "c_1", isTransient: true });
    expect(c.stats().requests.terminate).toBe(2);

    expect((await rejection(c.accept("c_1", OFFER))).kind).toBe("network");
    expect(c.stats().requests.accept).toBe(1);
  });

  it("reports success:false as a bad response", async () => {
    const stub = await startGraph(json(200, { success: false }));
    expect(await rejection(client(stub).terminate("c_1"))).toMatchObject({ kind: "bad-response" });
    expect(stub.requests).toHaveLength(1);
  });
});

describe("GraphClient.requestCallPermission", () => {
  it("sends the calling_optin template through the Send API, once even on a transient error", async () => {
    const stub = await startGraph(json(200, { recipient_id: "123", message_id: "m_1" }));
    await client(stub).requestCallPermission("123");
    const [req] = stub.requests;
    expect(req?.method).toBe("POST");
    expect(req?.url).toBe(`/v26.0/${PAGE}/messages`);
    expect(req?.body).toMatchObject({
      recipient: { id: "123" },
      message: { attachment: { type: "template", payload: { template_type: "calling_optin" } } },
    });
    const failing = await startGraph(json(500, { error: { message: "oops", code: 2, fbtrace_id: "x" } }));
    expect(await rejection(client(failing).requestCallPermission("123"))).toMatchObject({ action: "permission_request" });
    expect(failing.requests).toHaveLength(1);
  });
});

describe("GraphClient.getCallPermission", () => {
  it("GETs the permission for a PSID with the bearer token in the header only", async () => {
    const stub = await startGraph(
      json(200, {
        permission: { status: "has_permission", expiration_time: 1_700_604_800 },
        actions: [
          { action_name: "send_call_permission_request", can_perform_action: false, limits: [{ time_period: "PT24H", max_allowed_per_user: 2, current_usage: 1 }] },
          { action_name: "start_call", can_perform_action: true },
        ],
      }),
    );
    const permission = await client(stub).getCallPermission("psid 7");
    expect(permission).toEqual({ status: "has_permission", canStartCall: true, canRequestPermission: false, expiresAt: 1_700_604_800 });
    const [req] = stub.requests;
    expect(req?.method).toBe("GET");
    expect(req?.url).toBe(`/v26.0/${PAGE}/messenger_call_permissions?psid=psid%207`);
    expect(req?.url).not.toContain(TOKEN);
    expect(req?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it("accepts the OpenAPI spelling", async () => {
    const stub = await startGraph(
      json(200, {
        data: [
          {
            permission: { status: "NO_PERMISSION" },
            actions: [
              { action_name: "SEND_CALL_PERMISSION_REQUEST", can_perform: true, limits: [{ time_period: "PT24H", max_allowed: 2, current_usage: 0 }] },
              { action_name: "START_CALL", can_perform: false },
            ],
          },
        ],
      }),
    );
    expect(await client(stub).getCallPermission("p")).toEqual({ status: "no_permission", canStartCall: false, canRequestPermission: true });
  });

  it("reports an unrecognisable body as a bad response", async () => {
    const stub = await startGraph(json(200, { data: [] }));
    expect(await rejection(client(stub).getCallPermission("p"))).toMatchObject({ kind: "bad-response", action: "call_permissions" });
  });
});

describe("GraphClient logging and stats", () => {
  it("logs action and call id at debug without the token or the SDP", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString("utf8"));
        done();
      },
    });
    const logger = pino({ level: "debug" }, sink);
    const stub = await startGraph((res, req, n) =>
      n === 1 ? json(200, { success: true, session: { sdp_response: ANSWER } })(res, req, n) : graphError(400, { code: 190 })(res, req, n),
    );
    const c = client(stub, { logger });
    await c.accept("c_log", OFFER);
    await rejection(c.terminate("c_log"));

    const all = lines.join("");
    expect(all).toContain('"action":"accept"');
    expect(all).toContain('"callId":"c_log"');
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain("a=fingerprint");
    expect(all).not.toContain("a=ice-lite");
    for (const line of lines) expect(JSON.parse(line).level).toBe(20);
  });

  it("keeps per-action counters and latency", async () => {
    const stub = await startGraph(json(200, { success: true }));
    const c = client(stub);
    await c.terminate("c_1");
    await c.reject("c_2");
    await c.terminate("c_3");
    const s = c.stats();
    expect(s.requests).toEqual({ pre_accept: 0, accept: 0, connect: 0, media_update: 0, reject: 1, terminate: 2, call_permissions: 0, permission_request: 0, call_metrics: 0 });
    expect(s.errors.terminate).toBe(0);
    expect(s.latencyMs.terminate.count).toBe(2);
    expect(s.latencyMs.terminate.sum).toBeGreaterThan(0);
    expect(s.latencyMs.terminate.max).toBeLessThanOrEqual(s.latencyMs.terminate.sum);
    // The snapshot is a copy.
    s.requests.terminate = 99;
    expect(c.stats().requests.terminate).toBe(2);
  });

  it("posts call_metrics to /{page-id}/call_metrics, never retried, and reports every attempt's latency", async () => {
    const seen: [string, number, boolean][] = [];
    const ok = await startGraph(json(200, { success: true }));
    await client(ok, { onRequest: (action, seconds, success) => seen.push([action, seconds, success]) }).callMetrics({ platform: "messenger", call_id: "c_9", end_call_reason: "Hangup_Call" });
    expect(ok.requests[0]).toMatchObject({ method: "POST", url: `/v26.0/${PAGE}/call_metrics`, body: { platform: "messenger", call_id: "c_9" } });
    const failing = await startGraph(graphError(500, { code: 2, is_transient: true }));
    const c = client(failing, { onRequest: (action, seconds, success) => seen.push([action, seconds, success]) });
    const err = await rejection(c.callMetrics({ platform: "messenger", call_id: "c_10" }));
    expect(err.isTransient).toBe(true);
    // One attempt only: the reporter owns its retries and their back-off.
    expect(failing.requests).toHaveLength(1);
    expect(seen.map(([a, , success]) => [a, success])).toEqual([
      ["call_metrics", true],
      ["call_metrics", false],
    ]);
    expect(seen.every(([, seconds]) => seconds >= 0 && seconds < 5)).toBe(true);
  });

  it("accepts a base URL with a trailing slash", async () => {
    const stub = await startGraph(json(200, { success: true }));
    await client({ baseUrl: `${stub.baseUrl}/` }).terminate("c_1");
    expect(stub.requests[0]?.url).toBe(`/v26.0/${PAGE}/calls`);
  });
});
