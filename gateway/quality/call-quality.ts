import { transmissionRating, type CodecSegment } from "./e-model.js";
import type { ReceptionSnapshot } from "./reception.js";

/**
 * Planning values per codec and concealment, for the E-model's Ie,eff (G.107 (3-30)).
 * - G.711 with packet-loss concealment at the decoder: Ie 0, Bpl 25.1; without: Bpl 4.3
 *   (ITU-T G.113 Appendix I). The phone decodes what we send it, and phones conceal; the gateway
 *   itself does not conceal lost G.711 toward Meta (a lost packet is audio that never arrives).
 * - Opus has no ITU-T planning values. The path is narrowband (G.711 on the PBX side caps it), where
 *   Opus at the rates in use is not the limiting codec: Ie 0. Its concealment (with in-band FEC)
 *   is taken as good as G.711's Appendix I PLC: Bpl 25.1, a floor rather than a measurement.
 */
export const CODEC_PLANNING = {
  opus: { ie: 0, bpl: 25.1 },
  g711Concealed: { ie: 0, bpl: 25.1 },
  g711Unconcealed: { ie: 0, bpl: 4.3 },
} as const;

/**
 * Fixed parts of the mouth-to-ear delay the gateway cannot measure, in ms: one 20 ms frame of
 * packetization at each encoder, Opus's 6.5 ms look-ahead, and the listener's jitter buffer
 * (taken as twice the jitter its side reports about our stream, at least one frame).
 */
export const DELAY_ASSUMPTIONS = {
  frameMs: 20,
  opusLookaheadMs: 6.5,
  minPlayoutBufferMs: 20,
} as const;

/** One leg's figures as the gateway sees them. */
export interface LegFigures {
  /** What reached the gateway from this leg. */
  received: ReceptionSnapshot;
  packetsSent: number;
  /** What the far end last reported (RTCP) about the stream we send it. */
  remoteReport: { lossRatio: number; packetsLost: number; jitterMs: number } | undefined;
  /** Round-trip time from RTCP (SR/RR LSR/DLSR), ms. */
  roundTripMs: number | undefined;
  /** Wall-clock times (ms since the epoch) of the first audio packet received from and sent to this leg. */
  firstAudioInAt: number | undefined;
  firstAudioOutAt: number | undefined;
}

export interface LatencyFigures {
  p50: number;
  p99: number;
  max: number;
}

/** The consumer's audio on its way to the PBX: jitter buffer, decoding, concealment. */
export interface ToPbxFigures {
  /** Mean time a packet spent in the jitter buffer before it was decoded, ms. */
  jitterBufferDelayMs: number;
  /** Samples (48 kHz) the jitter buffer released for decoding. */
  emittedSamples: number;
  /** Audio made up by packet-loss concealment, ms, and how many losses that covered. */
  concealedMs: number;
  concealments: number;
  /** Silence sent in place of audio (DTX pauses, outages), ms. */
  silenceMs: number;
}

export interface QualityInputs {
  /** When the call started (connect webhook or the agent's INVITE), ms since the epoch. */
  startedAt: number;
  meta: LegFigures;
  /** The SIP side, once it had media; undefined for the echo target or a call that never got that far. */
  pbx: (LegFigures & { codec: string | undefined }) | undefined;
  toPbx: ToPbxFigures | undefined;
  /** Time inside the gateway, arrival on one leg to departure on the other. */
  latencyToPbx: LatencyFigures | undefined;
  latencyToMeta: LatencyFigures | undefined;
}

export interface LegQuality {
  received: ReceptionSnapshot;
  sent: { packets: number; lossRatio: number | undefined; packetsLost: number | undefined; jitterMs: number | undefined };
  roundTripMs: number | undefined;
}

/** One listening direction's E-model estimate and what went into it. */
export interface DirectionQuality {
  mos: number;
  r: number;
  /** Estimated mouth-to-ear delay used for Id, ms. */
  oneWayDelayMs: number;
  /** Loss on the whole path, 0–1 (both legs combined). */
  lossRatio: number;
  ieEff: number;
  /** True when a leg's loss or delay was not known (no RTCP) and counted as none. */
  partial: boolean;
}

export interface CallQuality {
  /** The WebRTC leg toward Meta: received = the consumer's audio, sent = ours as Meta reported it. */
  meta: LegQuality;
  /** The RTP leg toward the PBX: received = the agent's audio, sent = ours as the PBX reported it. */
  pbx: (LegQuality & { codec: string | undefined }) | undefined;
  jitterBuffer: { meanDelayMs: number; emittedSamples: number; concealedMs: number; concealments: number; silenceMs: number } | undefined;
  /** From the call's start to the first audio packet, each way, ms. */
  firstAudioMs: { fromConsumer: number | undefined; toConsumer: number | undefined; fromPbx: number | undefined; toPbx: number | undefined };
  /** Added by the gateway between the legs, ms. */
  addedLatencyMs: { toPbx: LatencyFigures | undefined; toMeta: LatencyFigures | undefined };
  /** The agent listening to the consumer, and the consumer listening to the agent. */
  consumerToAgent: DirectionQuality;
  agentToConsumer: DirectionQuality;
}

export function assessCallQuality(i: QualityInputs): CallQuality {
  const meta = legQuality(i.meta);
  const pbx = i.pbx ? { ...legQuality(i.pbx), codec: i.pbx.codec } : undefined;
  const since = (at: number | undefined): number | undefined => (at === undefined ? undefined : Math.max(0, at - i.startedAt));
  return {
    meta,
    pbx,
    jitterBuffer: i.toPbx
      ? { meanDelayMs: i.toPbx.jitterBufferDelayMs, emittedSamples: i.toPbx.emittedSamples, concealedMs: i.toPbx.concealedMs, concealments: i.toPbx.concealments, silenceMs: i.toPbx.silenceMs }
      : undefined,
    firstAudioMs: {
      fromConsumer: since(i.meta.firstAudioInAt),
      toConsumer: since(i.meta.firstAudioOutAt),
      fromPbx: since(i.pbx?.firstAudioInAt),
      toPbx: since(i.pbx?.firstAudioOutAt),
    },
    addedLatencyMs: { toPbx: i.latencyToPbx, toMeta: i.latencyToMeta },
    consumerToAgent: consumerToAgent(i),
    agentToConsumer: agentToConsumer(i),
  };
}

function legQuality(l: LegFigures): LegQuality {
  return {
    received: l.received,
    sent: { packets: l.packetsSent, lossRatio: l.remoteReport?.lossRatio, packetsLost: l.remoteReport?.packetsLost, jitterMs: l.remoteReport?.jitterMs },
    roundTripMs: l.roundTripMs,
  };
}

/**
 * The consumer speaks, the agent listens: Opus over Meta's network (loss as the gateway measured
 * it, concealed by our decoder), then G.711 over the PBX's network (loss as the PBX reported it,
 * concealed by the phone).
 */
function consumerToAgent(i: QualityInputs): DirectionQuality {
  const { frameMs, opusLookaheadMs, minPlayoutBufferMs } = DELAY_ASSUMPTIONS;
  const metaLoss = i.meta.received.lossRatio;
  const pbxLoss = i.pbx?.remoteReport?.lossRatio;
  const network = half(i.meta.roundTripMs) + half(i.pbx?.roundTripMs);
  const playout = Math.max(minPlayoutBufferMs, 2 * (i.pbx?.remoteReport?.jitterMs ?? 0));
  const delay = network + (i.latencyToPbx?.p50 ?? 0) + frameMs + opusLookaheadMs + (i.pbx ? frameMs + playout : 0);
  const segments: CodecSegment[] = [{ ...CODEC_PLANNING.opus, lossRatio: metaLoss, burstRatio: i.meta.received.burstRatio }];
  if (i.pbx) segments.push({ ...CODEC_PLANNING.g711Concealed, lossRatio: pbxLoss ?? 0, burstRatio: 1 });
  const partial = i.meta.roundTripMs === undefined || (i.pbx !== undefined && (pbxLoss === undefined || i.pbx.roundTripMs === undefined));
  return direction(delay, segments, partial);
}

/**
 * The agent speaks, the consumer listens: G.711 over the PBX's network (loss as the gateway
 * measured it; the gateway does not conceal it), then Opus over Meta's network (loss as Meta's
 * RTCP reported it, concealed by the consumer's decoder).
 */
function agentToConsumer(i: QualityInputs): DirectionQuality {
  const { frameMs, opusLookaheadMs, minPlayoutBufferMs } = DELAY_ASSUMPTIONS;
  const metaLoss = i.meta.remoteReport?.lossRatio;
  const network = half(i.meta.roundTripMs) + half(i.pbx?.roundTripMs);
  const playout = Math.max(minPlayoutBufferMs, 2 * (i.meta.remoteReport?.jitterMs ?? 0));
  const delay = network + (i.latencyToMeta?.p50 ?? 0) + (i.pbx ? frameMs : 0) + frameMs + opusLookaheadMs + playout;
  const segments: CodecSegment[] = [];
  if (i.pbx) segments.push({ ...CODEC_PLANNING.g711Unconcealed, lossRatio: i.pbx.received.lossRatio, burstRatio: i.pbx.received.burstRatio });
  segments.push({ ...CODEC_PLANNING.opus, lossRatio: metaLoss ?? 0, burstRatio: 1 });
  const partial = metaLoss === undefined || i.meta.roundTripMs === undefined || (i.pbx !== undefined && i.pbx.roundTripMs === undefined);
  return direction(delay, segments, partial);
}

function direction(oneWayDelayMs: number, segments: CodecSegment[], partial: boolean): DirectionQuality {
  const rating = transmissionRating({ oneWayDelayMs, segments });
  const delivered = segments.reduce((p, s) => p * (1 - Math.min(1, Math.max(0, s.lossRatio))), 1);
  return { mos: round(rating.mos, 2), r: round(rating.r, 1), oneWayDelayMs: round(oneWayDelayMs, 1), lossRatio: round(1 - delivered, 4), ieEff: round(rating.ieEff, 2), partial };
}

function half(rttMs: number | undefined): number {
  return rttMs === undefined ? 0 : rttMs / 2;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
