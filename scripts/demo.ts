/**
 * `npm run demo`: one simulated Messenger call through the real gateway to a real SIP phone,
 * printing what flowed. Everything runs on 127.0.0.1: the Meta simulator (Graph API, signed
 * webhooks, an ice-lite WebRTC consumer speaking 440 Hz), the gateway, and baresip as the agent's
 * phone (auto-answer, speaking 1 kHz, recording what it hears). Exits 0 only if audio went both
 * ways. `npm run demo -- --echo` uses the gateway's echo target instead of a phone.
 * `npm run demo -- --video <vp8|vp9|h264|h265|av1>` also turns the consumer's camera on in that codec
 * with a video phone (scripts/demo-video.ts); it exits 0 only if video went both ways too.
 * `npm run demo -- --whatsapp` places a WhatsApp Business call instead (Meta offers in the connect
 * webhook; the gateway answers, pre-accepts and accepts).
 * `npm run demo -- --sip drachtio` carries the call's SIP through a drachtio-server (the build in
 * ../shared/tools/drachtio-server/, DRACHTIO_BIN, or the running one DRACHTIO_HOST names) on the
 * gateway's drachtio backend instead of its embedded SIP stack.
 */
import { loadConfig } from "../gateway/config/config.js";
import { Gateway } from "../gateway/gateway.js";
import { createLogger } from "../gateway/log.js";
import { MetaSimulator } from "../sim/index.js";
import { detectTone } from "../transcode/tone.js";
import { UsageError, VideoDemo, videoCodecOption } from "./demo-video.js";
import { Baresip } from "./peers/baresip.js";
import { DrachtioProcess, findDrachtio, freeTcpUdpPort } from "./peers/drachtio.js";

const SECRET = "demo-app-secret";
const PAGE_ID = "100000000000001";
const PAGE_TOKEN = "demo-page-token";
const WA_NUMBER_ID = "100000000000002";
const WA_WABA_ID = "100000000000003";
const WA_TOKEN = "demo-whatsapp-token";
const CONSUMER_HZ = 440;
const PHONE_HZ = 1000;
const PHONE_PORT = 25060;
const CONTROL_PORT = 25059;
const TALK_MS = 3000;

const out = (s: string): void => void process.stdout.write(s + "\n");
const near = (hz: number, want: number): boolean => Math.abs(hz - want) < 10;

/** `--sip <embedded|drachtio>` (or `--sip=…`); embedded without the option. */
function sipBackendOption(argv: readonly string[]): "embedded" | "drachtio" {
  const index = argv.findIndex((a) => a === "--sip" || a.startsWith("--sip="));
  if (index < 0) return "embedded";
  const arg = argv[index]!;
  const name = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : (argv[index + 1] ?? "");
  if (name !== "embedded" && name !== "drachtio") throw new UsageError("usage: npm run demo -- --sip <embedded|drachtio>");
  return name;
}

/** The settings for the chosen SIP backend, with the drachtio-server the demo started (if any). */
async function sipBackend(kind: "embedded" | "drachtio"): Promise<{ env: Record<string, string>; server?: DrachtioProcess; describe: string }> {
  if (kind === "embedded") return { env: { SIP_LISTEN: "127.0.0.1:0" }, describe: "embedded SIP stack" };
  const where = findDrachtio();
  if (where.kind === "none") throw new UsageError(`--sip drachtio: ${where.reason}`);
  if (where.kind === "external") {
    return {
      env: { SIP_BACKEND: "drachtio", DRACHTIO_HOST: where.host, DRACHTIO_PORT: String(where.port), DRACHTIO_SECRET: where.secret },
      describe: `drachtio-server at ${where.host}:${where.port}`,
    };
  }
  const server = await DrachtioProcess.start({ bin: where.bin, port: await freeTcpUdpPort(), sipPort: await freeTcpUdpPort(), logLevel: "notice" });
  return {
    server,
    env: { SIP_BACKEND: "drachtio", DRACHTIO_HOST: server.host, DRACHTIO_PORT: String(server.port), DRACHTIO_SECRET: server.secret },
    describe: `drachtio-server ${where.bin}, control 127.0.0.1:${server.port}`,
  };
}

async function main(): Promise<number> {
  const echo = process.argv.includes("--echo");
  const whatsApp = process.argv.includes("--whatsapp");
  const sipKind = sipBackendOption(process.argv);
  const videoCodec = videoCodecOption(process.argv);
  if (videoCodec && echo) throw new UsageError("--video needs the phone: it cannot be combined with --echo");
  if (videoCodec && whatsApp) throw new UsageError("--video is a Messenger call: WhatsApp calling carries audio only");
  const video = videoCodec ? await VideoDemo.prepare(videoCodec) : undefined;
  const phone = echo
    ? undefined
    : await Baresip.start({ port: PHONE_PORT, toneHz: PHONE_HZ, rtpPortMin: 25100, ...(video ? { video: true, controlPort: CONTROL_PORT } : {}) });
  const sip = await sipBackend(sipKind).catch(async (err: unknown) => {
    await phone?.stop();
    throw err;
  });
  const sim = await MetaSimulator.start({
    appSecret: SECRET,
    pageId: PAGE_ID,
    pageAccessToken: PAGE_TOKEN,
    ...(whatsApp ? { whatsapp: { numbers: [{ wabaId: WA_WABA_ID, phoneNumberId: WA_NUMBER_ID, displayPhoneNumber: "15550100200", accessToken: WA_TOKEN }] } } : {}),
  });
  const config = loadConfig({
    META_APP_SECRET: SECRET,
    META_VERIFY_TOKEN: "demo-verify-token",
    META_PAGE_ID: PAGE_ID,
    META_PAGE_ACCESS_TOKEN: PAGE_TOKEN,
    META_GRAPH_URL: sim.graphUrl,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "0",
    PUBLIC_IP: "127.0.0.1",
    MEDIA_BIND_IP: "127.0.0.1",
    ...sip.env,
    ...(whatsApp ? { WHATSAPP_PHONE_NUMBERS: WA_NUMBER_ID, WHATSAPP_ACCESS_TOKEN: WA_TOKEN, WHATSAPP_WABA_ID: WA_WABA_ID } : {}),
    SIP_TARGET: phone ? phone.uri : "echo",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
    // The demo prints its own summary; call-event lines would interleave with it.
    EVENTS_LOG: process.env.EVENTS_LOG ?? "off",
  });
  const gateway = new Gateway(config, createLogger(config.logLevel));
  await gateway.start();
  sim.setWebhookUrl(`http://127.0.0.1:${gateway.httpAddress.port}/webhooks/meta`);
  const sipAt = gateway.sip.localAddress;
  out(`gateway    http://127.0.0.1:${gateway.httpAddress.port}, SIP ${sipAt ? `${sipAt.address}:${sipAt.port}` : "not reachable"} (${sip.describe})`);
  out(`simulator  Graph API ${sim.graphUrl}`);
  const camera = video ? ", camera: red, green and blue bars, H.264 640x360 at 15 fps" : "";
  out(phone ? `phone      baresip ${phone.uri} (auto-answer, speaks ${PHONE_HZ} Hz${camera})` : "target     echo");

  try {
    if (!gateway.sip.ready) throw new Error(`the gateway's SIP side is not ready (${sip.describe})`);
    const t0 = Date.now();
    const call = whatsApp
      ? await sim.placeWhatsAppCall({ toneHz: CONSUMER_HZ, fromPhone: "447700900123", name: "Demo Consumer" })
      : await sim.placeCall({ toneHz: CONSUMER_HZ });
    out(
      "psid" in call
        ? `\nconsumer ${call.psid} calls Page ${PAGE_ID} (call ${call.id}) and speaks ${CONSUMER_HZ} Hz`
        : `\nWhatsApp user +${call.user.waId} calls number ${WA_NUMBER_ID} (call ${call.id}) and speaks ${CONSUMER_HZ} Hz`,
    );
    await call.waitForState("accepted", 15_000);
    if ("psid" in call) out(`${phone ? "phone answered, " : ""}accept sent with our offer: ${Date.now() - t0} ms after the connect webhook`);
    else {
      const at = (action: string): string => {
        const a = call.actionLog.find((r) => r.action === action);
        return a ? `${a.at - call.startedAt} ms` : "never";
      };
      out(`pre_accept with our answer ${at("pre_accept")} after the connect webhook, ${phone ? "phone answered, " : ""}accept ${at("accept")}`);
    }
    await call.waitForState("media", 10_000);
    out(`first audio at the consumer: ${Date.now() - t0} ms`);
    const talkUntil = Date.now() + TALK_MS;
    if (video && phone && "psid" in call) await video.start(call, phone, CONTROL_PORT);
    await new Promise((r) => setTimeout(r, Math.max(0, talkUntil - Date.now())));

    const gwCall = gateway.registry.get(call.id);
    const consumer = { packetsReceived: call.consumer.stats.packetsReceived, packetsSent: "packetsSent" in call.consumer.stats ? call.consumer.stats.packetsSent : undefined };
    const heard = call.consumer.detectTone(1);
    const sipStats = phone && gwCall ? gwCall.pbxMediaStats() : undefined;
    if (consumer.packetsSent !== undefined) out(`\nMeta → gateway   ${consumer.packetsSent} Opus packets sent by the consumer`);
    else out("");
    if (sipStats?.rtp && sipStats.latencyToPbx && sipStats.latencyToMeta) {
      const r = sipStats.rtp;
      out(`gateway → phone  ${r.packetsSent} ${sipStats.codec} packets (20 ms), latency in gateway p50 ${sipStats.latencyToPbx.p50.toFixed(2)} ms, p99 ${sipStats.latencyToPbx.p99.toFixed(2)} ms`);
      out(`phone → gateway  ${r.packetsReceived} ${sipStats.codec} packets, ${r.packetsLost} lost, jitter ${r.jitterMs.toFixed(2)} ms`);
      out(`gateway → Meta   ${consumer.packetsReceived} Opus packets received by the consumer, latency in gateway p50 ${sipStats.latencyToMeta.p50.toFixed(2)} ms, p99 ${sipStats.latencyToMeta.p99.toFixed(2)} ms`);
    } else {
      out(`gateway → Meta   ${consumer.packetsReceived} Opus packets received by the consumer`);
    }
    const wantAtConsumer = phone ? PHONE_HZ : CONSUMER_HZ;
    out(`consumer hears   ${heard.hz.toFixed(1)} Hz at ${heard.levelDbfs.toFixed(1)} dBFS (expected ${wantAtConsumer} Hz)`);

    await call.hangup();
    await call.waitForState("ended", 5_000);
    await new Promise((r) => setTimeout(r, 300));
    let ok = near(heard.hz, wantAtConsumer) && heard.levelDbfs > -40;
    if (phone) {
      const { pcm, sampleRate } = phone.receivedPcm();
      const last = pcm.subarray(Math.max(0, pcm.length - sampleRate));
      const atPhone = detectTone(last, sampleRate);
      out(`phone heard      ${atPhone.hz.toFixed(1)} Hz at ${atPhone.levelDbfs.toFixed(1)} dBFS over ${(pcm.length / sampleRate).toFixed(1)} s recorded (expected ${CONSUMER_HZ} Hz)`);
      ok = ok && near(atPhone.hz, CONSUMER_HZ) && atPhone.levelDbfs > -40;
    }
    if (video) ok = (await video.report(out)) && ok;
    out(`\nconsumer hung up; both legs ended, gateway calls left: ${gateway.registry.size}`);
    if (video) out(ok ? "RESULT: audio and video flowed both ways through the gateway" : "RESULT: FAILED, audio and video did not both flow both ways");
    else out(ok ? "RESULT: audio flowed both ways through the gateway" : "RESULT: FAILED, audio did not flow both ways");
    return ok ? 0 : 1;
  } finally {
    await gateway.stop(0);
    await sim.stop();
    await phone?.stop();
    await sip.server?.stop();
    video?.dispose();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
