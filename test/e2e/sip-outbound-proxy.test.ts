import { afterEach, describe, expect, it } from "vitest";
import { gatewayBackends } from "../support/drachtio.js";
import { graphRequests, startHarness, waitFor, type Harness } from "../support/harness.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/**
 * SIP_OUTBOUND_PROXY (RFC 3261 §8.1.2) on each SIP backend: the INVITE goes to the proxy with the
 * target still the Request-URI; the target's host is never resolved (pbx.example.invalid cannot
 * be), nor the registrar's. The embedded stack names the proxy in a pre-loaded loose Route;
 * drachtio-server sends to it as the next hop and writes no Route.
 */
for (const backend of gatewayBackends()) {
  describe.skipIf(backend.skipReason !== undefined)(`outbound proxy [${backend.name}]`, () => {
    let h: Harness | undefined;
    afterEach(async () => {
      await killAllSipp();
      await h?.stop();
      h = undefined;
    });

    it("a consumer's call reaches the target through the proxy; in-dialog requests follow the dialog", async () => {
      requireSipp();
      const port = await freePort();
      const sipp = startSipp({ scenario: "uas-outbound-proxy.xml", port, timeoutS: 20 });
      await sipp.ready;
      h = await startHarness({ sipBackend: backend.name, env: { SIP_TARGET: "sip:agent@pbx.example.invalid", SIP_OUTBOUND_PROXY: `sip:127.0.0.1:${port}` } });
      const call = await h.sim.placeCall({ toneHz: 440 });
      await call.waitForState("accepted", 10_000);
      expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
      await call.hangup();
      await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      const invite = /^INVITE sip:agent@pbx\.example\.invalid SIP\/2\.0\r?\n[\s\S]*?\r?\n\r?\n/m.exec(result.messages)?.[0];
      expect(invite, describeSipp(result)).toBeDefined();
      const routes = invite!.match(/^Route: .*$/gm) ?? [];
      expect(routes.map((r) => r.trim())).toEqual(backend.name === "embedded" ? [`Route: <sip:127.0.0.1:${port};lr>`] : []);
    });

    it("a transfer's INVITE (following the PBX's REFER) goes through the proxy too", async () => {
      requireSipp();
      const port = await freePort();
      const sipp = startSipp({
        scenario: "uas-proxy-transfer.xml",
        port,
        calls: 2,
        vars: { audio_port: String(await freePort()), target_audio_port: String(await freePort()), refer_after_ms: "500", refer_to: "sip:b@transfer.example.invalid" },
        timeoutS: 20,
      });
      await sipp.ready;
      h = await startHarness({
        sipBackend: backend.name,
        env: { SIP_TARGET: "sip:agent@pbx.example.invalid", SIP_OUTBOUND_PROXY: `sip:127.0.0.1:${port}`, SIP_REFER_ALLOW: "transfer.example.invalid" },
      });
      const call = await h.sim.placeCall({ toneHz: 440 });
      await call.waitForState("media", 10_000);
      await waitFor(() => h!.logs.find("transfer complete: the consumer is with the new party").some((l) => l.callId === call.id), 10_000, "the transfer");
      await call.hangup();
      await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      expect(result.messages).toMatch(/^INVITE sip:b@transfer\.example\.invalid SIP\/2\.0/m);
    });

    it("the REGISTERs go through the proxy too: bound, ready, and removed at shutdown", async () => {
      requireSipp();
      const port = await freePort();
      const sipp = startSipp({ scenario: "uas-registrar-via-proxy.xml", port, timeoutS: 20 });
      await sipp.ready;
      h = await startHarness({
        sipBackend: backend.name,
        env: { SIP_REGISTRAR: "sip:pbx.example.invalid", SIP_REGISTER_USER: "alice", SIP_OUTBOUND_PROXY: `sip:127.0.0.1:${port}` },
      });
      await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
      expect((await fetch(h.webhookUrl.replace("/webhooks/meta", "/readyz"))).status).toBe(200);
      await h.stop();
      h = undefined;
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
    });
  });
}
