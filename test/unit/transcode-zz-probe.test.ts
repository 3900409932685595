import { Encoder } from "@evan/opus";
import { it } from "vitest";
import { OpusDecoder8k } from "../../transcode/opus.js";
import { detectTone, generateTone, goertzelPower, rmsDbfs } from "../../transcode/tone.js";
it("probe", () => {
  for (const hz of [1000, 3400, 4500, 6000]) {
    const encoder = new Encoder({ channels: 1, sample_rate: 48000, application: "audio" });
    encoder.bitrate = 64000;
    const pcm = generateTone({ hz, sampleRate: 48000, amplitude: 0.5, startSample: 0, samples: 48000 });
    const d = new OpusDecoder8k();
    const out: number[] = [];
    for (let o = 0; o < pcm.length; o += 960) out.push(...d.decode(encoder.encode(pcm.subarray(o, o + 960))));
    const p = Int16Array.from(out).subarray(800);
    console.log(hz, rmsDbfs(pcm).toFixed(2), rmsDbfs(p).toFixed(2), detectTone(p, 8000), 10*Math.log10(goertzelPower(p,8000,2000)+1e-20));
  }
  const d = new OpusDecoder8k();
  const e = new Encoder({ channels: 1, sample_rate: 48000, application: "voip" });
  const pcm = generateTone({ hz: 1000, sampleRate: 48000, amplitude: 0.5, startSample: 0, samples: 48000 });
  for (let o = 0; o < 24000; o += 960) d.decode(e.encode(pcm.subarray(o, o + 960)));
  for (let k = 0; k < 8; k++) console.log("plc", k, rmsDbfs(d.conceal(160)).toFixed(1));
});
