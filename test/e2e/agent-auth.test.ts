import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
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
      env: { SIP_ALLOW_FROM: "127.0.0.1", SIP_AGENT_AUTH_USER: "agent42", SIP_AGENT_AUTH_PASSWORD: password, SIP_AGENT_AUTH_REALM: "agents.test" },
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
      remote: `127.0.0.1:${h.gateway.sipPort}`,
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
