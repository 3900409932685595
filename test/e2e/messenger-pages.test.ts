import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { startHarness, TEST_PAGE_ID, TEST_PAGE_TOKEN, waitFor, type Harness } from "../support/harness.js";

const SECOND_PAGE = "2029384756";

/** Two Pages on one gateway, each ringing its own SIP target. */
describe("several Messenger Pages on one gateway", () => {
  let h: Harness;
  let firstPbx: number;
  let secondPbx: number;

  beforeAll(async () => {
    firstPbx = await freePort();
    secondPbx = await freePort();
    h = await startHarness({
      env: {
        META_PAGE_ID: `${TEST_PAGE_ID}=sip:sales@127.0.0.1:${firstPbx},${SECOND_PAGE}=sip:support@127.0.0.1:${secondPbx}`,
        META_PAGE_ACCESS_TOKEN: `${TEST_PAGE_TOKEN},EAAsecondpagetoken`,
        ACCEPT_TIMEOUT_MS: "3000",
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    await killAllSipp();
  });

  it("each Page's consumer calls ring that Page's target, named in X-Meta-Page-Id, and are refused through that Page", async () => {
    const first = startSipp({ scenario: "uas-page-route.xml", port: firstPbx, vars: { page: TEST_PAGE_ID }, timeoutS: 15 });
    const second = startSipp({ scenario: "uas-page-route.xml", port: secondPbx, vars: { page: SECOND_PAGE }, timeoutS: 15 });
    await Promise.all([first.ready, second.ready]);

    const call = await h.sim.placeCall();
    await call.waitForState("ended", 10_000);
    expect(h.sim.requests.filter((r) => r.rawBody.includes(call.id)).map((r) => r.action)).toEqual(["reject"]);

    // The simulator plays the first Page; the second Page's call arrives as Meta would send it.
    const callId = "c_2029384756000001";
    const body = {
      object: "page",
      entry: [{ id: SECOND_PAGE, time: Date.now(), calls: [{ id: callId, to: SECOND_PAGE, from: "7700000000002", event: "connect", timestamp: Math.floor(Date.now() / 1000), call_direction: "user_initiated" }] }],
    };
    expect(await h.sim.sendRawWebhook(JSON.stringify(body))).toBe(200);
    await waitFor(() => h.sim.requests.some((r) => r.rawBody.includes(callId)), 10_000, "the second Page's reject");
    const reject = h.sim.requests.find((r) => r.rawBody.includes(callId))!;
    // The simulator knows only the first Page's token: what matters is where it went and with which.
    expect(JSON.parse(reject.rawBody)).toEqual({ platform: "messenger", action: "reject", call_id: callId });
    expect(reject.path).toContain(`/${SECOND_PAGE}/calls`);
    expect(reject.headers.authorization).toBe("Bearer EAAsecondpagetoken");

    for (const sipp of [first, second]) {
      const result = await finish(sipp);
      expect(result.code, describeSipp(result)).toBe(0);
    }
  });
});
