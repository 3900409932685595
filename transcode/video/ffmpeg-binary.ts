/** Locating ffmpeg: FFMPEG_PATH if set, else `ffmpeg` on PATH; a typed error when it cannot run. */
import { execFile } from "node:child_process";
import { FfmpegNotFoundError } from "./errors.js";

export function resolveFfmpegPath(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.FFMPEG_PATH?.trim();
  return configured ? configured : "ffmpeg";
}

export interface FfmpegInfo {
  path: string;
  /** First line of `ffmpeg -version`. */
  version: string;
}

/** Runs `ffmpeg -version`; rejects with FfmpegNotFoundError if that fails. */
export function checkFfmpeg(path: string = resolveFfmpegPath()): Promise<FfmpegInfo> {
  return new Promise((resolve, reject) => {
    execFile(path, ["-hide_banner", "-version"], { timeout: 10_000 }, (error, stdout) => {
      if (error) {
        reject(new FfmpegNotFoundError(path, error));
        return;
      }
      resolve({ path, version: stdout.split("\n")[0]?.trim() ?? "" });
    });
  });
}
