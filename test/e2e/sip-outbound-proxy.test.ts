import { afterEach, describe, expect, it } from "vitest";
import { graphRequests, startHarness, waitFor, type Harness } from "../support/harness.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/**
 * SIP_OUTBOUND_PROXY (RFC 3261 §8.1.2): the INVITE goes to the proxy, with the target still the
 * Request-URI and the proxy as a loose-routing pre-loaded Route; the target's host is never
 * resolved (pbx.example.invalid cannot be).
 */
describe("outbound proxy", () => {
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
    h = await startHarness({ env: { SIP_TARGET: "sip:agent@pbx.example.invalid", SIP_OUTBOUND_PROXY: `sip:127.0.0.1:${port}` } });
    const call = await h.sim.placeCall({ toneHz: 440 });
    await call.waitForState("accepted", 10_000);
    expect(graphRequests(h.sim, "accept", call.id)).toHaveLength(1);
    await call.hangup();
    await waitFor(() => h!.gateway.registry.size === 0, 5000, "the call to end");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
  });
});
