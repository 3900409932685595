import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Baresip } from "../../scripts/peers/baresip.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

const PHONE_PORT = 25460;
const CONTROL_PORT = 25459;

/**
 * A real SIP video phone (baresip with libavcodec's H.264 decoder) shows the consumer's video:
 * whatever codec the consumer sends, the phone decodes H.264 frames. Two snapshots of what it
 * decoded, a second apart, prove frames keep coming (the test pattern carries a running clock).
 */
describe("consumer video decoded by a real SIP video phone", () => {
  let h: Harness;
  let phone: Baresip;
  const dir = mkdtempSync(join(tmpdir(), "snapshots-"));

  beforeAll(async () => {
    phone = await Baresip.start({ port: PHONE_PORT, toneHz: 1000, rtpPortMin: 25500, video: true, controlPort: CONTROL_PORT });
    h = await startHarness({ env: { SIP_TARGET: `sip:agent@127.0.0.1:${PHONE_PORT}` } });
  });
  afterAll(async () => {
    await h?.stop();
    await phone?.stop();
  });

  const snapshot = async (name: string): Promise<Buffer> => {
    const file = join(dir, `${name}.png`);
    expect(await phone.command(CONTROL_PORT, "snapshot_recv", file)).toMatch(/"ok":true/);
    await waitFor(() => existsSync(file), 3000, `the phone's snapshot ${name}`);
    await sleep(100);
    return readFileSync(file);
  };

  let currentCodec: "H264" | "VP8" | "VP9" | "H265" | "AV1" = "H264";
  it.each(["H264", "VP8", "VP9", "H265", "AV1"] as const)("%s from the consumer: the phone decodes H.264 frames", async (codec) => {
    currentCodec = codec;
    const call = await h.sim.placeCall();
    try {
      await runCall(call);
    } finally {
      await call.hangup().catch(() => undefined);
      await waitFor(() => h.gateway.registry.size === 0, 5000, "the call to end");
    }
  }, 60_000);

  async function runCall(call: Awaited<ReturnType<Harness["sim"]["placeCall"]>>): Promise<void> {
    await call.waitForState("media", 10_000);
    const decoders = (): number => phone.log.split("Set video decoder: H264").length - 1;
    const before = decoders();
    expect(await call.startVideo({ codec: currentCodec })).toBe(200);
    await waitFor(() => decoders() > before, 10_000, "the phone to start its H.264 decoder");
    await sleep(2000);
    const first = await snapshot(`${currentCodec}-1`);
    await sleep(1000);
    const second = await snapshot(`${currentCodec}-2`);
    // A decoded 640x360 test pattern, not an empty frame, and a later one differs (its clock ran).
    expect(first.subarray(1, 4).toString()).toBe("PNG");
    expect(first.length).toBeGreaterThan(20_000);
    expect(second.equals(first)).toBe(false);
  }
});
