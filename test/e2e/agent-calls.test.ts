import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SimCall } from "../../sim/index.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp, type SippResult } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * Agents call consumers: an INVITE from the PBX (SIPp) becomes a business-initiated Messenger
 * call through the real gateway, against the simulator playing the consumer.
 */
describe("agent calls a consumer", () => {
  let h: Harness;
  let psidSeq = 0;
  const nextPsid = (): string => `7100000${String(++psidSeq).padStart(4, "0")}`;

  beforeAll(async () => {
    h = await startHarness({
      env: { SIP_ALLOW_FROM: "127.0.0.1", RING_TIMEOUT_MS: "5000" },
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

  async function agent(scenario: string, psid: string, opts: { vars?: Record<string, string>; address?: string; echo?: boolean } = {}) {
    const port = await freePort(opts.address);
    const sipp = startSipp({
      scenario,
      port,
      address: opts.address,
      remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
      service: psid,
      vars: opts.vars,
      timeoutS: 25,
      extraArgs: opts.echo ? ["-rtp_echo"] : [],
    });
    await sipp.ready;
    return sipp;
  }

  const simCallFor = (psid: string): SimCall | undefined => h.sim.calls().find((c) => c.psid === psid);
  /** The consumer's phone rings once Meta's call_status webhook reached the gateway (180 sent). */
  const ringing = (psid: string): Promise<void> =>
    waitFor(() => h.logs.find("consumer ringing").some((l) => l.psid === psid), 5000, `the consumer ${psid} to ring`);
  const permissionChecks = (psid: string) => h.sim.requests.filter((r) => r.path.includes("messenger_call_permissions") && r.query.psid === psid);
  const connects = (psid: string) => graphRequests(h.sim).filter((r) => (r.body as { to?: string } | undefined)?.to === psid);

  it("permission present: ringing, answered, audio both ways, BYE from the agent", async () => {
    const psid = nextPsid();
    const sipp = await agent("gw-agent-call.xml", psid, { vars: { talk_ms: "3000" }, echo: true });
    await ringing(psid);
    const call = simCallFor(psid)!;
    await call.answer();
    await call.waitForState("media", 10_000);
    await sleep(1200);
    // The consumer's 440 Hz went to the agent's phone as G.711 and came back (RTP echo) as Opus.
    const heard = call.consumer.detectTone(1);
    expect(Math.abs(heard.hz - 440)).toBeLessThan(10);
    expect(heard.levelDbfs).toBeGreaterThan(-35);
    const result: SippResult = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    await call.waitForState("ended", 5000);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
    expect(connects(psid)).toHaveLength(1);
    expect(permissionChecks(psid)).toHaveLength(1);
  });

  it("consumer hangs up after answering: BYE to the agent", async () => {
    const psid = nextPsid();
    const sipp = await agent("gw-agent-call-consumer-bye.xml", psid);
    await ringing(psid);
    const call = simCallFor(psid)!;
    await call.answer();
    await call.waitForState("media", 10_000);
    await call.hangup();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });

  it("no permission: the agent gets 403 with a reason and no connect is sent", async () => {
    const psid = nextPsid();
    h.sim.setPermission(psid, "no_permission");
    const sipp = await agent("gw-agent-refused.xml", psid, { vars: { status: "403" } });
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/refused SIP\/2.0 403 Consumer Has Not Granted Call Permission/);
    expect(permissionChecks(psid)).toHaveLength(1);
    expect(connects(psid)).toHaveLength(0);
  });

  it("consumer declines: 486 to the agent", async () => {
    const psid = nextPsid();
    const sipp = await agent("gw-agent-refused.xml", psid, { vars: { status: "486" } });
    await ringing(psid);
    await simCallFor(psid)!.decline();
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toMatch(/refused SIP\/2.0 486 Consumer Declined/);
  });

  it("consumer does not answer: 480 to the agent, the call ended at Meta", async () => {
    const psid = nextPsid();
    const sipp = await agent("gw-agent-refused.xml", psid, { vars: { status: "480" } });
    const result = await finish(sipp, 20_000);
    expect(result.code, describeSipp(result)).toBe(0);
    const call = simCallFor(psid)!;
    await call.waitForState("ended", 5000);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
  });

  it("CANCEL while the consumer rings: terminate at Meta", async () => {
    const psid = nextPsid();
    const sipp = await agent("uac-cancel.xml", psid);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    const call = simCallFor(psid)!;
    await call.waitForState("ended", 5000);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
  });

  it("an INVITE from outside the allowlist gets 403 and no Graph API request", async () => {
    const psid = nextPsid();
    const before = h.sim.requests.length;
    const sipp = await agent("gw-agent-refused.xml", psid, { vars: { status: "403" }, address: "127.0.0.2" });
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(h.sim.requests.length).toBe(before);
    expect(h.logs.find("agent call refused").some((l) => l.source === "127.0.0.2" && l.status === 403)).toBe(true);
  });

  it("a connect that times out is not retried: one ring per INVITE, and the agent hears why", async () => {
    const psid = nextPsid();
    h.sim.failNext("connect", "timeout");
    const sipp = await agent("gw-agent-refused.xml", psid, { vars: { status: "504" } });
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    await sleep(500);
    expect(connects(psid)).toHaveLength(1);
  });
});

describe("agent calls a consumer without permission, with permission requests on", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { SIP_ALLOW_FROM: "127.0.0.1", CALL_PERMISSION_REQUEST: "true" } });
  });
  afterAll(async () => {
    await h?.stop();
  });
  afterEach(async () => {
    await killAllSipp();
  });

  it("sends calling_optin within Meta's limit of 2 a day, then only refuses", async () => {
    requireSipp();
    const psid = "7300000000001";
    h.sim.setPermission(psid, "no_permission");
    const reasons: string[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const sipp = startSipp({ scenario: "gw-agent-refused.xml", port, remote: `127.0.0.1:${h.gateway.sipAddress.port}`, service: psid, vars: { status: "403" } });
      await sipp.ready;
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      reasons.push(/refused SIP\/2.0 403 ([^\n]*)/.exec(result.logs)?.[1]?.trim() ?? "");
    }
    expect(reasons).toEqual([
      "Call Permission Requested From Consumer",
      "Call Permission Requested From Consumer",
      "Consumer Has Not Granted Call Permission",
    ]);
    expect(h.sim.permissionRequestsTo(psid)).toBe(2);
    expect(graphRequests(h.sim).filter((r) => (r.body as { to?: string } | undefined)?.to === psid)).toHaveLength(0);
  });
});
