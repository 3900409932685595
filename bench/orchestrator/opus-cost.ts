import { OpusEncoder } from "../../transcode/opus-codec.js";
import { speechPattern } from "../audio/speech.js";

/** CPU per 20 ms frame of two Opus encoder set-ups, measured on this machine in this run. */
export interface OpusEncoderCost {
  /** The gateway's: 8 kHz input, complexity 1, in-band FEC for 10 % loss, voip, 20 kbit/s. */
  gatewayUs: number;
  /** libavcodec's libopus defaults as rtpengine 10.5 uses them: 48 kHz input, complexity 10, no FEC, 20 kbit/s. */
  rtpengineLikeUs: number;
}

const FRAMES = 500;

/**
 * rtpengine 10.5 has no setting for its Opus encoder's complexity (libavcodec's libopus wrapper
 * keeps its default, 10): the comparison cannot use one complexity for both, so the bench
 * measures what that difference costs per frame and prints it beside the ratio.
 */
export function measureOpusEncoderCost(): OpusEncoderCost {
  return { gatewayUs: perFrameUs(8000, 1, true, "voip"), rtpengineLikeUs: perFrameUs(48000, 10, false, "audio") };
}

function perFrameUs(rate: 8000 | 48000, complexity: 1 | 10, fec: boolean, application: "voip" | "audio"): number {
  const samples = (rate / 1000) * 20;
  const pcm = speechPattern(rate, FRAMES);
  const e = new OpusEncoder({ rate, application, bitrate: 20_000, complexity, inbandFec: fec, packetLossPercent: fec ? 10 : 0 });
  const best: number[] = [];
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now();
    for (let f = 0; f < FRAMES; f++) e.encode(pcm.subarray(f * samples, (f + 1) * samples));
    best.push(((performance.now() - t0) * 1000) / FRAMES);
  }
  return Math.min(...best);
}
