import { execFileSync } from "node:child_process";

/** Frames ffmpeg decodes from an Annex-B H.264 file, and the stream's profile. */
export function decodeH264File(file: string): { frames: number; profile: string } {
  const out = execFileSync(
    "ffprobe",
    ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames,profile", "-of", "json", file],
    { encoding: "utf8" },
  );
  const s = (JSON.parse(out) as { streams: { nb_read_frames?: string; profile?: string }[] }).streams[0];
  return { frames: Number(s?.nb_read_frames ?? 0), profile: s?.profile ?? "" };
}
