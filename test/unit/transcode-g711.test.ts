import { describe, expect, it } from "vitest";
import {
  decodeAlaw,
  decodeMulaw,
  encodeAlaw,
  encodeMulaw,
  G711LengthError,
  g711Codec,
  g711ForPayloadType,
} from "../../transcode/g711.js";

const ALL_CODES = Uint8Array.from({ length: 256 }, (_, i) => i);
const ALL_SAMPLES = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);

/** G.711 Table 2a decoder output, written from the standard's segment/step description (14-bit scale ×4). */
function mulawDecodedByFormula(code: number): number {
  const inverted = ~code & 0xff;
  const segment = (inverted >> 4) & 7;
  const step = inverted & 0x0f;
  const magnitude = ((2 * step + 33) << segment) - 33;
  return (code & 0x80 ? 1 : -1) * magnitude * 4 + 0; // +0 turns the negative zero of code 0x7F into 0
}

/** G.711 Table 1a decoder output (13-bit scale ×8): even bits inverted on the line. */
function alawDecodedByFormula(code: number): number {
  const value = code ^ 0x55;
  const segment = (value >> 4) & 7;
  const step = value & 0x0f;
  const magnitude = segment === 0 ? 2 * step + 1 : (2 * step + 33) << (segment - 1);
  return (value & 0x80 ? 1 : -1) * magnitude * 8;
}

describe("G.711 μ-law", () => {
  it("decodes the reference boundary codes", () => {
    // 0xFF/0x7F are +0/-0; 0x80/0x00 the largest levels; 0xF0 the top of the first segment (30 × 4).
    expect(Array.from(decodeMulaw(Uint8Array.of(0xff, 0x7f, 0x80, 0x00, 0xf0, 0x70)))).toEqual([0, 0, 32124, -32124, 120, -120]);
  });

  it("encodes the reference boundary samples", () => {
    const codes = encodeMulaw(Int16Array.of(0, -1, 32767, -32768, 32124, -32124));
    expect(Array.from(codes)).toEqual([0xff, 0x7f, 0x80, 0x00, 0x80, 0x00]);
  });

  it("decodes all 256 codes as the standard's formula says", () => {
    const pcm = decodeMulaw(ALL_CODES);
    for (let code = 0; code < 256; code++) expect(pcm[code], `code 0x${code.toString(16)}`).toBe(mulawDecodedByFormula(code));
  });

  it("re-encodes every decoded value to its own code (the two zeros map to 0xFF and 0x7F)", () => {
    const back = encodeMulaw(decodeMulaw(ALL_CODES));
    for (let code = 0; code < 256; code++) {
      const expected = code === 0x7f ? 0xff : code;
      expect(back[code], `code 0x${code.toString(16)}`).toBe(expected);
    }
  });

  it("is monotonic over all 65536 inputs and stays within half a quantization step", () => {
    const decoded = decodeMulaw(encodeMulaw(ALL_SAMPLES));
    for (let i = 1; i < decoded.length; i++) {
      if ((decoded[i] as number) < (decoded[i - 1] as number)) throw new Error(`not monotonic at ${i - 32768}`);
    }
    for (let i = 0; i < ALL_SAMPLES.length; i++) {
      const x = ALL_SAMPLES[i] as number;
      const error = Math.abs((decoded[i] as number) - x);
      // Step in the top segment is 1024 (16-bit scale); inputs beyond the last level clip to ±32124.
      const allowed = Math.abs(x) > 32124 ? Math.abs(x) - 32124 + 1 : 512 + 4;
      if (error > allowed) throw new Error(`error ${error} at ${x}`);
    }
  });
});

describe("G.711 A-law", () => {
  it("decodes and encodes the reference boundary codes", () => {
    expect(Array.from(decodeAlaw(Uint8Array.of(0xd5, 0x55, 0xaa, 0x2a)))).toEqual([8, -8, 32256, -32256]);
    expect(Array.from(encodeAlaw(Int16Array.of(0, -1, 8, -8, 32767, -32768)))).toEqual([0xd5, 0x55, 0xd5, 0x55, 0xaa, 0x2a]);
  });

  it("decodes all 256 codes as the standard's formula says", () => {
    const pcm = decodeAlaw(ALL_CODES);
    for (let code = 0; code < 256; code++) expect(pcm[code], `code 0x${code.toString(16)}`).toBe(alawDecodedByFormula(code));
  });

  it("re-encodes every decoded value to its own code", () => {
    expect(Array.from(encodeAlaw(decodeAlaw(ALL_CODES)))).toEqual(Array.from(ALL_CODES));
  });

  it("is monotonic over all 65536 inputs and stays within half a quantization step", () => {
    const decoded = decodeAlaw(encodeAlaw(ALL_SAMPLES));
    for (let i = 1; i < decoded.length; i++) {
      if ((decoded[i] as number) < (decoded[i - 1] as number)) throw new Error(`not monotonic at ${i - 32768}`);
    }
    for (let i = 0; i < ALL_SAMPLES.length; i++) {
      const x = ALL_SAMPLES[i] as number;
      const error = Math.abs((decoded[i] as number) - x);
      const allowed = Math.abs(x) > 32256 ? Math.abs(x) - 32256 + 1 : 512 + 8;
      if (error > allowed) throw new Error(`error ${error} at ${x}`);
    }
  });
});

describe("G.711 codec objects", () => {
  it("maps static payload types and carries the silence code", () => {
    expect(g711ForPayloadType(0)?.variant).toBe("PCMU");
    expect(g711ForPayloadType(8)?.variant).toBe("PCMA");
    expect(g711ForPayloadType(13)).toBeUndefined();
    expect(decodeMulaw(Uint8Array.of(g711Codec("PCMU").silenceCode))[0]).toBe(0);
    expect(Math.abs(decodeAlaw(Uint8Array.of(g711Codec("PCMA").silenceCode))[0] as number)).toBe(8);
  });

  it("writes into a caller's buffer and refuses one that is too short", () => {
    const out = new Uint8Array(4);
    expect(encodeMulaw(Int16Array.of(0, 0), out)).toBe(out);
    expect(() => decodeAlaw(new Uint8Array(10), new Int16Array(5))).toThrow(G711LengthError);
  });
});
