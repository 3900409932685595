import { createSocket, type Socket } from "node:dgram";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { graphRequests, sleep, startHarness, waitFor, type Harness } from "../support/harness.js";
import { phoneAudio } from "../support/phone-audio.js";

async function udpSocket(): Promise<{ sock: Socket; arrivals: number[] }> {
  const sock = createSocket("udp4");
  const arrivals: number[] = [];
  sock.on("message", (m) => {
    if ((m[1]! & 0x7f) === 0) arrivals.push(performance.now());
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
  return { sock, arrivals };
}

/**
 * The PBX hands a consumer's call on (RFC 3515 REFER): the consumer stays on the Meta leg while the
 * SIP party changes. SIPp plays the transferring phone and the new party; real UDP sockets their
 * audio.
 */
describe("blind transfer from the PBX", () => {
  let h: Harness;
  let pbxPort: number;
  let newPartyPort: number;
  let phoneA: Awaited<ReturnType<typeof udpSocket>>;
  let phoneB: Awaited<ReturnType<typeof udpSocket>>;
  beforeAll(async () => {
    pbxPort = await freePort();
    newPartyPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(async () => {
    requireSipp();
    phoneA = await udpSocket();
    phoneB = await udpSocket();
  });
  afterEach(async () => {
    phoneA.sock.close();
    phoneB.sock.close();
    await killAllSipp();
  });

  it("202, NOTIFY 100 then 200, the consumer now hears the new party, the old one gets BYE", async () => {
    const a = startSipp({
      scenario: "gw-refer.xml",
      port: pbxPort,
      vars: { audio_port: String(phoneA.sock.address().port), refer_after_ms: "1500", refer_to: `sip:b@127.0.0.1:${newPartyPort}` },
      timeoutS: 30,
    });
    const b = startSipp({ scenario: "gw-transfer-target.xml", port: newPartyPort, vars: { audio_port: String(phoneB.sock.address().port), answer_after_ms: "0" }, timeoutS: 30 });
    await Promise.all([a.ready, b.ready]);
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const gw = h.gateway.registry.get(call.id)!;
    const stopA = phoneAudio(gw.pbxMediaStats()!.rtp.localRtpPort, { toneHz: 440, from: phoneA.sock });
    await sleep(800);
    expect(Math.abs(call.consumer.detectTone(0.5).hz - 440)).toBeLessThan(15);

    await waitFor(() => h.logs.find("transfer complete: the consumer is with the new party").some((l) => l.callId === call.id), 10_000, "the transfer");
    stopA();
    const stopB = phoneAudio(gw.pbxMediaStats()!.rtp.localRtpPort, { toneHz: 900, from: phoneB.sock });
    try {
      await sleep(1200);
      expect(Math.abs(call.consumer.detectTone(0.5).hz - 900)).toBeLessThan(15);
      const before = phoneB.arrivals.length;
      await sleep(500);
      expect(phoneB.arrivals.length - before).toBeGreaterThan(15);
    } finally {
      stopB();
    }
    const resultA = await finish(a);
    expect(resultA.code, describeSipp(resultA)).toBe(0);
    expect(resultA.logs).toContain("NOTIFY SIP/2.0 100 Trying");
    expect(resultA.logs).toContain("NOTIFY SIP/2.0 200 OK");
    // The consumer never left: same Meta call, nothing ended at Meta.
    expect(h.gateway.registry.get(call.id)?.state).toBe("active");
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(0);

    await call.hangup();
    const resultB = await finish(b);
    expect(resultB.code, describeSipp(resultB)).toBe(0);
    expect(resultB.logs).toMatch(/transfer INVITE Referred-By: <sip:agent@127\.0\.0\.1:\d+> X-Meta-PSID: \d+/);
  }, 40_000);

  it("the transferring phone hangs up right after the 202: the consumer waits for the new party, then hears it", async () => {
    const a = startSipp({
      scenario: "gw-refer-bye.xml",
      port: pbxPort,
      vars: { audio_port: String(phoneA.sock.address().port), refer_after_ms: "1000", refer_to: `sip:b@127.0.0.1:${newPartyPort}`, refer_status: "202" },
      timeoutS: 30,
    });
    const b = startSipp({ scenario: "gw-transfer-target.xml", port: newPartyPort, vars: { audio_port: String(phoneB.sock.address().port), answer_after_ms: "2000" }, timeoutS: 30 });
    await Promise.all([a.ready, b.ready]);
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const resultA = await finish(a);
    expect(resultA.code, describeSipp(resultA)).toBe(0);
    await waitFor(() => h.logs.find("transfer complete: the consumer is with the new party").some((l) => l.callId === call.id), 10_000, "the transfer");
    const gw = h.gateway.registry.get(call.id)!;
    expect(gw.state).toBe("active");
    const stopB = phoneAudio(gw.pbxMediaStats()!.rtp.localRtpPort, { toneHz: 900, from: phoneB.sock });
    try {
      await sleep(1200);
      expect(Math.abs(call.consumer.detectTone(0.5).hz - 900)).toBeLessThan(15);
    } finally {
      stopB();
    }
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(0);
    await call.hangup();
    const resultB = await finish(b);
    expect(resultB.code, describeSipp(resultB)).toBe(0);
  }, 40_000);

  it("a new party that refuses: NOTIFY with its refusal, and the consumer stays with the first phone", async () => {
    const a = startSipp({
      scenario: "gw-refer-ringing.xml",
      port: pbxPort,
      vars: { audio_port: String(phoneA.sock.address().port), refer_after_ms: "1000", refer_to: `sip:b@127.0.0.1:${newPartyPort}` },
      timeoutS: 30,
    });
    const b = startSipp({ scenario: "uas-reject.xml", port: newPartyPort, vars: { status: "486", reason: "Busy Here" }, timeoutS: 30 });
    await Promise.all([a.ready, b.ready]);
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await waitFor(() => h.logs.find("transfer failed: the consumer stays with the current party").some((l) => l.callId === call.id), 10_000, "the failed transfer");
    const gw = h.gateway.registry.get(call.id)!;
    const stopA = phoneAudio(gw.pbxMediaStats()!.rtp.localRtpPort, { toneHz: 440, from: phoneA.sock });
    try {
      await sleep(1000);
      expect(Math.abs(call.consumer.detectTone(0.5).hz - 440)).toBeLessThan(15);
      expect(phoneA.arrivals.length).toBeGreaterThan(20);
    } finally {
      stopA();
    }
    await call.hangup();
    const resultA = await finish(a);
    expect(resultA.code, describeSipp(resultA)).toBe(0);
    expect(resultA.logs).toContain("NOTIFY SIP/2.0 180 Ringing");
    expect(resultA.logs).toContain("NOTIFY SIP/2.0 486 Busy Here");
    await finish(b);
  }, 40_000);

  it("a REFER to a host the policy does not allow is refused 403 and nobody is called", async () => {
    const a = startSipp({
      scenario: "gw-refer-refused.xml",
      port: pbxPort,
      vars: { audio_port: String(phoneA.sock.address().port), refer_after_ms: "800", refer_to: "sip:premium@192.0.2.55", refer_status: "403" },
      timeoutS: 30,
    });
    await a.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await waitFor(() => h.logs.find("transfer refused").some((l) => l.callId === call.id), 5000, "the refusal");
    await sleep(300);
    expect(h.gateway.registry.get(call.id)?.state).toBe("active");
    expect(h.logs.find("transfer: calling the new party").some((l) => l.callId === call.id)).toBe(false);
    await call.hangup();
    const result = await finish(a);
    expect(result.code, describeSipp(result)).toBe(0);
  }, 30_000);

  it("attended, completed by the PBX: an INVITE with Replaces takes the consumer, the replaced phone gets BYE", async () => {
    const a = startSipp({ scenario: "gw-answer.xml", port: pbxPort, timeoutS: 30 });
    await a.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    const gw = h.gateway.registry.get(call.id)!;
    const dialog = gw.pbxDialog()!;
    expect(dialog.hosts).toEqual(["127.0.0.1"]);
    // RFC 3891 §3: to-tag is the tag of the side receiving the INVITE (ours), from-tag the other's.
    const c = startSipp({
      scenario: "gw-replaces.xml",
      port: newPartyPort,
      remote: `127.0.0.1:${h.gateway.sipAddress.port}`,
      service: "transfer",
      vars: { audio_port: String(phoneB.sock.address().port), replaces: `${dialog.callId};to-tag=${dialog.localTag};from-tag=${dialog.remoteTag}` },
      timeoutS: 30,
    });
    await c.ready;
    await waitFor(() => h.logs.find("transfer complete: the consumer is with the new party").some((l) => l.callId === call.id), 10_000, "the replacement");
    expect(gw.pbxDialog()?.callId).not.toBe(dialog.callId);
    const stopC = phoneAudio(gw.pbxMediaStats()!.rtp.localRtpPort, { toneHz: 900, from: phoneB.sock });
    try {
      await sleep(1200);
      expect(Math.abs(call.consumer.detectTone(0.5).hz - 900)).toBeLessThan(15);
    } finally {
      stopC();
    }
    // The replaced phone was released; the consumer never left.
    const resultA = await finish(a);
    expect(resultA.code, describeSipp(resultA)).toBe(0);
    expect(graphRequests(h.sim, "terminate", call.id)).toHaveLength(0);
    await call.hangup();
    const resultC = await finish(c);
    expect(resultC.code, describeSipp(resultC)).toBe(0);
  }, 40_000);

  it("counts transfers by result in /metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/metrics`)).text();
    const count = (result: string): number => Number(new RegExp(`^gateway_sip_transfers\\{result="${result}"\\} (\\d+)`, "m").exec(text)?.[1] ?? -1);
    // The blind transfers before this test: two succeeded, one new party refused, one REFER was refused. The
    // attended transfer the PBX completed with INVITE/Replaces was no REFER of ours.
    expect(count("succeeded")).toBe(2);
    expect(count("failed")).toBe(1);
    expect(count("refused")).toBe(1);
  });

  it("a MESSAGE in the dialog is answered 405 with Allow (a method known but not taken), and the call goes on", async () => {
    const a = startSipp({ scenario: "gw-in-dialog-message.xml", port: pbxPort, vars: { audio_port: String(phoneA.sock.address().port), refer_after_ms: "500" }, timeoutS: 30 });
    await a.ready;
    const call = await h.sim.placeCall();
    await call.waitForState("media", 10_000);
    await sleep(1200);
    expect(h.gateway.registry.get(call.id)?.state).toBe("active");
    await call.hangup();
    const result = await finish(a);
    expect(result.code, describeSipp(result)).toBe(0);
    expect(result.logs).toContain("MESSAGE answered 405");
  }, 30_000);
});
