import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Fails loudly when a real peer the tests need is not installed (CI installs it). */
export function requireTool(name: string, hint: string): void {
  const found = spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
  if (!found) throw new Error(`${name} is not installed: ${hint} (scripts/setup.sh installs it)`);
}

/** What a video phone's `video_debug` command reports about the call's video stream. */
export interface BaresipVideoStats {
  /** Frames its camera produced for the encoder. */
  framesCaptured: number;
  /** Frames it decoded and handed to its display. */
  framesDisplayed: number;
  /** Keyframes it decoded. */
  keyframesReceived: number;
  /** Keyframe requests it sent. */
  pictureUpdatesSent: number;
  /** Codec of its decoder ("none" before any video arrived). */
  decoder: string;
}

export interface BaresipOptions {
  /** SIP port on 127.0.0.1. */
  port: number;
  /** Frequency of the tone it sends once a call is up. */
  toneHz: number;
  /** First RTP port of the range it uses. */
  rtpPortMin: number;
  audioCodecs?: string;
  user?: string;
  /** Dial this URI as soon as the phone is up (the phone is then the calling agent). */
  dial?: string;
  /** A video phone: H.264 through libavcodec, a test-pattern camera and a display that draws nothing. */
  video?: boolean;
  /** Port of its control socket on 127.0.0.1 (netstring JSON commands), e.g. for snapshots. */
  controlPort?: number;
  /**
   * SDES-keyed SRTP (its srtp module): `srtp` offers a=crypto in RTP/AVP and takes plain RTP too,
   * `srtp-mand` sends and takes only RTP/SAVP.
   */
  mediaenc?: "srtp" | "srtp-mand";
  /**
   * SIP over TLS on port + 1 (baresip's choice): a PEM file with its certificate and key, and the
   * CA file it trusts.
   */
  tls?: { certificate: string; cafile?: string };
}

/**
 * A real SIP phone (Debian's baresip), headless: it auto-answers, speaks a sine tone and records
 * what it hears into a WAV file, so a test can check the audio that actually reached a phone.
 */
export class Baresip {
  private readonly output: string[] = [];

  private constructor(
    private readonly proc: ChildProcess,
    private readonly dir: string,
    readonly uri: string,
  ) {
    proc.stdout?.on("data", (d: Buffer) => this.output.push(d.toString()));
    proc.stderr?.on("data", (d: Buffer) => this.output.push(d.toString()));
  }

  static async start(o: BaresipOptions): Promise<Baresip> {
    requireTool("baresip", "Debian package baresip");
    const dir = mkdtempSync(join(tmpdir(), "baresip-"));
    mkdirSync(join(dir, "rec"));
    const user = o.user ?? "agent";
    writeFileSync(
      join(dir, "config"),
      [
        "poll_method epoll",
        // Every address in its SDP must be loopback, whatever interfaces the machine has.
        "net_interface 127.0.0.1",
        `sip_listen 127.0.0.1:${o.port}`,
        ...(o.tls ? [`sip_certificate ${o.tls.certificate}`, ...(o.tls.cafile ? [`sip_cafile ${o.tls.cafile}`] : [])] : []),
        "audio_player aubridge,nil",
        `audio_source ausine,${o.toneHz}`,
        "audio_alert aubridge,nil",
        // ausine only starts at 48 kHz stereo; baresip resamples to the codec.
        "ausrc_srate 48000",
        "ausrc_channels 2",
        "audio_level no",
        `rtp_ports ${o.rtpPortMin}-${o.rtpPortMin + 99}`,
        "jitter_buffer_delay 1-5",
        "module_path /usr/lib/baresip/modules",
        "module g711.so",
        ...(o.mediaenc ? ["module srtp.so"] : []),
        ...(o.video
          ? ["module avcodec.so", "module fakevideo.so", "module snapshot.so", "video_source fakevideo,nil", "video_display fakevideo,nil", "video_size 640x360", "video_fps 15"]
          : []),
        ...(o.controlPort ? ["module_app ctrl_tcp.so", `ctrl_tcp_listen 127.0.0.1:${o.controlPort}`] : []),
        "module ausine.so",
        "module aubridge.so",
        "module sndfile.so",
        "module_app account.so",
        "module_app menu.so",
        `snd_path ${join(dir, "rec")}`,
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(dir, "accounts"),
      `<sip:${user}@127.0.0.1:${o.port}>;regint=0;answermode=auto;audio_codecs=${o.audioCodecs ?? "PCMU,PCMA"}${o.mediaenc ? `;mediaenc=${o.mediaenc}` : ""}\n`,
    );
    const args = ["-f", dir, ...(o.dial ? ["-e", `/dial ${o.dial}`] : [])];
    const proc = spawn("baresip", args, { stdio: ["pipe", "pipe", "pipe"] });
    const phone = new Baresip(proc, dir, `sip:${user}@127.0.0.1:${o.port}`);
    const until = Date.now() + 5000;
    while (!phone.log.includes("baresip is ready") && !phone.log.includes("Useragent")) {
      if (proc.exitCode !== null) throw new Error(`baresip exited: ${phone.log}`);
      if (Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return phone;
  }

  get log(): string {
    return this.output.join("");
  }

  /** Audio the phone received and decoded, 8 kHz-or-codec-rate mono PCM from its recording. */
  receivedPcm(): { pcm: Int16Array; sampleRate: number } {
    const files = readdirSync(join(this.dir, "rec")).filter((f) => f.endsWith("-dec.wav")).sort();
    const last = files.at(-1);
    if (!last) return { pcm: new Int16Array(0), sampleRate: 8000 };
    return parseWav(readFileSync(join(this.dir, "rec", last)));
  }

  /**
   * Sends one command on the control socket (baresip's netstring JSON) and resolves with its
   * response text.
   */
  command(port: number, command: string, params = ""): Promise<string> {
    return new Promise((resolve, reject) => {
      const json = JSON.stringify({ command, params, token: "t1" });
      const socket = createConnection({ host: "127.0.0.1", port }, () => socket.write(`${Buffer.byteLength(json)}:${json},`));
      let text = "";
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(text);
      }, 2000);
      socket.on("data", (d) => {
        text += d.toString();
        if (text.includes('"response"')) {
          clearTimeout(timer);
          socket.end();
          resolve(text);
        }
      });
      socket.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /**
   * Asks the phone to save the next frame it decodes as a PNG (snapshot module); the file appears once
   * a frame is decoded. Rejects when the phone refuses the command.
   */
  async snapshotReceived(port: number, file: string): Promise<void> {
    const reply = await this.command(port, "snapshot_recv", file);
    if (!/"ok":true/.test(reply)) throw new Error(`baresip refused snapshot_recv: ${reply}`);
  }

  /** Frame counts of the current call's video stream; undefined when there is no call or no video. */
  async videoStats(port: number): Promise<BaresipVideoStats | undefined> {
    const data = responseData(await this.command(port, "video_debug"));
    const count = (re: RegExp): number | undefined => {
      const m = re.exec(data);
      return m?.[1] === undefined ? undefined : Number(m[1]);
    };
    const framesCaptured = count(/source:.*frames=(\d+)/);
    const framesDisplayed = count(/vidisp:.*frames=(\d+)/);
    if (framesCaptured === undefined || framesDisplayed === undefined) return undefined;
    return {
      framesCaptured,
      framesDisplayed,
      keyframesReceived: count(/n_keyframes=(\d+)/) ?? 0,
      pictureUpdatesSent: count(/n_picup=(\d+)/) ?? 0,
      decoder: /rx: decode: (\S+)/.exec(data)?.[1] ?? "none",
    };
  }

  /** Hangs up the current call (menu command on its control input). */
  hangup(): void {
    this.proc.stdin?.write("/hangup\n");
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The `data` text of the response in what the control socket sent (netstrings of JSON, events among
 * them); empty when there is none.
 */
function responseData(text: string): string {
  const bytes = Buffer.from(text);
  let offset = 0;
  while (offset < bytes.length) {
    const colon = bytes.indexOf(":", offset);
    const length = Number(bytes.toString("latin1", offset, colon));
    if (colon < 0 || !Number.isInteger(length)) return "";
    const body = bytes.toString("utf8", colon + 1, colon + 1 + length);
    offset = colon + 1 + length + 1;
    try {
      const parsed = JSON.parse(body) as { response?: unknown; data?: unknown };
      if (parsed.response === true) return typeof parsed.data === "string" ? parsed.data : "";
    } catch {
      return "";
    }
  }
  return "";
}

/** Reads a PCM WAV (16-bit); returns the first channel. */
export function parseWav(buf: Buffer): { pcm: Int16Array; sampleRate: number } {
  if (buf.length < 44 || buf.toString("ascii", 0, 4) !== "RIFF") return { pcm: new Int16Array(0), sampleRate: 8000 };
  let off = 12;
  let sampleRate = 8000;
  let channels = 1;
  while (off + 8 <= buf.length) {
    const id = buf.toString("ascii", off, off + 4);
    let size = buf.readUInt32LE(off + 4);
    if (id === "fmt ") {
      channels = buf.readUInt16LE(off + 10);
      sampleRate = buf.readUInt32LE(off + 12);
    } else if (id === "data") {
      // A recording cut short by the process ending may still say 0 or too much.
      if (size === 0 || off + 8 + size > buf.length) size = buf.length - off - 8;
      const frames = Math.floor(size / 2 / channels);
      const pcm = new Int16Array(frames);
      for (let i = 0; i < frames; i++) pcm[i] = buf.readInt16LE(off + 8 + i * 2 * channels);
      return { pcm, sampleRate };
    }
    off += 8 + size + (size & 1);
  }
  return { pcm: new Int16Array(0), sampleRate };
}
