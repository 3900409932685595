/**
 * `npm run demo`: one simulated Messenger call through the real gateway, printing what flowed.
 * Everything runs on 127.0.0.1: the Meta simulator (Graph API, signed webhooks, an ice-lite WebRTC
 * consumer speaking a 440 Hz tone) and the gateway with the echo target, so the consumer should
 * hear their own tone back. Exits 0 only if it did.
 */
import { loadConfig } from "../gateway/config/config.js";
import { Gateway } from "../gateway/gateway.js";
import { createLogger } from "../gateway/log.js";
import { MetaSimulator } from "../sim/index.js";

const SECRET = "demo-app-secret";
const PAGE_ID = "100000000000001";
const PAGE_TOKEN = "demo-page-token";
const TONE_HZ = 440;
const TALK_MS = 3000;

const out = (s: string): void => void process.stdout.write(s + "\n");

async function main(): Promise<number> {
  const sim = await MetaSimulator.start({ appSecret: SECRET, pageId: PAGE_ID, pageAccessToken: PAGE_TOKEN });
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
    SIP_TARGET: "echo",
    SIP_LISTEN: "127.0.0.1:0",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
  });
  const gateway = new Gateway(config, createLogger(config.logLevel));
  await gateway.start();
  sim.setWebhookUrl(`http://127.0.0.1:${gateway.httpAddress.port}/webhooks/meta`);
  out(`gateway   http://127.0.0.1:${gateway.httpAddress.port}  (SIP_TARGET=echo)`);
  out(`simulator Graph API ${sim.graphUrl}`);

  try {
    const t0 = Date.now();
    const call = await sim.placeCall({ toneHz: TONE_HZ });
    out(`\nconsumer ${call.psid} calls Page ${PAGE_ID}: call ${call.id}, consumer sends ${TONE_HZ} Hz as Opus`);
    await call.waitForState("accepted", 10_000);
    out(`accepted after ${Date.now() - t0} ms (our offer in accept, Meta's answer and re-offer applied)`);
    await call.waitForState("media", 10_000);
    out(`echoed audio reaching the consumer ${Date.now() - t0} ms after the connect webhook`);
    await new Promise((r) => setTimeout(r, TALK_MS));

    const gw = gateway.registry.get(call.id);
    const consumer = call.consumer.stats;
    const tone = call.consumer.detectTone(1);
    out(`\nconsumer → gateway : ${consumer.packetsSent} Opus packets sent`);
    out(`gateway  → consumer: ${consumer.packetsReceived} Opus packets received on mid ${consumer.receivedOnMids.join(",")}, ${consumer.decodeErrors} decode errors`);
    out(`tone heard by the consumer: ${tone.hz.toFixed(1)} Hz at ${tone.levelDbfs.toFixed(1)} dBFS (SNR ${tone.snrDb.toFixed(1)} dB)`);
    out(`gateway call state: ${gw?.state ?? "gone"}`);

    await call.hangup();
    await call.waitForState("ended", 5_000);
    const ok = Math.abs(tone.hz - TONE_HZ) < 10 && tone.levelDbfs > -40 && consumer.packetsReceived > 0;
    out(`\ncall ended by the consumer; gateway calls left: ${gateway.registry.size}`);
    out(ok ? "RESULT: audio flowed both ways through the gateway" : "RESULT: FAILED, the tone did not come back");
    return ok ? 0 : 1;
  } finally {
    await gateway.stop(0);
    await sim.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
