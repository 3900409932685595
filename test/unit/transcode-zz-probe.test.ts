import { Encoder } from "@evan/opus";
import { it } from "vitest";
import { MetaToPbxAudio, type OpusRtpInput } from "../../transcode/audio-pipeline.js";
import { generateTone } from "../../transcode/tone.js";
it("probe", () => {
  const encoder = new Encoder({ channels: 1, sample_rate: 48000, application: "voip" });
  const pcm = generateTone({ hz: 440, sampleRate: 48000, amplitude: 0.5, startSample: 0, samples: 40 * 960 });
  const packets: OpusRtpInput[] = [];
  for (let n = 0; n < 40; n++) { const payload = encoder.encode(pcm.subarray(n*960,(n+1)*960)); if (n>=20&&n<35) continue; packets.push({ payload, seq: n < 20 ? n : n - 15, timestamp: n*960, arrivalMs: 1000+n*20 }); }
  const log: string[] = [];
  let now = 0;
  const p = new MetaToPbxAudio({ codec: "PCMU", initialTimestamp: 0, onFrame: (f) => log.push(`${now} ts=${f.timestamp/160} ${f.content} m=${f.marker} arr=${f.oldestArrivalMs}`) });
  const q = [...packets];
  for (;;) { const d = p.nextDeadlineMs(); const n = q[0]?.arrivalMs ?? Infinity; if (d !== undefined && d <= n && d <= 1800) { now = d; p.tick(d); } else if (n <= 1800) { now = n; p.push(q.shift()!); } else break; }
  console.log(log.join("\n")); console.log(p.stats());
});
