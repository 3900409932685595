import dgram from "node:dgram";
import sip from "sip";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { authorizationHeader, readChallenge } from "../../sip/embedded/digest.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { graphRequests, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * Agents that must authenticate: with SIP_AGENT_AUTH_* set, an INVITE from an allowed source is
 * challenged (401, digest), and only one that answers with the right credentials reaches Meta.
 * SIPp plays the agent and answers the challenge itself (-au/-ap).
 */
describe("agent digest authentication", () => {
  let h: Harness;
  const password = 'pa55, "word"';

  beforeAll(async () => {
    h = await startHarness({
      env: {
        SIP_ALLOW_FROM: "127.0.0.1",
        SIP_AGENT_AUTH_USER: "agent42",
        SIP_AGENT_AUTH_PASSWORD: password,
        SIP_AGENT_AUTH_REALM: "agents.test",
        // SIPp 3.6 answers only the topmost challenge and knows only MD5: the setting an operator
        // uses for phones like it.
        SIP_AGENT_AUTH_ALGORITHMS: "MD5,SHA-256",
      },
      sim: { outboundPickup: "manual" },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });

  async function agent(scenario: string, psid: string, user: string, secret: string) {
    const sipp = startSipp({
      scenario,
      port: await freePort(),
      remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
      service: psid,
      vars: { talk_ms: "1000" },
      timeoutS: 25,
      extraArgs: ["-au", user, "-ap", secret],
    });
    await sipp.ready;
    return sipp;
  }
  const graphFor = (psid: string) =>
    h.sim.requests.filter((r) => r.query.psid === psid || (r.body as { to?: string } | undefined)?.to === psid);

  it("challenges the first INVITE, then rings the consumer for the right credentials", async () => {
    const psid = "7200000000001";
    const sipp = await agent("gw-agent-call-auth.xml", psid, "agent42", password);
    await waitFor(() => h.logs.find("consumer ringing").some((l) => l.psid === psid), 10_000, "the consumer to ring");
    const call = h.sim.calls().find((c) => c.psid === psid)!;
    await call.answer();
    await call.waitForState("media", 10_000);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    await call.waitForState("ended", 5000);
    expect(h.logs.find("agent call challenged for credentials").length).toBeGreaterThanOrEqual(1);
    expect(graphRequests(h.sim).filter((r) => (r.body as { to?: string } | undefined)?.to === psid)).toHaveLength(1);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
  });

  it("challenges wrong credentials again, logs why, and sends nothing to Meta", async () => {
    const psid = "7200000000002";
    const refusedBefore = h.logs.find("agent call refused").length;
    const sipp = await agent("gw-agent-auth-refused.xml", psid, "agent42", "guess");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    const refused = h.logs.find("agent call refused").slice(refusedBefore);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ status: 401, detail: 'wrong credentials for user "agent42"' });
    expect(graphFor(psid)).toEqual([]);
    expect(h.gateway.registry.size).toBe(0);
  });
});

/**
 * The default challenge (RFC 8760): one WWW-Authenticate per algorithm, SHA-256 first, either
 * answer accepted. The agent here is a raw UDP socket; it dials a number that is not a PSID, so a
 * 404 means the credentials passed and nothing reached Meta.
 */
describe("agent digest authentication: SHA-256 and MD5 challenges", () => {
  let h: Harness;
  let socket: dgram.Socket;
  let seq = 0;
  const creds = { username: "agent42", password: "pa55" };

  beforeAll(async () => {
    h = await startHarness({ env: { SIP_ALLOW_FROM: "127.0.0.1", SIP_AGENT_AUTH_USER: creds.username, SIP_AGENT_AUTH_PASSWORD: creds.password } });
    socket = dgram.createSocket("udp4");
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  });
  afterAll(async () => {
    await new Promise<void>((r) => socket?.close(() => r()));
    await h?.stop();
  });

  /** One INVITE transaction: returns the final response, ACKed. */
  async function invite(authorization?: string): Promise<sip.Message> {
    const port = h.gateway.sipAddress.port;
    const local = socket.address().port;
    const uri = `sip:42@127.0.0.1:${port}`;
    const n = ++seq;
    const common = [`From: <sip:agent42@127.0.0.1:${local}>;tag=t${n}`, `Call-ID: auth-${n}-${Date.now()}@127.0.0.1`];
    const via = `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-auth${n}`;
    const rq = [
      `INVITE ${uri} SIP/2.0`,
      via,
      ...common,
      `To: <${uri}>`,
      "CSeq: 1 INVITE",
      `Contact: <sip:agent42@127.0.0.1:${local}>`,
      ...(authorization ? [`Authorization: ${authorization}`] : []),
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n");
    const final = await new Promise<{ rs: sip.Message; text: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no final response")), 3000);
      const onMessage = (m: Buffer): void => {
        const text = m.toString("latin1");
        const rs = sip.parse(text);
        if (!rs || (rs.status ?? 0) < 200) return;
        clearTimeout(timer);
        socket.off("message", onMessage);
        resolve({ rs, text });
      };
      socket.on("message", onMessage);
      socket.send(rq, port, "127.0.0.1");
    });
    // The ACK for a non-2xx carries the response's To (with its tag), RFC 3261 §17.1.1.3.
    const toLine = /^To:.*$/im.exec(final.text)?.[0] ?? "";
    socket.send([`ACK ${uri} SIP/2.0`, via, ...common, toLine, "CSeq: 1 ACK", "Content-Length: 0", "", ""].join("\r\n"), port, "127.0.0.1");
    return final.rs;
  }

  const challengesOf = (rs: sip.Message): Record<string, string | undefined>[] => (rs.headers["www-authenticate"] ?? []) as Record<string, string | undefined>[];
  const answer = (challenge: Record<string, string | undefined>, password = creds.password): string =>
    authorizationHeader(readChallenge(challenge)!, { username: creds.username, password }, "INVITE", `sip:42@127.0.0.1:${h.gateway.sipAddress.port}`);

  it("sends one WWW-Authenticate row per algorithm, SHA-256 first, sharing one nonce", async () => {
    const rs = await invite();
    expect(rs.status).toBe(401);
    const rows = challengesOf(rs);
    expect(rows.map((c) => c.algorithm)).toEqual(["SHA-256", "MD5"]);
    expect(rows[0]!.nonce).toBe(rows[1]!.nonce);
    expect(rows.every((c) => c.realm === '"meta-sip-gateway"' && c.qop === '"auth"')).toBe(true);
  });

  it("accepts an answer to either challenge, and challenges a wrong password again", async () => {
    const requestsBefore = h.sim.requests.length;
    for (const index of [0, 1]) {
      const challenge = challengesOf(await invite())[index]!;
      const rs = await invite(answer(challenge));
      // Past authentication, "42" is refused as not a PSID.
      expect(rs.status, String(challenge.algorithm)).toBe(404);
    }
    const wrong = await invite(answer(challengesOf(await invite())[0]!, "guess"));
    expect(wrong.status).toBe(401);
    expect(h.logs.find("agent call refused").some((l) => l.status === 401 && l.detail === 'wrong credentials for user "agent42"')).toBe(true);
    expect(h.sim.requests.length).toBe(requestsBefore);
  });
});
