import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConsumerBrowser, type BrowserConsumer, type BrowserRtpStats } from "../../sim/browser-consumer.js";
import { ConsumerClosedError, SimStateError } from "../../sim/errors.js";
import { VideoDepacketizer } from "../../transcode/video/depacketizer.js";
import { requireTool } from "../../scripts/peers/baresip.js";
import { decodeH264File } from "../support/video.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";
import { sleep, startHarness, waitFor, type Harness } from "../support/harness.js";

/** Every IPv4 address of this machine's interfaces, loopback included. */
function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === "IPv4").map((a) => a.address));
}

function rtpPayload(p: Buffer): Buffer {
  return p.subarray(12 + (p[0]! & 0x0f) * 4);
}

/** G.711 µ-law to linear 16-bit. */
function ulawToLinear(u: number): number {
  const v = ~u & 0xff;
  const t = (((v & 0x0f) << 3) + 0x84) << ((v & 0x70) >> 4);
  return v & 0x80 ? 0x84 - t : t - 0x84;
}

/** Linear 16-bit to G.711 µ-law. */
function linearToUlaw(sample: number): number {
  const BIAS = 0x84;
  let s = Math.max(-32635, Math.min(32635, Math.round(sample)));
  const sign = s < 0 ? 0x80 : 0;
  if (s < 0) s = -s;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/**
 * The phone's microphone: a 1 kHz PCMU tone in 20 ms RTP packets from the phone's audio socket to the
 * gateway's audio port. Returns a stop function.
 */
function phoneTone(sock: Socket, port: number): () => void {
  let seq = 1;
  let ts = 0;
  let n = 0;
  const timer = setInterval(() => {
    const packet = Buffer.alloc(12 + 160);
    packet[0] = 0x80;
    packet[1] = 0;
    packet.writeUInt16BE(seq++ & 0xffff, 2);
    packet.writeUInt32BE(ts, 4);
    packet.writeUInt32BE(0x0ff1ce, 8);
    for (let i = 0; i < 160; i++, n++) packet[12 + i] = linearToUlaw(8000 * Math.sin((2 * Math.PI * 1000 * n) / 8000));
    ts = (ts + 160) >>> 0;
    sock.send(packet, port, "127.0.0.1");
  }, 20);
  return () => clearInterval(timer);
}

async function udpSocket(): Promise<{ sock: Socket; packets: Buffer[] }> {
  const sock = createSocket("udp4");
  const packets: Buffer[] = [];
  sock.on("message", (m) => packets.push(m));
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
  return { sock, packets };
}

/**
 * Headless Chromium, a real browser WebRTC stack, plays the Messenger consumer through the real
 * gateway: its fake camera (VP8, or H.264 straight from the browser) must reach a SIP video phone as
 * H.264 that ffmpeg decodes, its fake microphone must reach the phone as audio, and the browser must
 * receive the gateway's audio.
 */
describe("Chromium as the consumer: camera and microphone to a SIP video phone", () => {
  let h: Harness;
  let pbxPort: number;
  let browser: Promise<ConsumerBrowser> | undefined;
  let audio: { sock: Socket; packets: Buffer[] };
  let video: { sock: Socket; packets: Buffer[] };
  let work: string;

  beforeAll(async () => {
    pbxPort = await freePort();
    h = await startHarness({ env: { SIP_TARGET: `sip:agents@127.0.0.1:${pbxPort}` } });
    work = mkdtempSync(join(tmpdir(), "browser-consumer-"));
  });
  afterAll(async () => {
    await killAllSipp();
    await h?.stop();
    if (browser) await (await browser.catch(() => undefined))?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });
  beforeEach(async () => {
    // Missing tools fail the test (a throwing beforeAll would only mark it skipped).
    requireSipp();
    requireTool("ffprobe", "Debian package ffmpeg");
    browser ??= ConsumerBrowser.launch();
    await browser;
    audio = await udpSocket();
    video = await udpSocket();
  });
  afterEach(async () => {
    audio.sock.close();
    video.sock.close();
    await killAllSipp();
  });

  it.each([
    ["VP8", "video/VP8"],
    ["H264", "video/H264"],
    ["VP9", "video/VP9"],
  ] as const)("%s from Chromium's camera reaches the phone as decodable H.264, audio both ways", async (codec, mime) => {
    const sipp = startSipp({
      scenario: "gw-video-browser.xml",
      port: pbxPort,
      vars: { video_port: String(video.sock.address().port), audio_port: String(audio.sock.address().port) },
      timeoutS: 50,
    });
    await sipp.ready;
    const consumer: BrowserConsumer = await (await browser!).newConsumer();
    const camera = { codec, width: 640, height: 360, fps: 30 };
    const call = await h.sim.placeCall({ consumer });
    await call.waitForState("media", 15_000);
    expect(call.peer).toBe(consumer);
    expect(() => call.consumer).toThrow(SimStateError);
    const gw = h.gateway.registry.get(call.id)!;
    const stopTone = phoneTone(audio.sock, gw.pbxMediaStats()!.rtp.localRtpPort);
    try {
      // Chromium's microphone on its own m-line reaches the phone as PCMU.
      await waitFor(() => audio.packets.filter((p) => (p[1]! & 0x7f) === 0).length > 50, 10_000, "the browser's audio at the phone");

      // Camera on: Chromium's own re-offer (a sendonly video m-line, codec forced) in a media_update webhook.
      expect(await call.startVideo(camera)).toBe(200);
      expect(consumer.camera?.codec.startsWith(mime)).toBe(true);
      await waitFor(() => h.logs.find("consumer video changed").some((l) => l.callId === call.id && l.codec === codec), 10_000, `the gateway to see ${codec}`);
      await waitFor(() => video.packets.length > 50, 20_000, "H.264 RTP at the phone");
      const before: BrowserRtpStats = await consumer.stats();
      const audioBefore = audio.packets.length;
      await sleep(3000);
      const after: BrowserRtpStats = await consumer.stats();

      // The gateway's audio (the phone's tone, comfort noise between) keeps arriving in the browser.
      expect(after.audioIn.packetsReceived - before.audioIn.packetsReceived).toBeGreaterThan(100);
      expect(after.audioIn.totalAudioEnergy).toBeGreaterThan(before.audioIn.totalAudioEnergy);
      // …and Chromium plays it out: the phone's 1 kHz tone is what the consumer hears.
      const heard = await consumer.hear();
      expect(Math.abs(heard.hz - 1000), JSON.stringify(heard)).toBeLessThan(20);
      expect(heard.dbfs).toBeGreaterThan(-70);
      // The camera is sent with the forced codec, and the microphone still reaches the phone.
      expect(after.videoOut.codec?.startsWith(mime), JSON.stringify(after.videoOut)).toBe(true);
      expect(after.videoOut.packetsSent - before.videoOut.packetsSent).toBeGreaterThan(50);
      expect(after.videoOut.framesEncoded - before.videoOut.framesEncoded).toBeGreaterThan(30);
      expect(after.audioOut.packetsSent - before.audioOut.packetsSent).toBeGreaterThan(100);
      expect(audio.packets.length - audioBefore).toBeGreaterThan(100);
      // All of it over one ICE pair that never leaves this machine: the gateway's side is on 127.0.0.1.
      // Chromium also checks from its sockets on other interfaces (only its loopback candidates reach
      // the gateway's SDP, but a check from 192.0.2.x to 127.0.0.1 still succeeds over lo and can be
      // nominated, the gateway learning it as peer-reflexive), so Chromium's side is any host address here.
      expect(after.selectedPair?.remote, JSON.stringify(after.selectedPair)).toMatch(/^127\.0\.0\.1:\d+\/udp host$/);
      const local = /^(.+):\d+\/udp host$/.exec(after.selectedPair?.local ?? "");
      expect(local, JSON.stringify(after.selectedPair)).not.toBeNull();
      expect(ownAddresses()).toContain(local![1]);
      expect(after.failures).toEqual([]);
      // Chromium estimates its send bandwidth from the gateway's transport-wide feedback. Feedback it
      // cannot use leaves it at its 300 kbps start; usable feedback lets its first probes lift it.
      expect(after.selectedPair?.availableOutgoingBitrate, JSON.stringify(after.selectedPair)).toBeGreaterThan(500_000);
    } finally {
      stopTone();
    }
    await call.hangup();
    await waitFor(() => h.gateway.registry.get(call.id) === undefined, 5000, "the gateway to end the call");
    // The call closed its consumer page.
    await expect(consumer.stats()).rejects.toThrow(ConsumerClosedError);
    const result = await finish(sipp);
    expect(result.code, describeSipp(result)).toBe(0);

    // The browser's microphone: Chromium's fake device beeps, so the phone hears more than silence.
    let peak = 0;
    for (const p of audio.packets.filter((q) => (q[1]! & 0x7f) === 0)) {
      for (const u of rtpPayload(p)) peak = Math.max(peak, Math.abs(ulawToLinear(u)));
    }
    expect(peak).toBeGreaterThan(2000);

    // What reached the phone's video socket, reassembled and decoded by ffmpeg.
    const depacketizer = new VideoDepacketizer({ codec: "H264" });
    const frames: Buffer[] = [];
    depacketizer.on("frame", (f) => frames.push(f.data));
    for (const p of video.packets) {
      depacketizer.push({
        header: { sequenceNumber: p.readUInt16BE(2), timestamp: p.readUInt32BE(4), marker: (p[1]! & 0x80) !== 0, ssrc: p.readUInt32BE(8) },
        payload: rtpPayload(p),
      });
    }
    depacketizer.tick(Number.MAX_SAFE_INTEGER);
    expect(video.packets.every((p) => (p[1]! & 0x7f) === 96)).toBe(true);
    const file = join(work, `phone-${codec}.h264`);
    writeFileSync(file, Buffer.concat(frames));
    const decoded = decodeH264File(file);
    expect(decoded.frames).toBeGreaterThan(30);
    if (codec !== "H264") expect(decoded.profile).toBe("Constrained Baseline");
  }, 90_000);
});
