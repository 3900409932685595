import { afterEach, describe, expect, it } from "vitest";
import { gatewayBackends } from "../support/drachtio.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/**
 * SIP_REGISTRAR against SIPp as the registrar, on each SIP backend: digest, refresh before expiry,
 * 423 Min-Expires, back-off, removal at stop, and /readyz following the binding.
 */
for (const backend of gatewayBackends()) {
  describe.skipIf(backend.skipReason !== undefined)(`registration [${backend.name}]`, () => {
    let h: Harness | undefined;
    afterEach(async () => {
      await killAllSipp();
      await h?.stop();
      h = undefined;
    });

    const readyz = async (harness: Harness): Promise<number> => (await fetch(harness.webhookUrl.replace("/webhooks/meta", "/readyz"))).status;
    const gateway = (env: Record<string, string>): Promise<Harness> => startHarness({ sipBackend: backend.name, env });

    it("registers with digest, refreshes before the 2 s binding expires, and removes it at shutdown", async () => {
      requireSipp();
      const port = await freePort();
      const sipp = startSipp({ scenario: "uas-registrar.xml", port, timeoutS: 20 });
      await sipp.ready;
      h = await gateway({ SIP_REGISTRAR: `sip:127.0.0.1:${port}`, SIP_REGISTER_USER: "alice", SIP_REGISTER_PASSWORD: "s3cret", SIP_REGISTER_EXPIRES: "120" });
      expect(h.drachtio !== undefined).toBe(backend.name === "drachtio");
      await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
      expect(h.logs.find("SIP registration in place")[0]!.expiresS).toBe(2);
      expect(await readyz(h)).toBe(200);
      // The refresh goes out a second before expiry and is taken (the scenario checks it).
      await sleep(1800);
      expect(h.logs.find("SIP registration failed")).toHaveLength(0);
      expect(JSON.stringify(h.logs.lines)).not.toContain("s3cret");
      await h.stop();
      h = undefined;
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      expect(result.messages.match(/^REGISTER /gm)).toHaveLength(4);
    });

    it("a registrar that answers 423: asked again with its Min-Expires, which the refresh keeps", async () => {
      requireSipp();
      const port = await freePort();
      const sipp = startSipp({ scenario: "uas-registrar-423.xml", port, timeoutS: 20 });
      await sipp.ready;
      h = await gateway({ SIP_REGISTRAR: `sip:127.0.0.1:${port}`, SIP_REGISTER_USER: "alice", SIP_REGISTER_EXPIRES: "120" });
      await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
      expect(await readyz(h)).toBe(200);
      await sleep(1800);
      expect(h.logs.find("SIP registration failed")).toHaveLength(0);
      await h.stop();
      h = undefined;
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
      expect(result.messages.match(/^Expires: 600/gm)).toHaveLength(2);
    });

    it("a registrar that refuses: not ready, the failure logged, and tried again after the back-off", async () => {
      requireSipp();
      const port = await freePort();
      const sipp = startSipp({ scenario: "uas-registrar-refuses.xml", port, timeoutS: 20 });
      await sipp.ready;
      h = await gateway({ SIP_REGISTRAR: `sip:127.0.0.1:${port}`, SIP_REGISTER_USER: "alice" });
      await waitFor(() => h!.logs.find("SIP registration failed").length > 0, 5000, "the refusal");
      const first = h.logs.find("SIP registration failed")[0]!;
      expect(first.status).toBe(403);
      expect(first.retryInMs).toBe(5000);
      expect(await readyz(h)).toBe(503);
      await waitFor(() => h!.logs.find("SIP registration failed").length > 1, 8000, "the retry");
      expect(h.logs.find("SIP registration failed")[1]!.retryInMs).toBe(10000);
      expect(await readyz(h)).toBe(503);
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
    }, 30_000);
  });
}
