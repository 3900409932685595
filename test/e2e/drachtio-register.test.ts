import { afterEach, describe, expect, it } from "vitest";
import { drachtioAvailability, drachtioRequired } from "../support/drachtio.js";
import { startHarness, waitFor, type Harness } from "../support/harness.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/**
 * A registration on the drachtio backend when drachtio-server goes away and comes back: /readyz
 * 503 while it is gone, and the binding made again as soon as the connection is back (the answer
 * to a REGISTER in flight when it went would never come).
 */
function skipReason(): string | undefined {
  const where = drachtioAvailability();
  if (where.kind === "local" || drachtioRequired()) return undefined; // in CI: run, and fail on a missing server
  return where.kind === "none" ? where.reason : "DRACHTIO_HOST names a server these tests cannot kill and restart";
}
const skip = skipReason();
if (skip) process.stdout.write(`drachtio registration tests skipped: ${skip}\n`);

describe.skipIf(skip !== undefined)("drachtio backend: registration across a drachtio-server restart", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await killAllSipp();
    await h?.stop();
    h = undefined;
  });

  const readyz = async (harness: Harness): Promise<number> => (await fetch(harness.webhookUrl.replace("/webhooks/meta", "/readyz"))).status;

  it("not ready while drachtio-server is gone; registered again at once when it is back", async () => {
    requireSipp();
    const port = await freePort();
    const sipp = startSipp({ scenario: "uas-registrar-rebind.xml", port, timeoutS: 30 });
    await sipp.ready;
    h = await startHarness({ sipBackend: "drachtio", env: { SIP_REGISTRAR: `sip:127.0.0.1:${port}`, SIP_REGISTER_USER: "alice", SIP_REGISTER_EXPIRES: "120" } });
    await waitFor(() => h!.logs.find("SIP registration in place").length > 0, 5000, "the registration");
    expect(await readyz(h)).toBe(200);
    const killedAt = Date.now();
    await h.drachtio!.kill();
    await waitFor(() => h!.logs.find(/drachtio-server connection lost/).length > 0, 5000, "the connection loss");
    expect(await readyz(h)).toBe(503);
    const notReadyMs = Date.now() - killedAt;
    const restartedAt = Date.now();
    await h.drachtio!.restart();
    // The REGISTER that makes the binding again goes out at once, not at the refresh 30 s on.
    await waitFor(() => h!.logs.find("SIP registration refreshed").length > 0, 10_000, "the binding made again");
    const reboundMs = Date.now() - restartedAt;
    expect(await readyz(h)).toBe(200);
    process.stdout.write(`drachtio registration: /readyz 503 ${notReadyMs} ms after the kill, binding made again ${reboundMs} ms after the restart\n`);
    expect(h.logs.find("SIP registration failed")).toHaveLength(0);
    await h.stop();
    h = undefined;
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.messages.match(/^REGISTER /gm)).toHaveLength(3);
  });
});
