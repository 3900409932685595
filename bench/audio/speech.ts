/**
 * The talk pattern every bench stream plays, in both directions: one period of PERIOD_FRAMES
 * 20 ms frames, the first PAUSE_FRAMES digital silence, the rest a voiced, speech-like signal.
 *
 * The pause-to-talk edge is what the receivers anchor on: the first loud frame after a quiet run
 * is the onset frame of the period that was sent last, which ties the received stream's RTP
 * timestamps to the sender's frame numbers whatever the middlebox did to sequence numbers,
 * timestamps and codec. Between onsets, timestamps map frames one to one.
 */
export const FRAME_MS = 20;
export const PERIOD_FRAMES = 50;
export const PAUSE_FRAMES = 10;
/** Frame number (within a period) where talk starts. */
export const ONSET_FRAME = PAUSE_FRAMES;

/** Loud enough to never read as quiet anywhere inside a talkspurt after any codec. */
const LEVEL = 0.22;

/**
 * `frames` frames of the pattern at `sampleRate`, starting at the beginning of a period.
 * Voiced speech: a gliding fundamental (95–185 Hz) with harmonics under 3.4 kHz shaped by three
 * moving formants, and a syllable envelope that never drops below 45 %.
 */
export function speechPattern(sampleRate: number, frames: number): Int16Array {
  const perFrame = (sampleRate * FRAME_MS) / 1000;
  const out = new Int16Array(frames * perFrame);
  let phase = 0;
  for (let f = 0; f < frames; f++) {
    const inPeriod = f % PERIOD_FRAMES;
    if (inPeriod < PAUSE_FRAMES) {
      phase = 0;
      continue;
    }
    for (let i = 0; i < perFrame; i++) {
      const t = ((inPeriod - PAUSE_FRAMES) * perFrame + i) / sampleRate;
      const f0 = 140 + 35 * Math.sin(2 * Math.PI * 0.9 * t) + 10 * Math.sin(2 * Math.PI * 3.3 * t);
      phase += (2 * Math.PI * f0) / sampleRate;
      const envelope = 0.45 + 0.55 * Math.abs(Math.sin(2 * Math.PI * 2.2 * t));
      const formants = [650 + 150 * Math.sin(2 * Math.PI * 1.7 * t), 1400 + 300 * Math.sin(2 * Math.PI * 1.1 * t), 2500];
      let sample = 0;
      for (let h = 1; h * f0 < 3400; h++) {
        const freq = h * f0;
        let gain = 0;
        for (const fc of formants) gain += 1 / (1 + ((freq - fc) / 180) ** 2);
        sample += (gain / Math.sqrt(h)) * Math.sin(h * phase);
      }
      out[f * perFrame + i] = Math.max(-32767, Math.min(32767, Math.round(32767 * LEVEL * envelope * sample * 0.35)));
    }
  }
  return out;
}

/** Frame number `k` of a stream as its position in the period. */
export function periodIndex(k: number): number {
  return ((k % PERIOD_FRAMES) + PERIOD_FRAMES) % PERIOD_FRAMES;
}
