/**
 * ITU-T G.711 μ-law (PCMU) and A-law (PCMA) on 16-bit linear PCM.
 *
 * Bit-exact with the ITU-T G.191 reference implementation (STL g711.c): μ-law quantizes the top 14 bits of a
 * sample and A-law the top 13, negative inputs take the one's complement before truncation, and the decoder
 * returns the midpoint of each quantization interval scaled back to 16 bits.
 *
 * Both directions are table lookups: the encoder's output depends only on `sample >> 2` (μ-law) or
 * `sample >> 4` (A-law) because the reference truncates those bits, so 16 K and 4 K entry tables hold every
 * possible answer and stay in cache.
 */

export type G711Variant = "PCMU" | "PCMA";

export interface G711Codec {
  readonly variant: G711Variant;
  /** Static RTP payload type (RFC 3551). */
  readonly payloadType: 0 | 8;
  /** The code a quiet line carries: what a decoder turns into (near) zero. */
  readonly silenceCode: number;
  encode(pcm: Int16Array, out?: Uint8Array): Uint8Array;
  decode(codes: Uint8Array, out?: Int16Array): Int16Array;
}

export class G711LengthError extends RangeError {
  constructor(what: string, needed: number, got: number) {
    super(`${what}: output holds ${got} values, ${needed} needed`);
    this.name = "G711LengthError";
  }
}

function mulawCompress(sample: number): number {
  const negative = sample < 0;
  let magnitude = (negative ? ~sample >> 2 : sample >> 2) + 33;
  if (magnitude > 0x1fff) magnitude = 0x1fff;
  let segment = 1;
  for (let i = magnitude >> 6; i !== 0; i >>= 1) segment++;
  const high = 8 - segment;
  const low = 0x0f - ((magnitude >> segment) & 0x0f);
  const code = (high << 4) | low;
  return negative ? code : code | 0x80;
}

function mulawExpand(code: number): number {
  const inverted = ~code & 0xff;
  const exponent = (inverted >> 4) & 0x07;
  const mantissa = inverted & 0x0f;
  const step = 4 << (exponent + 1);
  const magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
  return code < 0x80 ? -magnitude : magnitude;
}

function alawCompress(sample: number): number {
  let ix = sample < 0 ? ~sample >> 4 : sample >> 4;
  if (ix > 15) {
    let exponent = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      exponent++;
    }
    ix -= 16;
    ix += exponent << 4;
  }
  if (sample >= 0) ix |= 0x80;
  return ix ^ 0x55;
}

function alawExpand(code: number): number {
  const ix = (code ^ 0x55) & 0x7f;
  const exponent = ix >> 4;
  let mantissa = ix & 0x0f;
  if (exponent > 0) mantissa += 16;
  mantissa = (mantissa << 4) + 8;
  if (exponent > 1) mantissa <<= exponent - 1;
  return code > 127 ? mantissa : -mantissa;
}

const MULAW_DECODE = new Int16Array(256);
const ALAW_DECODE = new Int16Array(256);
for (let code = 0; code < 256; code++) {
  MULAW_DECODE[code] = mulawExpand(code);
  ALAW_DECODE[code] = alawExpand(code);
}

/** Indexed by `(sample >> 2) & 0x3fff`: the 14 bits μ-law looks at, as a two's-complement index. */
const MULAW_ENCODE = new Uint8Array(1 << 14);
for (let i = 0; i < MULAW_ENCODE.length; i++) MULAW_ENCODE[i] = mulawCompress((i << 18) >> 16);
/** Indexed by `(sample >> 4) & 0xfff`. */
const ALAW_ENCODE = new Uint8Array(1 << 12);
for (let i = 0; i < ALAW_ENCODE.length; i++) ALAW_ENCODE[i] = alawCompress((i << 20) >> 16);

function outputFor<T extends Uint8Array | Int16Array>(what: string, out: T | undefined, length: number, make: (n: number) => T): T {
  if (out === undefined) return make(length);
  if (out.length < length) throw new G711LengthError(what, length, out.length);
  return out;
}

export function encodeMulaw(pcm: Int16Array, out?: Uint8Array): Uint8Array {
  const codes = outputFor("encodeMulaw", out, pcm.length, (n) => new Uint8Array(n));
  for (let i = 0; i < pcm.length; i++) codes[i] = MULAW_ENCODE[((pcm[i] as number) >> 2) & 0x3fff] as number;
  return codes;
}

export function decodeMulaw(codes: Uint8Array, out?: Int16Array): Int16Array {
  const pcm = outputFor("decodeMulaw", out, codes.length, (n) => new Int16Array(n));
  for (let i = 0; i < codes.length; i++) pcm[i] = MULAW_DECODE[codes[i] as number] as number;
  return pcm;
}

export function encodeAlaw(pcm: Int16Array, out?: Uint8Array): Uint8Array {
  const codes = outputFor("encodeAlaw", out, pcm.length, (n) => new Uint8Array(n));
  for (let i = 0; i < pcm.length; i++) codes[i] = ALAW_ENCODE[((pcm[i] as number) >> 4) & 0x0fff] as number;
  return codes;
}

export function decodeAlaw(codes: Uint8Array, out?: Int16Array): Int16Array {
  const pcm = outputFor("decodeAlaw", out, codes.length, (n) => new Int16Array(n));
  for (let i = 0; i < codes.length; i++) pcm[i] = ALAW_DECODE[codes[i] as number] as number;
  return pcm;
}

const PCMU: G711Codec = Object.freeze({
  variant: "PCMU",
  payloadType: 0,
  silenceCode: 0xff,
  encode: encodeMulaw,
  decode: decodeMulaw,
});

const PCMA: G711Codec = Object.freeze({
  variant: "PCMA",
  payloadType: 8,
  silenceCode: 0xd5,
  encode: encodeAlaw,
  decode: decodeAlaw,
});

export function g711Codec(variant: G711Variant): G711Codec {
  return variant === "PCMU" ? PCMU : PCMA;
}

/** The G.711 variant carried by a static RTP payload type, or undefined for anything else. */
export function g711ForPayloadType(payloadType: number): G711Codec | undefined {
  if (payloadType === 0) return PCMU;
  if (payloadType === 8) return PCMA;
  return undefined;
}
