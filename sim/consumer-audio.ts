import { OpusDecoder, OpusEncoder } from "../transcode/opus-codec.js";
import { detectTone, generateTone, type ToneDetection } from "../transcode/tone.js";

export const OPUS_SAMPLE_RATE = 48000;
export const FRAME_MS = 20;
export const SAMPLES_PER_FRAME = (OPUS_SAMPLE_RATE * FRAME_MS) / 1000;

/** Produces consecutive 20 ms Opus frames of a sine tone at 48 kHz mono. */
export class OpusToneEncoder {
  private readonly encoder: OpusEncoder;
  private frameIndex = 0;

  constructor(
    private readonly hz: number,
    private readonly amplitude: number,
    bitrate = 20000,
  ) {
    this.encoder = new OpusEncoder({ rate: OPUS_SAMPLE_RATE, application: "voip", bitrate });
  }

  /** The next frame and its RTP timestamp offset (samples since the first frame). */
  nextFrame(): { payload: Buffer; timestampOffset: number } {
    const startSample = this.frameIndex * SAMPLES_PER_FRAME;
    const pcm = generateTone({
      hz: this.hz,
      sampleRate: OPUS_SAMPLE_RATE,
      amplitude: this.amplitude,
      startSample,
      samples: SAMPLES_PER_FRAME,
    });
    this.frameIndex++;
    return { payload: this.encoder.encode(pcm), timestampOffset: startSample };
  }
}

/** One RFC 4733 event seen on the wire, recorded once when its end bit first arrives. */
export interface TelephoneEvent {
  event: number;
  durationSamples: number;
  receivedAt: number;
}

/**
 * Decodes received Opus to 48 kHz mono PCM and keeps the most recent `keepSeconds` of it.
 * Packets are decoded in arrival order; gaps are not filled, so the PCM is "what was heard"
 * minus silence for lost packets, which is enough for tone detection.
 */
export class OpusPcmRecorder {
  private readonly decoder = new OpusDecoder(OPUS_SAMPLE_RATE);
  private readonly chunks: Int16Array[] = [];
  private storedSamples = 0;
  private readonly maxSamples: number;
  decodeErrors = 0;

  constructor(keepSeconds: number) {
    this.maxSamples = Math.max(1, Math.round(keepSeconds * OPUS_SAMPLE_RATE));
  }

  push(opusPayload: Buffer): void {
    let decoded: Int16Array;
    try {
      decoded = this.decoder.decode(opusPayload);
    } catch {
      this.decodeErrors++;
      return;
    }
    this.chunks.push(decoded);
    this.storedSamples += decoded.length;
    while (this.chunks.length > 1 && this.storedSamples - (this.chunks[0]?.length ?? 0) >= this.maxSamples) {
      this.storedSamples -= this.chunks.shift()?.length ?? 0;
    }
  }

  /** The last `seconds` of decoded audio (everything kept when omitted). */
  pcm(seconds?: number): Int16Array {
    const all = new Int16Array(this.storedSamples);
    let offset = 0;
    for (const chunk of this.chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    if (seconds === undefined) return all;
    const want = Math.min(all.length, Math.round(seconds * OPUS_SAMPLE_RATE));
    return all.subarray(all.length - want);
  }

  detectTone(seconds: number): ToneDetection {
    return detectTone(this.pcm(seconds), OPUS_SAMPLE_RATE);
  }
}

/** Parses one RFC 4733 payload; returns the event when this packet carries the end bit. */
export function parseTelephoneEvent(payload: Buffer): { event: number; end: boolean; durationSamples: number } | undefined {
  if (payload.length < 4) return undefined;
  return {
    event: payload.readUInt8(0),
    end: (payload.readUInt8(1) & 0x80) !== 0,
    durationSamples: payload.readUInt16BE(2),
  };
}
