/**
 * The ITU-T G.107 E-model (transmission rating R and its MOS estimate), with the parameters a
 * media gateway cannot observe left at the Recommendation's default values (its Table 2: SLR 8,
 * RLR 2, STMR 15, LSTR 18, Ds = Dr = 3, TELR 65, WEPL 110, qdu 1, Nc −70, Nfor −64, Ps = Pr = 35,
 * A 0). What a call does measure goes in: the mean one-way delay (Ta, with T = Ta and Tr = 2·Ta),
 * and per codec segment its equipment impairment Ie, packet-loss robustness Bpl, loss percentage
 * Ppl and burst ratio BurstR. With every input at its default, R = 93.2.
 */

/** Defaults of G.107 Table 2 for everything the gateway cannot see. */
const D = {
  SLR: 8,
  RLR: 2,
  STMR: 15,
  LSTR: 18,
  Ds: 3,
  TELR: 65,
  WEPL: 110,
  qdu: 1,
  Nc: -70,
  Nfor: -64,
  Ps: 35,
  Pr: 35,
  A: 0,
} as const;

/** One codec with loss in front of its decoder: what G.107 §3.5 (Ie,eff) takes. */
export interface CodecSegment {
  /** Equipment impairment factor of the codec (G.113 Appendix I). */
  ie: number;
  /** Packet-loss robustness factor of the codec and its concealment. */
  bpl: number;
  /** Packet loss, 0–1, on the path into this codec's decoder. */
  lossRatio: number;
  /** BurstR: 1 for random loss, above 1 for bursty loss (see burstRatio in reception.ts). */
  burstRatio: number;
}

/** G.107 (3-30): the effective equipment impairment of one codec segment. */
export function effectiveEquipmentImpairment(s: CodecSegment): number {
  const ppl = clamp(s.lossRatio, 0, 1) * 100;
  const burstR = Math.max(1, Number.isFinite(s.burstRatio) ? s.burstRatio : 1);
  if (ppl === 0) return s.ie;
  return s.ie + ((95 - s.ie) * ppl) / (ppl / burstR + s.bpl);
}

/** The basic signal-to-noise ratio Ro and the simultaneous impairment Is; neither depends on a call's figures. */
function basicRating(): { ro: number; is: number; no: number } {
  const OLR = D.SLR + D.RLR;
  const Nos = D.Ps - D.SLR - D.Ds - 100 + 0.004 * (D.Ps - OLR - D.Ds - 14) ** 2;
  const Pre = D.Pr + 10 * Math.log10(1 + 10 ** ((10 - D.LSTR) / 10));
  const Nor = D.RLR - 121 + Pre + 0.008 * (Pre - 35) ** 2;
  const Nfo = D.Nfor + D.RLR;
  const No = 10 * Math.log10(10 ** (D.Nc / 10) + 10 ** (Nos / 10) + 10 ** (Nor / 10) + 10 ** (Nfo / 10));
  const Ro = 15 - 1.5 * (D.SLR + No);
  const Xolr = OLR + 0.2 * (64 + No - D.RLR);
  const Iolr = 20 * ((1 + (Xolr / 8) ** 8) ** (1 / 8) - Xolr / 8);
  // T = 0 here: STMRo's echo term only matters for the talker-echo path, handled in Idte.
  const STMRo = -10 * Math.log10(10 ** (-D.STMR / 10) + 10 ** (-D.TELR / 10));
  const Ist =
    12 * (1 + ((STMRo - 13) / 6) ** 8) ** (1 / 8) -
    28 * (1 + ((STMRo + 1) / 19.4) ** 35) ** (1 / 35) -
    13 * (1 + ((STMRo - 3) / 33) ** 13) ** (1 / 13) +
    29;
  const Q = 37 - 15 * Math.log10(D.qdu);
  const G = 1.07 + 0.258 * Q + 0.0602 * Q ** 2;
  const Y = (Ro - 100) / 15 + 46 / 8.4 - G / 9;
  const Z = 46 / 30 - G / 40;
  const Iq = 15 * Math.log10(1 + 10 ** Y + 10 ** Z);
  return { ro: Ro, is: Iolr + Ist + Iq, no: No };
}

const BASIC = basicRating();

/** G.107 §3.4: the delay impairment Id = Idte + Idle + Idd for a mean one-way delay `taMs`. */
export function delayImpairment(taMs: number): number {
  const Ta = Math.max(0, taMs);
  const T = Ta;
  const Tr = 2 * Ta;
  const { ro: Ro, no: No } = BASIC;
  // Talker echo (the far end's echo canceller at TELR 65 dB).
  const TERV = D.TELR - 40 * Math.log10((1 + T / 10) / (1 + T / 150)) + 6 * Math.exp(-0.3 * T ** 2);
  const Roe = -1.5 * (No - D.RLR);
  const Re = 80 + 2.5 * (TERV - 14);
  const Idte = ((Roe - Re) / 2 + Math.sqrt((Roe - Re) ** 2 / 4 + 100) - 1) * (1 - Math.exp(-T));
  // Listener echo.
  const Rle = 10.5 * (D.WEPL + 7) * (Tr + 1) ** -0.25;
  const Idle = (Ro - Rle) / 2 + Math.sqrt((Ro - Rle) ** 2 / 4 + 169);
  // Pure delay, beyond 100 ms (mT = 100 ms, sT = 1: the Recommendation's defaults).
  let Idd = 0;
  if (Ta > 100) {
    const X = Math.log10(Ta / 100) / Math.log10(2);
    Idd = 25 * ((1 + X ** 6) ** (1 / 6) - 3 * (1 + (X / 3) ** 6) ** (1 / 6) + 2);
  }
  return Idte + Idle + Idd;
}

export interface RatingInput {
  /** Mean one-way mouth-to-ear delay, ms. */
  oneWayDelayMs: number;
  /** The codec segments of the path, in order; their Ie,eff add up (G.113 §I: impairments of tandem codecs add). */
  segments: CodecSegment[];
}

export interface Rating {
  r: number;
  mos: number;
  /** The parts of R, for anyone checking the estimate by hand. */
  ieEff: number;
  id: number;
}

/** R = Ro − Is − Id − Ie,eff + A (G.107 (3-1)), and its MOS. */
export function transmissionRating(input: RatingInput): Rating {
  const ieEff = input.segments.reduce((sum, s) => sum + effectiveEquipmentImpairment(s), 0);
  const id = delayImpairment(input.oneWayDelayMs);
  const r = BASIC.ro - BASIC.is - id - ieEff + D.A;
  return { r, mos: mosFromR(r), ieEff, id };
}

/** G.107 Annex B (B-4): MOS (conversational quality, estimated) from R. */
export function mosFromR(r: number): number {
  if (!(r > 0)) return 1;
  if (r >= 100) return 4.5;
  return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6;
}

function clamp(v: number, lo: number, hi: number): number {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : lo;
}
