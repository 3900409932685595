import { parseArgs } from "node:util";
import { parseWorkers } from "../../gateway/config/config.js";
import type { SrtpProfileName } from "../loadgen/consumer-peer.js";
import { planFor, type Plan } from "./plan.js";
import { gatewayRtpRanges } from "./ports.js";

export interface BenchOptions {
  plan: Plan;
  /** Run one system only. */
  only: "gateway" | "rtpengine" | undefined;
  /** CPU-profile gateways and load generators over the gateway ramp (nothing else runs). */
  profile: boolean;
  srtpProfile: SrtpProfileName;
  /** Leave out the video figures (bench/video.ts) after the audio part. */
  noVideo: boolean;
}

export const USAGE =
  "npm run bench [-- --quick] [--profile] [--only gateway|rtpengine] [--steps 50,100,150] [--window SECONDS] [--gateways N] [--media-workers N|auto] [--srtp cm|gcm] [--stall-sample-us N] [--no-video] [--overload-delay-ms N] [--gateway-node-option=--FLAG ...]";

/** The bench's command line; throws with a message naming the bad option. */
export function parseCli(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      gateways: { type: "string", default: "1" },
      "media-workers": { type: "string", default: "auto" },
      only: { type: "string" },
      steps: { type: "string" },
      window: { type: "string" },
      srtp: { type: "string", default: "cm" },
      "stall-sample-us": { type: "string" },
      "no-video": { type: "boolean", default: false },
      "overload-delay-ms": { type: "string" },
      "gateway-node-option": { type: "string", multiple: true },
    },
  });
  // One gateway process per machine, its media on worker threads; more processes only to compare.
  const gateways = Number(values.gateways);
  if (!/^\d+$/.test(values.gateways ?? "") || gateways < 1 || gateways > 16) throw new Error(`--gateways takes 1–16, not ${values.gateways}`);
  const workers = values["media-workers"] ?? "auto";
  // Checked as the gateway checks MEDIA_WORKERS; `auto` is passed on as it is, for the gateway to resolve.
  try {
    parseWorkers(workers);
  } catch (err) {
    throw new Error(`--media-workers: ${(err as Error).message}`);
  }
  const plan = planFor(values.quick ?? false, gateways, workers === "auto" ? "auto" : Number(workers));
  if (values.steps !== undefined) {
    const steps = values.steps.split(",").map(Number);
    if (steps.length === 0 || steps.some((n, i) => !Number.isInteger(n) || n <= 0 || (i > 0 && n <= (steps[i - 1] ?? 0)))) {
      throw new Error(`--steps takes ascending call counts like 50,100,150, not ${values.steps}`);
    }
    plan.steps = steps;
    plan.rtpengineSteps = steps;
  }
  if (values.window !== undefined) {
    const seconds = Number(values.window);
    if (!(seconds >= 1 && seconds <= 600)) throw new Error(`--window takes seconds (1–600), not ${values.window}`);
    plan.windowMs = seconds * 1000;
  }
  for (const flag of values["gateway-node-option"] ?? []) {
    if (!/^--[a-z][a-z0-9-]*(=\S+)?$/.test(flag)) throw new Error(`--gateway-node-option takes one Node flag like --max-semi-space-size=32, not ${flag}`);
    plan.gatewayNodeArgs.push(flag);
  }
  if (values["overload-delay-ms"] !== undefined) {
    const ms = Number(values["overload-delay-ms"]);
    if (!Number.isInteger(ms) || ms < 0 || ms > 1000) throw new Error(`--overload-delay-ms takes 0–1000 (OVERLOAD_LOOP_DELAY_MS), not ${values["overload-delay-ms"]}`);
    plan.overloadLoopDelayMs = ms;
  }
  if (values["stall-sample-us"] !== undefined) {
    const us = Number(values["stall-sample-us"]);
    if (!Number.isInteger(us) || (us !== 0 && (us < 100 || us > 100_000))) throw new Error(`--stall-sample-us takes 0 or 100–100000, not ${values["stall-sample-us"]}`);
    plan.stallSampleUs = us;
  }
  // Each gateway's RTP range must give every worker ports for its share of the largest step.
  gatewayRtpRanges(plan);
  const only = values.only;
  if (only !== undefined && only !== "gateway" && only !== "rtpengine") throw new Error(`--only takes gateway or rtpengine, not ${only}`);
  if (values.srtp !== "cm" && values.srtp !== "gcm") throw new Error(`--srtp takes cm or gcm, not ${values.srtp}`);
  return {
    plan,
    only,
    profile: values.profile ?? false,
    srtpProfile: values.srtp === "gcm" ? "AEAD_AES_128_GCM" : "AES_CM_128_HMAC_SHA1_80",
    noVideo: values["no-video"] ?? false,
  };
}
