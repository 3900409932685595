import { createSocket, type Socket } from "node:dgram";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { CallEndInfo } from "../../gateway/call/meta-call.js";
import type { LiveCallView } from "../../gateway/observe/call-monitor.js";
import { ntpMiddle32, parseRtcp, serializeRtcp } from "../../sip/rtp/rtcp-packet.js";
import { encodeMulaw } from "../../transcode/g711.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/**
 * What each call sounded like, measured against impairments the test controls: the test is the
 * PBX's phone (SIPp answers the INVITE; the test's own sockets carry its RTP and RTCP), drops or
 * delays its own packets toward the gateway, and answers the gateway's RTCP sender reports with
 * receiver reports that say what it wants them to say.
 */

const PHONE_SSRC = 0x5eed;

interface PhoneOptions {
  /** Packets (by sequence number) never sent toward the gateway. */
  drop?: (seq: number) => boolean;
  /** Extra delay of each packet toward the gateway, ms. */
  delayMs?: () => number;
  /** Our receiver reports hold each answer to the gateway's SR this long while saying DLSR = 0: the RTT it sees. */
  rrHoldMs: number;
  /** Loss of the gateway's stream that our reports claim, 0–1. */
  reportedLoss: number;
}

/** The phone's media: RTP on an even port, RTCP on the next one. */
class TestPhone {
  private seq = 0;
  private sample = 0;
  private timer: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<NodeJS.Timeout>();
  private gatewaySsrc: number | undefined;
  private firstGatewaySeq: number | undefined;
  private highestGatewaySeq = 0;
  srsAnswered = 0;
  packetsFromGateway = 0;

  private constructor(
    readonly rtp: Socket,
    readonly rtcp: Socket,
  ) {}

  static async open(): Promise<TestPhone> {
    for (let i = 0; i < 20; i++) {
      const port = 33000 + 2 * Math.floor(Math.random() * 2000);
      const rtp = createSocket("udp4");
      const rtcp = createSocket("udp4");
      const ok = await Promise.all([bind(rtp, port), bind(rtcp, port + 1)]);
      if (ok.every(Boolean)) return new TestPhone(rtp, rtcp);
      rtp.close();
      rtcp.close();
    }
    throw new Error("no free RTP/RTCP port pair");
  }

  get port(): number {
    return this.rtp.address().port;
  }

  start(gatewayRtp: number, gatewayRtcp: number, o: PhoneOptions): void {
    this.rtp.on("message", (m) => {
      this.packetsFromGateway++;
      this.gatewaySsrc = m.readUInt32BE(8);
      const seq = m.readUInt16BE(2);
      this.firstGatewaySeq ??= seq;
      const ext = seq >= this.firstGatewaySeq ? seq : seq + 0x10000;
      if (ext > this.highestGatewaySeq) this.highestGatewaySeq = ext;
    });
    this.rtcp.on("message", (m) => {
      for (const p of parseRtcp(m)) {
        if (p.type !== "sr") continue;
        const lsr = ntpMiddle32(p.ntpSeconds, p.ntpFraction);
        const t = setTimeout(() => {
          this.pending.delete(t);
          this.srsAnswered++;
          this.report(gatewayRtcp, o.reportedLoss, lsr);
        }, o.rrHoldMs);
        this.pending.add(t);
      }
    });
    // Loss figures without waiting for an SR: a report every second, with no LSR (no RTT claimed).
    this.reportTimer = setInterval(() => this.report(gatewayRtcp, o.reportedLoss, 0), 1000);
    this.timer = setInterval(() => {
      const seq = this.seq++;
      const pcm = new Int16Array(160);
      for (let i = 0; i < 160; i++, this.sample++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 500 * this.sample) / 8000));
      if (o.drop?.(seq)) return;
      const p = Buffer.alloc(12 + 160);
      p[0] = 0x80;
      p[1] = 0;
      p.writeUInt16BE(seq & 0xffff, 2);
      p.writeUInt32BE((seq * 160) >>> 0, 4);
      p.writeUInt32BE(PHONE_SSRC, 8);
      p.set(encodeMulaw(pcm), 12);
      const delay = o.delayMs?.() ?? 0;
      if (delay <= 0) this.rtp.send(p, gatewayRtp, "127.0.0.1");
      else {
        const t = setTimeout(() => {
          this.pending.delete(t);
          this.rtp.send(p, gatewayRtp, "127.0.0.1");
        }, delay);
        this.pending.add(t);
      }
    }, 20);
  }

  private report(gatewayRtcp: number, loss: number, lsr: number): void {
    if (this.gatewaySsrc === undefined || this.firstGatewaySeq === undefined) return;
    const expected = this.highestGatewaySeq - this.firstGatewaySeq + 1;
    const rr = serializeRtcp([
      {
        type: "rr",
        ssrc: PHONE_SSRC,
        reports: [
          {
            ssrc: this.gatewaySsrc,
            fractionLost: Math.round(loss * 256),
            cumulativeLost: Math.round(loss * expected),
            highestSequence: this.highestGatewaySeq,
            jitter: 8,
            lastSenderReport: lsr,
            delaySinceLastSenderReport: 0,
          },
        ],
      },
    ]);
    this.rtcp.send(rr, gatewayRtcp, "127.0.0.1");
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.reportTimer);
    for (const t of this.pending) clearTimeout(t);
    this.rtp.close();
    this.rtcp.close();
  }
}

function bind(s: Socket, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    s.once("error", () => resolve(false));
    s.bind(port, "127.0.0.1", () => resolve(true));
  });
}

describe("call quality against controlled impairments", () => {
  let h: Harness;
  let pbxPort: number;
  let phone: TestPhone | undefined;
  const ended = new Map<string, CallEndInfo>();

  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
    h.gateway.registry.onCallEnded((info) => ended.set(info.callId, info));
  });
  afterAll(async () => {
    await h?.stop();
  });
  beforeEach(() => requireSipp());
  afterEach(async () => {
    phone?.close();
    phone = undefined;
    await killAllSipp();
  });

  async function liveCalls(): Promise<LiveCallView[]> {
    const res = await fetch(`http://127.0.0.1:${h.gateway.httpAddress.port}/calls`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    return ((await res.json()) as { calls: LiveCallView[] }).calls;
  }

  /** One consumer call through the test's phone; resolves with its end record and a live view taken near the end. */
  async function runCall(o: PhoneOptions & { untilMs: number; until?: () => boolean }): Promise<{ info: CallEndInfo; live: LiveCallView; callId: string }> {
    phone = await TestPhone.open();
    const sipp = startSipp({ scenario: "gw-answer-audio.xml", port: pbxPort, vars: { audio_port: String(phone.port) }, timeoutS: 40 });
    await sipp.ready;
    const call = await h.sim.placeCall({ toneHz: 700 });
    await call.waitForState("media", 10_000);
    const gw = h.gateway.registry.get(call.id)!;
    const rtp = gw.pbxMediaStats()!.rtp;
    phone.start(rtp.localRtpPort, rtp.localRtcpPort, o);
    const started = Date.now();
    await sleep(o.untilMs);
    if (o.until) await waitFor(o.until, 12_000, "the figures this call waits for");
    const live = (await liveCalls()).find((c) => c.callId === call.id);
    expect(live, "the call is listed while it runs").toBeDefined();
    expect(Date.now() - started).toBeGreaterThan(o.untilMs - 50);
    await call.hangup();
    await waitFor(() => ended.has(call.id), 10_000, "the call's end record");
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);
    return { info: ended.get(call.id)!, live: live!, callId: call.id };
  }

  let clean: CallEndInfo | undefined;

  it("a clean call: no loss either leg, RTT on both legs, MOS above 4 both ways, reported in the end record, the log, /calls and call_metrics", async () => {
    const { info, live, callId } = await runCall({
      rrHoldMs: 80,
      reportedLoss: 0,
      untilMs: 3000,
      // The gateway's first RTCP report comes 2.5–7.5 s after its ports open; wait for our answer to it.
      until: () => (h.gateway.registry.get(callId0())?.pbxMediaStats()?.rtp.roundTripMs ?? -1) >= 0,
    });
    clean = info;
    const q = info.quality;
    // The Meta leg: the simulator's werift consumer over loopback.
    expect(q.meta.received.packetsReceived).toBeGreaterThan(100);
    expect(q.meta.received.lossRatio).toBeLessThan(0.01);
    expect(q.meta.roundTripMs).toBeDefined();
    expect(q.meta.roundTripMs!).toBeLessThan(100);
    expect(q.meta.sent.lossRatio).toBeDefined();
    expect(q.meta.sent.lossRatio!).toBeLessThan(0.01);
    // The PBX leg: our phone sent every packet; its reports held each SR answer 80 ms with DLSR 0.
    expect(q.pbx?.codec).toBe("PCMU");
    expect(q.pbx!.received.packetsReceived).toBeGreaterThan(100);
    expect(q.pbx!.received.packetsLost).toBe(0);
    expect(q.pbx!.roundTripMs!).toBeGreaterThan(70);
    expect(q.pbx!.roundTripMs!).toBeLessThan(250);
    expect(q.pbx!.sent.lossRatio).toBe(0);
    expect(q.pbx!.sent.jitterMs).toBeCloseTo(1, 6);
    // First audio each way, from the call's start.
    for (const [k, v] of Object.entries(q.firstAudioMs)) {
      expect(v, k).toBeDefined();
      expect(v!, k).toBeLessThan(10_000);
    }
    expect(q.addedLatencyMs.toPbx!.p50).toBeLessThan(40);
    expect(q.addedLatencyMs.toMeta!.p50).toBeLessThan(40);
    expect(q.jitterBuffer).toBeDefined();
    expect(q.consumerToAgent.mos).toBeGreaterThan(4);
    expect(q.agentToConsumer.mos).toBeGreaterThan(4);
    expect(q.consumerToAgent.partial).toBe(false);

    // Live figures while it ran: both legs' ids and the same kind of figures.
    expect(live.parties).toMatchObject({ metaCallId: callId, direction: "inbound", sipPeer: `sip:agents@127.0.0.1:${pbxPort}` });
    expect(live.parties.sipCallId).toMatch(/\S+/);
    expect(live.state).toBe("active");
    expect(live.quality.pbx!.received.packetsReceived).toBeGreaterThan(50);
    expect(live.quality.meta.received.packetsReceived).toBeGreaterThan(50);

    // The one "call ended" line carries the same figures.
    const line = h.logs.find("call ended").find((l) => l.callId === callId);
    expect((line?.quality as { agentToConsumer: { mos: number } } | undefined)?.agentToConsumer.mos).toBe(q.agentToConsumer.mos);

    // Meta got its call_metrics, checked by the simulator against the documented fields.
    await waitFor(() => h.sim.getCall(callId)?.metricsReport !== undefined, 5000, "call_metrics at the simulator");
    const report = h.sim.getCall(callId)!.metricsReport!;
    expect(report.endCallReason).toBe("Hangup_Call");
    expect(report.audioStats.packets_received).toBe(q.meta.received.packetsReceived);
    expect(report.audioStats.packets_lost).toBe(q.meta.received.packetsLost);
    expect(report.firstAudioPacketReceivedTime).toBeGreaterThanOrEqual(Math.floor(info.startedAt / 1000));
    expect(report.audioStats.total_samples_duration_sec).toBeGreaterThan(2);
  }, 60_000);

  it("5 % of the phone's RTP dropped (and 5 % of ours reported lost): about 5 % loss measured, lower MOS both ways", async () => {
    expect(clean, "the clean call ran first").toBeDefined();
    const { info } = await runCall({ rrHoldMs: 0, reportedLoss: 0.05, drop: (seq) => seq % 20 === 7, untilMs: 6000 });
    const q = info.quality;
    expect(q.pbx!.received.lossRatio).toBeGreaterThan(0.04);
    expect(q.pbx!.received.lossRatio).toBeLessThan(0.06);
    expect(q.pbx!.received.maxBurstPackets).toBe(1);
    expect(q.pbx!.sent.lossRatio!).toBeGreaterThan(0.035);
    expect(q.pbx!.sent.lossRatio!).toBeLessThan(0.065);
    // The Meta leg was not impaired.
    expect(q.meta.received.lossRatio).toBeLessThan(0.01);
    // The agent's audio lost 5 % on its way to us and the gateway does not conceal it: a poor call.
    expect(q.agentToConsumer.mos).toBeLessThan(clean!.quality.agentToConsumer.mos - 1);
    // The consumer's audio lost 5 % toward the phone (its PLC helps): lower, less so.
    expect(q.consumerToAgent.mos).toBeLessThan(clean!.quality.consumerToAgent.mos - 0.2);
    expect(q.consumerToAgent.mos).toBeGreaterThan(q.agentToConsumer.mos);
  }, 60_000);

  it("0–60 ms of random delay on the phone's RTP raises the jitter figure", async () => {
    expect(clean, "the clean call ran first").toBeDefined();
    const { info } = await runCall({ rrHoldMs: 0, reportedLoss: 0, delayMs: () => Math.random() * 60, untilMs: 5000 });
    const jitter = info.quality.pbx!.received.jitterMs;
    expect(jitter).toBeGreaterThan(10);
    expect(jitter).toBeGreaterThan(3 * clean!.quality.pbx!.received.jitterMs);
    // Late packets are reordered, not lost: the window absorbs 60 ms.
    expect(info.quality.pbx!.received.lossRatio).toBeLessThan(0.01);
  }, 60_000);

  /** The one live call's id (the clean call's wait reads the gateway's own figures). */
  function callId0(): string {
    const calls = h.gateway.registry.all();
    return calls[0]?.callId ?? "";
  }
});
