/**
 * H.264 profile-level-id (RFC 6184 §8.1): which profile a stream conforms to and which decoders can take it.
 * The profile patterns are those of RFC 6184 Table 5 as WebRTC implementations read them.
 */

export type H264Profile =
  | "constrained-baseline"
  | "baseline"
  | "main"
  | "extended"
  | "constrained-high"
  | "high"
  | "high-10"
  | "high-422"
  | "high-444";

export interface H264ProfileLevel {
  profile: H264Profile;
  /** level_idc (31 = level 3.1); level 1b is reported as 9 so that 10 < 1b < 11 keeps its order. */
  level: number;
  profileIdc: number;
  profileIop: number;
}

/** RFC 6184 §8.1: profile-level-id defaults to 42000A (Baseline, level 1.0) when absent. */
export const DEFAULT_PROFILE_LEVEL_ID = "42000a";
export const LEVEL_1B = 9;

interface ProfilePattern {
  idc: number;
  /** 8 characters over constraint_set0..5 and reserved bits: '1', '0' or 'x' (don't care). */
  iop: string;
  profile: H264Profile;
}

const PATTERNS: readonly ProfilePattern[] = [
  { idc: 0x42, iop: "x1xx0000", profile: "constrained-baseline" },
  { idc: 0x4d, iop: "1xxx0000", profile: "constrained-baseline" },
  { idc: 0x58, iop: "11xx0000", profile: "constrained-baseline" },
  { idc: 0x42, iop: "x0xx0000", profile: "baseline" },
  { idc: 0x58, iop: "10xx0000", profile: "baseline" },
  { idc: 0x4d, iop: "0x0x0000", profile: "main" },
  { idc: 0x58, iop: "00xx0000", profile: "extended" },
  { idc: 0x64, iop: "00001100", profile: "constrained-high" },
  { idc: 0x64, iop: "00000000", profile: "high" },
  { idc: 0x6e, iop: "00000000", profile: "high-10" },
  { idc: 0x7a, iop: "00000000", profile: "high-422" },
  { idc: 0xf4, iop: "00000000", profile: "high-444" },
];

function matchesIop(iop: number, pattern: string): boolean {
  for (let bit = 0; bit < 8; bit++) {
    const want = pattern[bit];
    const have = (iop >> (7 - bit)) & 1;
    if (want === "1" && have !== 1) return false;
    if (want === "0" && have !== 0) return false;
  }
  return true;
}

/** The profile and level of a profile-level-id, or undefined if it is malformed or an unknown profile. */
export function parseProfileLevelId(value: string | undefined): H264ProfileLevel | undefined {
  const hex = (value ?? DEFAULT_PROFILE_LEVEL_ID).trim();
  if (!/^[0-9a-fA-F]{6}$/.test(hex)) return undefined;
  const idc = Number.parseInt(hex.slice(0, 2), 16);
  const iop = Number.parseInt(hex.slice(2, 4), 16);
  let level = Number.parseInt(hex.slice(4, 6), 16);
  const pattern = PATTERNS.find((p) => p.idc === idc && matchesIop(iop, p.iop));
  if (!pattern) return undefined;
  // Level 1b: level_idc 11 with constraint_set3 in the profiles that have no level 1b code of their own.
  if (level === 11 && (iop & 0x10) !== 0 && ["constrained-baseline", "baseline", "main", "extended"].includes(pattern.profile)) {
    level = LEVEL_1B;
  }
  return { profile: pattern.profile, level, profileIdc: idc, profileIop: iop };
}

/** Decoder profiles able to decode a stream of each profile (the stream's tools are a subset). */
const DECODABLE_BY: Readonly<Record<H264Profile, readonly H264Profile[]>> = {
  "constrained-baseline": ["constrained-baseline", "baseline", "main", "extended", "constrained-high", "high", "high-10", "high-422", "high-444"],
  baseline: ["baseline", "extended"],
  extended: ["extended"],
  main: ["main", "high", "high-10", "high-422", "high-444"],
  "constrained-high": ["constrained-high", "high", "high-10", "high-422", "high-444"],
  high: ["high", "high-10", "high-422", "high-444"],
  "high-10": ["high-10", "high-422", "high-444"],
  "high-422": ["high-422", "high-444"],
  "high-444": ["high-444"],
};

/** Whether a decoder declared with `decoder` can decode a stream of `stream`'s profile (level aside). */
export function profileDecodableBy(stream: H264Profile, decoder: H264Profile): boolean {
  return DECODABLE_BY[stream].includes(decoder);
}

/** A profile-level-id string for a profile_idc/iop pair and a level (9 = level 1b). */
export function formatProfileLevelId(profileIdc: number, profileIop: number, level: number): string {
  let iop = profileIop;
  let levelIdc = level;
  // Baseline, Main and Extended spell level 1b as 11 + constraint_set3; the High profiles use level_idc 9.
  if (level === LEVEL_1B && [0x42, 0x4d, 0x58].includes(profileIdc)) {
    iop |= 0x10;
    levelIdc = 11;
  }
  return [profileIdc, iop, levelIdc].map((b) => b.toString(16).padStart(2, "0")).join("");
}
