/**
 * Test-tone generation and detection on 16-bit PCM. Pure functions, no I/O.
 *
 * Levels are in dBFS relative to a full-scale square wave (RMS 32768 = 0 dBFS), so a
 * full-scale sine reads about -3 dBFS.
 */

export interface ToneSpec {
  /** Frequency in Hz. */
  hz: number;
  sampleRate: number;
  /** Peak amplitude as a fraction of full scale, 0..1. */
  amplitude: number;
  /** Index of the first sample in the tone's own timeline; consecutive calls stay phase-continuous. */
  startSample: number;
  samples: number;
}

export interface ToneDetection {
  /** Dominant frequency in Hz (0 when the input is silent). */
  hz: number;
  /** RMS level of the whole input in dBFS. */
  levelDbfs: number;
  /** Power near the dominant peak over the power elsewhere, in dB. */
  snrDb: number;
}

/** Level reported for digital silence instead of -Infinity, below anything 16-bit PCM can carry. */
export const SILENCE_DBFS = -140;

const FULL_SCALE = 32768;
/** Frequencies below this are treated as DC/rumble and ignored by the peak search. */
const MIN_DETECT_HZ = 20;
/** Bins either side of the peak counted as "the tone" (Hann main lobe plus interpolation slack). */
const PEAK_HALF_WIDTH_BINS = 4;
/** Longest stretch analysed; longer inputs use their last samples (plenty for ±1 Hz at 48 kHz). */
const MAX_ANALYSIS_SAMPLES = 1 << 18;

export function generateTone(spec: ToneSpec): Int16Array {
  const { hz, sampleRate, amplitude, startSample, samples } = spec;
  if (!(sampleRate > 0)) throw new RangeError(`sampleRate must be positive, got ${sampleRate}`);
  if (!Number.isInteger(samples) || samples < 0) throw new RangeError(`samples must be a non-negative integer, got ${samples}`);
  const out = new Int16Array(samples);
  const peak = Math.max(0, Math.min(1, amplitude)) * (FULL_SCALE - 1);
  for (let i = 0; i < samples; i++) {
    // Keep only the fractional cycle so precision does not decay as startSample grows.
    const cycles = (hz * (startSample + i)) / sampleRate;
    const phase = cycles - Math.floor(cycles);
    out[i] = Math.round(peak * Math.sin(2 * Math.PI * phase));
  }
  return out;
}

/**
 * Power of one frequency component as a mean-square value relative to full scale:
 * a full-scale sine at `hz` gives about 0.5, silence gives 0.
 */
export function goertzelPower(pcm: Int16Array, sampleRate: number, hz: number): number {
  const n = pcm.length;
  if (n === 0) return 0;
  const w = (2 * Math.PI * hz) / sampleRate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = (pcm[i] ?? 0) / FULL_SCALE + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const magnitudeSquared = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  const amplitude = (2 * Math.sqrt(Math.max(0, magnitudeSquared))) / n;
  return (amplitude * amplitude) / 2;
}

export function rmsDbfs(pcm: Int16Array): number {
  if (pcm.length === 0) return SILENCE_DBFS;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) {
    const v = (pcm[i] ?? 0) / FULL_SCALE;
    sum += v * v;
  }
  const rms = Math.sqrt(sum / pcm.length);
  return rms > 0 ? Math.max(SILENCE_DBFS, 20 * Math.log10(rms)) : SILENCE_DBFS;
}

/**
 * Finds the dominant frequency with a Hann-windowed FFT (zero-padded to a power of two)
 * and refines the peak by parabolic interpolation on log magnitudes.
 */
export function detectTone(pcm: Int16Array, sampleRate: number): ToneDetection {
  const input = pcm.length > MAX_ANALYSIS_SAMPLES ? pcm.subarray(pcm.length - MAX_ANALYSIS_SAMPLES) : pcm;
  const levelDbfs = rmsDbfs(input);
  if (input.length < 16 || levelDbfs <= SILENCE_DBFS) return { hz: 0, levelDbfs, snrDb: 0 };

  const n = input.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += input[i] ?? 0;
  mean /= n;

  let size = 1;
  while (size < n) size <<= 1;
  // Zero padding to at least 2x interpolates the spectrum so short inputs still resolve well.
  while (size < 2 * n && size < 1 << 19) size <<= 1;
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  for (let i = 0; i < n; i++) {
    const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    re[i] = (((input[i] ?? 0) - mean) / FULL_SCALE) * hann;
  }
  fftInPlace(re, im);

  const half = size / 2;
  const power = new Float64Array(half + 1);
  for (let k = 0; k <= half; k++) power[k] = (re[k] ?? 0) ** 2 + (im[k] ?? 0) ** 2;

  const binHz = sampleRate / size;
  const firstBin = Math.max(1, Math.ceil(MIN_DETECT_HZ / binHz));
  let peakBin = firstBin;
  for (let k = firstBin; k < half; k++) {
    if ((power[k] ?? 0) > (power[peakBin] ?? 0)) peakBin = k;
  }
  if ((power[peakBin] ?? 0) <= 0) return { hz: 0, levelDbfs, snrDb: 0 };

  const a = Math.log((power[peakBin - 1] ?? 0) + 1e-300);
  const b = Math.log((power[peakBin] ?? 0) + 1e-300);
  const c = Math.log((power[peakBin + 1] ?? 0) + 1e-300);
  const denom = a - 2 * b + c;
  const offset = denom !== 0 ? Math.max(-0.5, Math.min(0.5, (0.5 * (a - c)) / denom)) : 0;
  const hz = (peakBin + offset) * binHz;

  // The zero-padded main lobe spans several bins; scale the window with the padding factor.
  const lobe = Math.ceil((PEAK_HALF_WIDTH_BINS * size) / n);
  let signal = 0;
  let noise = 0;
  for (let k = firstBin; k <= half; k++) {
    if (Math.abs(k - peakBin) <= lobe) signal += power[k] ?? 0;
    else noise += power[k] ?? 0;
  }
  const snrDb = noise > 0 ? 10 * Math.log10(signal / noise) : 200;
  return { hz, levelDbfs, snrDb };
}

/** Iterative radix-2 Cooley-Tukey FFT; length must be a power of two. */
function fftInPlace(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i] ?? 0;
      re[i] = re[j] ?? 0;
      re[j] = tr;
      const ti = im[i] ?? 0;
      im[i] = im[j] ?? 0;
      im[j] = ti;
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const angle = (-2 * Math.PI) / len;
    const wr = Math.cos(angle);
    const wi = Math.sin(angle);
    const halfLen = len >> 1;
    for (let start = 0; start < n; start += len) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < halfLen; k++) {
        const i = start + k;
        const j = i + halfLen;
        const xr = re[j] ?? 0;
        const xi = im[j] ?? 0;
        const tr = xr * cr - xi * ci;
        const ti = xr * ci + xi * cr;
        re[j] = (re[i] ?? 0) - tr;
        im[j] = (im[i] ?? 0) - ti;
        re[i] = (re[i] ?? 0) + tr;
        im[i] = (im[i] ?? 0) + ti;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
}
