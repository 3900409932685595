import dgram from "node:dgram";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signBody } from "../../sim/index.js";
import { connectEvent, mediaUpdateEvent, webhookPayload } from "../../sim/webhook-events.js";
import { sleep, startHarness, TEST_APP_SECRET, TEST_PAGE_ID, type Harness } from "../support/harness.js";

/**
 * Every input from outside is bounded: refused with a 4xx, one log line naming the bound, nothing
 * kept and nothing sent to Meta on its behalf. Against the real gateway, over real sockets.
 */

const SDP = ["v=0", "o=pbx 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", "m=audio 4000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=sendrecv", ""].join("\r\n");

/** A raw HTTP POST, so an early answer to a body still being sent is seen as it is. */
function post(url: string, body: Buffer | string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const rq = http.request(url, { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    rq.on("error", reject);
    rq.end(body);
  });
}

function postSigned(h: Harness, body: string): Promise<number> {
  return post(h.webhookUrl, body, { "x-hub-signature-256": signBody(body, TEST_APP_SECRET) });
}

let branchCounter = 0;

/** An agent's INVITE as a phone would send it; `requestUser` is what it dials. */
function invite(gatewayPort: number, requestUser: string, options: { from?: string; body?: string; extra?: string[] } = {}): { text: string; callId: string } {
  const callId = `limits-${Date.now()}-${++branchCounter}@127.0.0.1`;
  const from = options.from ?? "127.0.0.1";
  const body = options.body ?? SDP;
  const text = [
    `INVITE sip:${requestUser}@127.0.0.1:${gatewayPort} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from}:9;branch=z9hG4bK-lim${branchCounter}`,
    `From: "Agent" <sip:agent@${from}>;tag=a${branchCounter}`,
    `To: <sip:${requestUser}@127.0.0.1:${gatewayPort}>`,
    `Call-ID: ${callId}`,
    "CSeq: 1 INVITE",
    `Contact: <sip:agent@${from}:9>`,
    "Max-Forwards: 70",
    ...(options.extra ?? []),
    "Content-Type: application/sdp",
    `Content-Length: ${Buffer.byteLength(body, "latin1")}`,
    "",
    body,
  ].join("\r\n");
  return { text, callId };
}

/** Sends one request from `from` and returns the first final response (ACKed, as RFC 3261 wants). */
async function finalResponse(gatewayPort: number, text: string, from = "127.0.0.1", timeoutMs = 3000): Promise<string | undefined> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, from, () => r()));
  try {
    return await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      socket.on("message", (m) => {
        const rs = m.toString("latin1");
        const status = Number(/^SIP\/2\.0 (\d{3})/.exec(rs)?.[1] ?? 0);
        if (status < 200) return;
        clearTimeout(timer);
        socket.send(Buffer.from(ackFor(text, rs), "latin1"), gatewayPort, "127.0.0.1", () => resolve(rs));
      });
      socket.send(Buffer.from(text, "latin1"), gatewayPort, "127.0.0.1");
    });
  } finally {
    await new Promise<void>((r) => socket.close(() => r()));
  }
}

function ackFor(request: string, response: string): string {
  const line = (text: string, name: string): string => new RegExp(`^${name}:.*$`, "mi").exec(text)?.[0] ?? "";
  const uri = request.split("\r\n", 1)[0]!.split(" ")[1]!;
  return [`ACK ${uri} SIP/2.0`, line(request, "Via"), line(request, "From"), line(response, "To"), line(request, "Call-ID"), "CSeq: 1 ACK", "Max-Forwards: 70", "Content-Length: 0", "", ""].join("\r\n");
}

const statusOf = (rs: string | undefined): number => Number(/^SIP\/2\.0 (\d{3})/.exec(rs ?? "")?.[1] ?? 0);

describe("input limits, against the real gateway", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      env: {
        SIP_ALLOW_FROM: "127.0.0.0/8",
        WEBHOOK_MAX_BODY_BYTES: "2097152",
        SIP_MAX_MESSAGE_BYTES: "16384",
        SIP_MAX_CALLS_PER_SECOND: "5",
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** Runs `work` and checks that it made no Graph API request and started no call. */
  async function nothingReachesMeta(work: () => Promise<void>): Promise<void> {
    const requestsBefore = h.sim.requests.length;
    const handledBefore = h.gateway.calls.stats().eventsHandled;
    await work();
    await sleep(200);
    expect(h.sim.requests.length).toBe(requestsBefore);
    expect(h.gateway.calls.stats().eventsHandled).toBe(handledBefore);
    expect(h.gateway.registry.size).toBe(0);
  }

  const refusals = (limit: string) => h.logs.lines.filter((l) => l.limit === limit);

  describe("webhooks", () => {
    it("answers 400, never 500, to a signed body nested 10,000 levels deep, and logs the bound", async () => {
      await nothingReachesMeta(async () => {
        const body = `{"object":${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)},"entry":[]}`;
        expect(await postSigned(h, body)).toBe(400);
        const deepArray = `{"object":"page","entry":[${"[".repeat(10_000)}${"]".repeat(10_000)}]}`;
        expect(await postSigned(h, deepArray)).toBe(400);
      });
      const lines = refusals("WEBHOOK_MAX_JSON_DEPTH");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatchObject({ level: "warn", msg: "webhook refused: over a limit", max: 32 });
      expect(h.logs.find("http handler failed")).toEqual([]);
    });

    it("refuses a connect with a 1 MB call id with 400 and keeps nothing of it", async () => {
      const huge = `c_${"7".repeat(1024 * 1024)}`;
      await nothingReachesMeta(async () => {
        const body = JSON.stringify(webhookPayload(TEST_PAGE_ID, [[connectEvent({ callId: huge, pageId: TEST_PAGE_ID, psid: "5550001", direction: "user_initiated" })]]));
        expect(await postSigned(h, body)).toBe(400);
      });
      const lines = refusals("MAX_ID_LENGTH");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ msg: "webhook refused: over a limit", max: 128 });
      expect(String(lines[0]!.reason).length).toBeLessThan(200);
      // The id is in no log line either.
      expect(h.logs.lines.some((l) => JSON.stringify(l).includes("7".repeat(1000)))).toBe(false);
    });

    it("refuses a media_update whose SDP is over SDP_MAX_LINES with 400", async () => {
      await nothingReachesMeta(async () => {
        const sdp = SDP + "a=x\r\n".repeat(1000);
        const body = JSON.stringify(webhookPayload(TEST_PAGE_ID, [[mediaUpdateEvent({ callId: "c_4440001", version: 2, sdp })]]));
        expect(await postSigned(h, body)).toBe(400);
      });
      expect(refusals("SDP_MAX_LINES")).toHaveLength(1);
    });

    it("answers 413 to a body over WEBHOOK_MAX_BODY_BYTES, declared or streamed, without reading it all", async () => {
      await nothingReachesMeta(async () => {
        const big = Buffer.alloc(4 * 1024 * 1024, 0x20);
        expect(await post(h.webhookUrl, big, { "x-hub-signature-256": signBody(big, TEST_APP_SECRET) })).toBe(413);
        // Chunked: no Content-Length to go by, so the bound is applied while reading.
        const streamed = await new Promise<number>((resolve, reject) => {
          const rq = http.request(h.webhookUrl, { method: "POST", headers: { "transfer-encoding": "chunked" } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          rq.on("error", reject);
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          let sent = 0;
          const pump = (): void => {
            while (sent < 64 && rq.write(chunk)) sent++;
            if (sent < 64 && !rq.destroyed) rq.once("drain", pump);
          };
          pump();
        });
        expect(streamed).toBe(413);
      });
      expect(refusals("WEBHOOK_MAX_BODY_BYTES").length).toBeGreaterThanOrEqual(2);
      expect(refusals("WEBHOOK_MAX_BODY_BYTES")[0]).toMatchObject({ msg: "webhook refused: body over the limit", max: 2_097_152 });
    });

    it("checks the signature before anything else: an unsigned deep body is a 401", async () => {
      const body = `{"object":${"[".repeat(10_000)}${"]".repeat(10_000)}}`;
      expect(await post(h.webhookUrl, body, {})).toBe(401);
    });
  });

  describe("SIP", () => {
    it("answers 404 with a log line to a Request-URI whose percent-encoding does not decode", async () => {
      await nothingReachesMeta(async () => {
        const rs = await finalResponse(h.gateway.sipAddress.port, invite(h.gateway.sipAddress.port, "%E0%A4%A").text);
        expect(rs).toMatch(/^SIP\/2\.0 404 Not A Messenger Consumer\r\n/);
      });
      const refused = h.logs.find("agent call refused").filter((l) => String(l.detail).includes("percent-encoded"));
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({ status: 404 });
      expect(h.logs.find("SIP request handler failed")).toEqual([]);
    });

    it("answers 404 naming MAX_ID_LENGTH to a PSID over it", async () => {
      await nothingReachesMeta(async () => {
        const rs = await finalResponse(h.gateway.sipAddress.port, invite(h.gateway.sipAddress.port, "9".repeat(300)).text);
        expect(statusOf(rs)).toBe(404);
      });
      expect(h.logs.find("agent call refused").some((l) => String(l.detail).includes("MAX_ID_LENGTH"))).toBe(true);
    });

    it("answers 488 to an SDP offer over SDP_MAX_LINES", async () => {
      await nothingReachesMeta(async () => {
        const rs = await finalResponse(h.gateway.sipAddress.port, invite(h.gateway.sipAddress.port, "7300000000001", { body: SDP + "a=x\r\n".repeat(1000) }).text);
        expect(rs).toMatch(/^SIP\/2\.0 488 SDP Too Large\r\n/);
      });
      expect(h.logs.find("agent call refused").some((l) => l.status === 488 && String(l.detail).includes("SDP_MAX_LINES"))).toBe(true);
    });

    it("answers 513 to an INVITE over SIP_MAX_MESSAGE_BYTES, logging the bound", async () => {
      await nothingReachesMeta(async () => {
        const rs = await finalResponse(h.gateway.sipAddress.port, invite(h.gateway.sipAddress.port, "7300000000002", { body: SDP + `a=pad:${"x".repeat(20_000)}\r\n` }).text);
        expect(rs).toMatch(/^SIP\/2\.0 513 Message Too Large\r\n/);
      });
      const line = h.logs.find("SIP message over a limit refused").find((l) => l.limit === "SIP_MAX_MESSAGE_BYTES");
      expect(line).toMatchObject({ max: 16_384, method: "INVITE", status: 513 });
    });

    it("answers 480 with Retry-After past SIP_MAX_CALLS_PER_SECOND from one source", async () => {
      const source = "127.0.0.9";
      await nothingReachesMeta(async () => {
        // Short PSIDs are refused (404) after the rate check, so nothing would reach Meta either way.
        const answers = await Promise.all(
          Array.from({ length: 8 }, () => finalResponse(h.gateway.sipAddress.port, invite(h.gateway.sipAddress.port, "42", { from: source }).text, source)),
        );
        const statuses = answers.map(statusOf).sort();
        expect(statuses.filter((s) => s === 404)).toHaveLength(5);
        expect(statuses.filter((s) => s === 480)).toHaveLength(3);
        const limited = answers.find((a) => statusOf(a) === 480)!;
        expect(limited).toMatch(/^SIP\/2\.0 480 Call Rate Limit Exceeded\r\n/);
        expect(limited).toMatch(/\r\nRetry-After: 1\r\n/);
      });
      // Refusals are logged once a second per limit (a flood must not flood the log), naming it.
      const logged = h.logs.find("agent call refused").filter((l) => l.status === 480 && String(l.detail).includes(`source ${source} sent more INVITEs than SIP_MAX_CALLS_PER_SECOND`));
      expect(logged.length).toBeGreaterThanOrEqual(1);
      expect(logged.length).toBeLessThan(3);
      expect(logged[0]!.limit).toBe("SIP_MAX_CALLS_PER_SECOND");
      // Another source is not held back by this one.
      const other = await finalResponse(h.gateway.sipAddress.port, invite(h.gateway.sipAddress.port, "42").text);
      expect(statusOf(other)).toBe(404);
    });
  });
});
