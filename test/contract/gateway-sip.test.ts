import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { detectTone } from "../../transcode/tone.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { Kamailio } from "../support/kamailio.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { announceSkips, BACKENDS, suiteTitle } from "./backends.js";

/**
 * The whole gateway on each SIP backend: a consumer's Messenger call through a digest-challenging,
 * Record-Routing kamailio to a real phone with audio both ways, and agents' INVITEs meeting the
 * same source allowlist and digest challenge.
 */

announceSkips();

/** A base for a phone's 100 RTP ports, away from the harness's 42000–42999 and SIPp's 20000–31999. */
function phoneRtpBase(): number {
  return 33000 + 100 * Math.floor(Math.random() * 60);
}

for (const backend of BACKENDS) {
  describe.skipIf(backend.skipReason !== undefined)(suiteTitle("Gateway SIP contract", backend), () => {
    describe("consumer call through kamailio (407 digest, Record-Route) to baresip", () => {
      let h: Harness;
      let phone: Baresip;
      let kamailio: Kamailio;

      beforeAll(async () => {
        const phonePort = await freePort();
        const proxyPort = await freePort();
        phone = await Baresip.start({ port: phonePort, toneHz: 1000, rtpPortMin: phoneRtpBase() });
        kamailio = await Kamailio.start({ port: proxyPort, forwardToPort: phonePort, realm: "pbx.test", username: "alice", password: "s3cret" });
        h = await startHarness({
          sipBackend: backend.name,
          env: { SIP_TARGET: `sip:agent@127.0.0.1:${proxyPort}`, SIP_AUTH_USER: "alice", SIP_AUTH_PASSWORD: "s3cret" },
        });
      });
      afterAll(async () => {
        await h?.stop();
        await kamailio?.stop();
        await phone?.stop();
      });
      beforeEach(({ onTestFailed }) => {
        onTestFailed(() => {
          const failed = h?.logs.find(/SIP call failed|PBX did not take the call/) ?? [];
          process.stdout.write(`--- gateway ---\n${JSON.stringify(failed)}\n--- kamailio (tail) ---\n${kamailio?.log.slice(-6000)}\n`);
          if (h?.drachtio) process.stdout.write(`--- drachtio-server (tail) ---\n${h.drachtio.log().slice(-8000)}\n`);
        });
      });

      it("answers the proxy's challenge, carries audio both ways, and ends through the proxy", async () => {
        const call = await h.sim.placeCall({ toneHz: 440 });
        await call.waitForState("accepted", 15_000);
        await call.waitForState("media", 10_000);
        await sleep(2500);

        const heard = call.consumer.detectTone(1);
        expect(Math.abs(heard.hz - 1000)).toBeLessThan(10);
        expect(heard.levelDbfs).toBeGreaterThan(-35);
        const stats = h.gateway.registry.get(call.id)!.pbxMediaStats()!;
        expect(stats.rtp!.packetsReceived).toBeGreaterThan(50);
        expect(stats.rtp!.packetsSent).toBeGreaterThan(50);

        await call.hangup();
        await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
        await sleep(500);
        const { pcm, sampleRate } = phone.receivedPcm();
        expect(pcm.length).toBeGreaterThan(sampleRate);
        const atPhone = detectTone(pcm.subarray(pcm.length - sampleRate), sampleRate);
        expect(Math.abs(atPhone.hz - 440)).toBeLessThan(10);
        expect(atPhone.levelDbfs).toBeGreaterThan(-35);

        // The proxy challenged the INVITE, accepted the answer, and saw the ACK and BYE come back
        // along its Record-Route.
        expect(kamailio.log).toMatch(/KAM challenge /);
        expect(kamailio.log).toMatch(/KAM authorized .* user alice/);
        expect(kamailio.log).toMatch(/KAM in-dialog ACK loose-routed/);
        expect(kamailio.log).toMatch(/KAM in-dialog BYE loose-routed/);
        expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(0);
      });
    });

    describe("agents calling consumers: allowlist and digest challenge", () => {
      let h: Harness;
      const password = "agent-pa55";

      beforeAll(async () => {
        h = await startHarness({
          sipBackend: backend.name,
          env: {
            SIP_ALLOW_FROM: "127.0.0.1",
            SIP_AGENT_AUTH_USER: "agent42",
            SIP_AGENT_AUTH_PASSWORD: password,
            SIP_AGENT_AUTH_REALM: "agents.test",
            // SIPp answers only the topmost challenge and knows only MD5.
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

      async function agent(scenario: string, psid: string, secret: string) {
        const sipp = startSipp({
          scenario,
          port: await freePort(),
          remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
          service: psid,
          vars: { talk_ms: "1000" },
          timeoutS: 25,
          extraArgs: ["-au", "agent42", "-ap", secret],
        });
        await sipp.ready;
        return sipp;
      }

      it("challenges the first INVITE, then rings the consumer; the call carries media and ends at Meta", async () => {
        const psid = "7300000000101";
        const sipp = await agent("gw-agent-call-auth.xml", psid, password);
        await waitFor(() => h.logs.find("consumer ringing").some((l) => l.psid === psid), 10_000, "the consumer to ring");
        const call = h.sim.calls().find((c) => c.psid === psid)!;
        await call.answer();
        await call.waitForState("media", 10_000);
        const result = await finish(sipp);
        expect(result.code, describeSipp(result)).toBe(0);
        await call.waitForState("ended", 5000);
        expect(h.logs.find("agent call challenged for credentials").length).toBeGreaterThanOrEqual(1);
        expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(1);
      });

      it("wrong credentials are refused 401 again, and nothing reaches Meta", async () => {
        const psid = "7300000000102";
        const sipp = await agent("gw-agent-auth-refused.xml", psid, "guess");
        const result = await finish(sipp);
        expect(result.code, describeSipp(result)).toBe(0);
        const refused = h.logs.find("agent call refused").filter((l) => l.detail === 'wrong credentials for user "agent42"');
        expect(refused.length).toBeGreaterThanOrEqual(1);
        expect(h.sim.requests.filter((r) => r.query.psid === psid || (r.body as { to?: string } | undefined)?.to === psid)).toEqual([]);
      });
    });

    describe("a blind transfer (REFER) from the PBX", () => {
      let h: Harness;
      let pbxPort: number;
      let newPartyPort: number;
      beforeAll(async () => {
        pbxPort = await freePort();
        newPartyPort = await freePort();
        h = await startHarness({ sipBackend: backend.name, env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
      });
      afterAll(async () => {
        await h?.stop();
      });
      beforeEach(() => requireSipp());
      afterEach(async () => {
        await killAllSipp();
      });

      it("is accepted (202), reported in NOTIFYs, and moves the consumer to the new party; the old one gets BYE", async () => {
        const a = startSipp({
          scenario: "gw-refer.xml",
          port: pbxPort,
          vars: { audio_port: "9", refer_after_ms: "800", refer_to: `sip:b@127.0.0.1:${newPartyPort}` },
          timeoutS: 30,
        });
        const b = startSipp({ scenario: "gw-transfer-target.xml", port: newPartyPort, vars: { audio_port: "9", answer_after_ms: "0" }, timeoutS: 30 });
        await Promise.all([a.ready, b.ready]);
        const call = await h.sim.placeCall();
        await call.waitForState("media", 10_000);
        await waitFor(() => h.logs.find("transfer complete: the consumer is with the new party").some((l) => l.callId === call.id), 10_000, "the transfer");
        const resultA = await finish(a);
        expect(resultA.code, describeSipp(resultA)).toBe(0);
        expect(resultA.logs).toContain("NOTIFY SIP/2.0 100 Trying");
        expect(resultA.logs).toContain("NOTIFY SIP/2.0 200 OK");
        expect(h.gateway.registry.get(call.id)?.state).toBe("active");
        expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(0);
        await call.hangup();
        const resultB = await finish(b);
        expect(resultB.code, describeSipp(resultB)).toBe(0);
        expect(resultB.logs).toMatch(/transfer INVITE Referred-By: <sip:agent@127\.0\.0\.1:\d+> X-Meta-PSID: \d+/);
      }, 40_000);
    });

    describe("agents from a source not allowed", () => {
      let h: Harness;
      beforeAll(async () => {
        h = await startHarness({ sipBackend: backend.name, env: { SIP_ALLOW_FROM: "192.0.2.0/24" } });
      });
      afterAll(async () => {
        await h?.stop();
      });
      beforeEach(() => requireSipp());
      afterEach(async () => {
        await killAllSipp();
      });

      it("are answered 403 and never reach Meta", async () => {
        const psid = "7300000000103";
        const sipp = startSipp({
          scenario: "gw-agent-refused.xml",
          port: await freePort(),
          remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
          service: psid,
          vars: { status: "403" },
        });
        const result = await finish(sipp);
        expect(result.code, describeSipp(result)).toBe(0);
        expect(h.logs.find("agent call refused").some((l) => l.status === 403 && l.source === "127.0.0.1")).toBe(true);
        expect(h.sim.requests.filter((r) => r.query.psid === psid)).toEqual([]);
      });
    });
  });
}
