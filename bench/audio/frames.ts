import { OpusEncoder } from "../../transcode/opus-codec.js";
import { decodeMulaw, encodeMulaw } from "../../transcode/g711.js";
import { FRAME_MS, PERIOD_FRAMES, speechPattern } from "./speech.js";

/** One period of the talk pattern, ready to send: a payload per 20 ms frame. */
export interface FrameLoop {
  payloads: readonly Buffer[];
  /** RTP timestamp ticks per frame. */
  tsStep: number;
}

/**
 * The pattern as Opus at 48 kHz mono, 20 kbit/s voip, encoded once per process so senders pay
 * nothing per packet. Three periods go through the encoder and the last is kept, so the loop
 * starts from a warmed-up encoder state exactly as it continues.
 */
export function opusLoop(): FrameLoop {
  const rate = 48000;
  const perFrame = (rate * FRAME_MS) / 1000;
  const encoder = new OpusEncoder({ rate, application: "voip", bitrate: 20000 });
  const pcm = speechPattern(rate, PERIOD_FRAMES * 3);
  const payloads: Buffer[] = [];
  for (let f = 0; f < PERIOD_FRAMES * 3; f++) {
    const packet = encoder.encode(pcm.subarray(f * perFrame, (f + 1) * perFrame));
    if (f >= PERIOD_FRAMES * 2) payloads.push(packet);
  }
  return { payloads, tsStep: perFrame };
}

/** The pattern as PCMU (8 kHz, 160 bytes per frame). */
export function pcmuLoop(): FrameLoop {
  const perFrame = (8000 * FRAME_MS) / 1000;
  const codes = encodeMulaw(speechPattern(8000, PERIOD_FRAMES));
  const payloads: Buffer[] = [];
  for (let f = 0; f < PERIOD_FRAMES; f++) payloads.push(Buffer.from(codes.subarray(f * perFrame, (f + 1) * perFrame)));
  return { payloads, tsStep: perFrame };
}

/** Mean absolute sample value of a PCMU payload, by table. */
const MULAW_ABS = (() => {
  const all = new Uint8Array(256).map((_, i) => i);
  return Int16Array.from(decodeMulaw(all), (v) => Math.abs(v));
})();

/**
 * A pause frame after any codec: mean level under about -54 dBFS. Talk frames sit 30 dB and
 * more above that, except the onset frame, which codec delay leaves partly silent.
 */
export function pcmuIsQuiet(payload: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < payload.length; i++) sum += MULAW_ABS[payload[i] as number] as number;
  return payload.length === 0 || sum / payload.length < 64;
}

/**
 * libopus codes digital silence in a handful of bytes whatever its bitrate, and voice at
 * 20 kbit/s in 30–60: the size tells a pause from talk without decoding.
 */
export function opusIsQuiet(payload: Buffer): boolean {
  return payload.length <= 12;
}
