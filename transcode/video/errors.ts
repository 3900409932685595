/** Typed errors of the video path, so callers can tell a missing binary from a dying process from bad input. */

export class VideoError extends Error {
  override readonly name: string = "VideoError";
}

/** An RTP payload that does not follow its payload format, or a frame that cannot be rebuilt from it. */
export class PayloadFormatError extends VideoError {
  override readonly name: string = "PayloadFormatError";
}

/** ffmpeg wrote output that does not parse (treated like a crash of that process). */
export class EncodedOutputFormatError extends VideoError {
  override readonly name: string = "EncodedOutputFormatError";
}

/** The ffmpeg binary could not be started (not installed, not executable, wrong FFMPEG_PATH). */
export class FfmpegNotFoundError extends VideoError {
  override readonly name: string = "FfmpegNotFoundError";
  constructor(
    readonly path: string,
    cause?: unknown,
  ) {
    super(
      `ffmpeg not found or not runnable at "${path}": install ffmpeg (Debian: apt-get install ffmpeg) or set FFMPEG_PATH`,
      { cause },
    );
  }
}

/** ffmpeg exited on its own; `stderrTail` holds its last complaint. */
export class FfmpegExitError extends VideoError {
  override readonly name: string = "FfmpegExitError";
  constructor(
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: string,
  ) {
    super(`ffmpeg exited (code ${code ?? "-"}, signal ${signal ?? "-"})${stderrTail ? `: ${stderrTail}` : ""}`);
  }
}

/** The transcoder gave up: ffmpeg kept dying faster than the restart budget allows. */
export class TranscoderFailedError extends VideoError {
  override readonly name: string = "TranscoderFailedError";
  constructor(
    readonly restarts: number,
    readonly lastExit: FfmpegExitError | undefined,
  ) {
    super(`video transcoder failed after ${restarts} restarts${lastExit ? `; last: ${lastExit.message}` : ""}`);
  }
}

/** A call on a transcoder that has been closed or has failed. */
export class TranscoderClosedError extends VideoError {
  override readonly name: string = "TranscoderClosedError";
}
