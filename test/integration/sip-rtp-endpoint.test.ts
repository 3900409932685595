import dgram from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { PortAllocator } from "../../sip/rtp/port-allocator.js";
import { serializeRtp } from "../../sip/rtp/rtp-packet.js";
import { RtpEndpoint, type SocketAddress } from "../../sip/rtp/rtp-endpoint.js";
import { freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

/** Real UDP between RTP endpoints on loopback addresses. */

// Below the kernel's ephemeral range and the SIP tests' ports (20000+), so nothing else lands here.
const base = 10000 + 2 * Math.floor(Math.random() * 4900);
const open: RtpEndpoint[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()));
  await killAllSipp();
});

async function endpoint(allocator: PortAllocator, rtcpIntervalMs = 200): Promise<RtpEndpoint> {
  const e = await RtpEndpoint.open({ allocator, rtcpIntervalMs });
  open.push(e);
  return e;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("RtpEndpoint on loopback", () => {
  it("latches to where the peer really sends from, not the SDP address, and exchanges RTP and RTCP", async () => {
    const allocA = new PortAllocator({ address: "127.0.0.1", minPort: base, maxPort: base + 19 });
    const allocB = new PortAllocator({ address: "127.0.0.2", minPort: base + 20, maxPort: base + 39 });
    const a = await endpoint(allocA);
    const b = await endpoint(allocB);
    // The PBX's SDP said 127.0.0.1:<nothing there> (as behind NAT); its packets come from 127.0.0.2.
    a.setRemote({ address: "127.0.0.1", port: base + 100 });
    b.setRemote({ address: "127.0.0.1", port: a.localRtpPort });

    const latched = new Promise<SocketAddress>((resolve) => a.once("latched", resolve));
    const receivedByA: number[] = [];
    a.on("rtp", (p) => receivedByA.push(p.sequenceNumber));
    for (let i = 0; i < 20; i++) {
      b.send({ payloadType: 0, payload: Buffer.alloc(160, 0xff), timestamp: i * 160, marker: i === 0 });
      await sleep(2);
    }
    expect(await latched).toEqual({ address: "127.0.0.2", port: b.localRtpPort });

    const receivedByB: { pt: number; ssrc: number; ts: number }[] = [];
    b.on("rtp", (p) => receivedByB.push({ pt: p.payloadType, ssrc: p.ssrc, ts: p.timestamp }));
    for (let i = 0; i < 10; i++) a.send({ payloadType: 8, payload: Buffer.alloc(160, 0xd5), timestamp: i * 160 });
    await sleep(700);

    expect(receivedByA).toHaveLength(20);
    expect(receivedByB).toHaveLength(10);
    expect(receivedByB.every((p) => p.pt === 8 && p.ssrc === a.ssrc)).toBe(true);
    expect((receivedByB[1]?.ts ?? 0) - (receivedByB[0]?.ts ?? 0)).toBe(160);

    const sa = a.stats();
    const sb = b.stats();
    expect(sa.latched).toEqual({ address: "127.0.0.2", port: b.localRtpPort });
    expect(sa.packetsReceived).toBe(20);
    expect(sa.bytesReceived).toBe(20 * 172);
    expect(sa.packetsSent).toBe(10);
    expect(sa.packetsLost).toBe(0);
    expect(sa.remoteSsrc).toBe(b.ssrc);
    // RTCP flowed both ways: A's reports went to B's RTCP port (latched RTP port + 1), and back.
    expect(sa.rtcpSent).toBeGreaterThan(0);
    expect(sb.rtcpReceived).toBeGreaterThan(0);
    expect(sa.rtcpReceived).toBeGreaterThan(0);
    expect(sb.remoteReport).toEqual({ fractionLost: 0, cumulativeLost: 0, jitterMs: expect.any(Number), expected: expect.any(Number) });
    // A report covers B's packets up to the highest A had seen when it was sent: some, at most all.
    expect(sb.remoteReport!.expected).toBeGreaterThan(0);
    expect(sb.remoteReport!.expected).toBeLessThanOrEqual(sb.packetsSent);
    expect(sb.roundTripMs).toBeGreaterThanOrEqual(0);
  });

  it("counts loss and reports it in RTCP receiver reports", async () => {
    const alloc = new PortAllocator({ address: "127.0.0.1", minPort: base + 40, maxPort: base + 59 });
    const e = await endpoint(alloc);
    const reports: number[] = [];
    const sender = dgram.createSocket("udp4");
    await new Promise<void>((r) => sender.bind(0, "127.0.0.1", () => r()));
    const rtcpListener = dgram.createSocket("udp4");
    const senderPort = sender.address().port;
    // RTCP goes to the latched source port + 1; listen there if it is free (else skip that check).
    const rtcpBound = await new Promise<boolean>((r) => {
      rtcpListener.once("error", () => r(false));
      rtcpListener.bind(senderPort + 1, "127.0.0.1", () => r(true));
    });
    rtcpListener.on("message", (m) => reports.push(m[1] ?? 0));
    try {
      // 100 packets with 10 missing.
      for (let seq = 1; seq <= 100; seq++) {
        if (seq % 10 === 5) continue;
        sender.send(serializeRtp({ payloadType: 0, sequenceNumber: seq, timestamp: seq * 160, ssrc: 0x1234, payload: Buffer.alloc(160) }), e.localRtpPort, "127.0.0.1");
      }
      await sleep(600);
      const s = e.stats();
      expect(s.packetsReceived).toBe(90);
      expect(s.packetsLost).toBe(10);
      expect(s.fractionLost).toBeCloseTo(0.1, 1);
      if (rtcpBound) expect(reports).toContain(201); // RR: we sent nothing, so no SR
    } finally {
      sender.close();
      rtcpListener.close();
    }
  });

  it("close() frees both ports for the next call", async () => {
    const alloc = new PortAllocator({ address: "127.0.0.1", minPort: base + 60, maxPort: base + 63 });
    const e1 = await RtpEndpoint.open({ allocator: alloc });
    const e2 = await RtpEndpoint.open({ allocator: alloc });
    expect(alloc.allocatedCount).toBe(2);
    await expect(RtpEndpoint.open({ allocator: alloc })).rejects.toThrow(/no free RTP\/RTCP port pair/);
    await e1.close();
    await e2.close();
    expect(alloc.allocatedCount).toBe(0);
    const e3 = await RtpEndpoint.open({ allocator: alloc });
    expect([base + 60, base + 62]).toContain(e3.localRtpPort);
    await e3.close();
  });

  it("skips a pair whose port another process holds", async () => {
    const alloc = new PortAllocator({ address: "127.0.0.1", minPort: base + 70, maxPort: base + 73 });
    const squatter = dgram.createSocket("udp4");
    await new Promise<void>((r) => squatter.bind(base + 71, "127.0.0.1", () => r()));
    try {
      const e = await RtpEndpoint.open({ allocator: alloc });
      expect(e.localRtpPort).toBe(base + 72);
      expect(e.localRtcpPort).toBe(base + 73);
      await e.close();
    } finally {
      squatter.close();
    }
  });

  it("exchanges RTP with a third-party peer (SIPp -rtp_echo) and latches to its port", async () => {
    requireSipp();
    const port = await freePort();
    // Any scenario will do; SIPp echoes RTP on its media port (-mp, here port + 2) meanwhile.
    const sipp = startSipp({ scenario: "uas-options.xml", port, extraArgs: ["-rtp_echo"] });
    await sipp.ready;
    const e = await endpoint(new PortAllocator({ address: "127.0.0.1", minPort: base + 80, maxPort: base + 99 }));
    e.setRemote({ address: "127.0.0.1", port: port + 2 });
    const echoed: number[] = [];
    e.on("rtp", (p) => echoed.push(p.sequenceNumber));
    for (let i = 0; i < 10; i++) {
      e.send({ payloadType: 0, payload: Buffer.alloc(160, i), timestamp: i * 160 });
      await sleep(5);
    }
    await sleep(300);
    expect(echoed).toHaveLength(10);
    expect(e.stats()).toMatchObject({ latched: { address: "127.0.0.1", port: port + 2 }, packetsReceived: 10, packetsLost: 0, remoteSsrc: e.ssrc });
  });
});

describe("RtpEndpoint sends never throw", () => {
  it("refuses a destination port it cannot use (0, or above 65535) and counts nothing as sent", async () => {
    const alloc = new PortAllocator({ address: "127.0.0.1", minPort: base + 60, maxPort: base + 79 });
    const e = await endpoint(alloc);
    for (const port of [0, 70000]) {
      e.setRemote({ address: "127.0.0.1", port });
      expect(() => e.send({ payloadType: 0, payload: Buffer.alloc(160), timestamp: 0 })).not.toThrow();
      expect(e.send({ payloadType: 0, payload: Buffer.alloc(160), timestamp: 160 })).toBe(false);
    }
    expect(e.stats().packetsSent).toBe(0);
  });
});
