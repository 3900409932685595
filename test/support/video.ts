import { execFileSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { joinAnnexB, splitAnnexB } from "../../transcode/video/annexb.js";
import { VideoDepacketizer } from "../../transcode/video/depacketizer.js";
import { H264Packetizer } from "../../transcode/video/h264-packetizer.js";

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

/** Reassembles H.264 RTP datagrams as a phone received them and lets ffmpeg decode them. */
export function decodeH264Rtp(packets: readonly Buffer[]): { frames: number; profile: string } {
  const depacketizer = new VideoDepacketizer({ codec: "H264" });
  const frames: Buffer[] = [];
  depacketizer.on("frame", (f) => frames.push(f.data));
  for (const p of packets) {
    const payload = p.subarray(12 + (p[0]! & 0x0f) * 4);
    depacketizer.push({ header: { sequenceNumber: p.readUInt16BE(2), timestamp: p.readUInt32BE(4), marker: (p[1]! & 0x80) !== 0, ssrc: p.readUInt32BE(8) }, payload });
  }
  depacketizer.tick(Number.MAX_SAFE_INTEGER);
  const file = join(mkdtempSync(join(tmpdir(), "video-")), "phone.h264");
  writeFileSync(file, Buffer.concat(frames));
  return decodeH264File(file);
}

/** Whether an H.264 RTP datagram carries the start of an IDR: alone, in a STAP-A (24), or opening an FU-A (28). */
export function startsIdr(datagram: Buffer): boolean {
  if (datagram.length < 13) return false;
  const payload = datagram.subarray(12 + (datagram[0]! & 0x0f) * 4);
  const type = payload[0]! & 0x1f;
  const nals = type === 24 ? stapTypes(payload) : type === 28 ? (payload[1]! & 0x80 ? [payload[1]! & 0x1f] : []) : [type];
  return nals.includes(5);
}

function stapTypes(payload: Buffer): number[] {
  const types: number[] = [];
  let off = 1;
  while (off + 2 < payload.length) {
    const size = payload.readUInt16BE(off);
    types.push(payload[off + 2]! & 0x1f);
    off += 2 + size;
  }
  return types;
}

/** Encodes a short H.264 clip (constrained baseline) with ffmpeg and returns its access units. */
export function h264Clip(seconds: number): Buffer[] {
  const file = join(mkdtempSync(join(tmpdir(), "clip-")), "clip.h264");
  execFileSync("ffmpeg", [
    "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", String(seconds),
    "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "30", "-f", "h264", file,
  ]);
  // A new access unit starts at a parameter set or at a slice whose first_mb_in_slice is 0 (its
  // ue(v) code is the single bit 1), once the current unit already holds a slice.
  const units: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let hasSlice = false;
  for (const nal of splitAnnexB(readFileSync(file))) {
    const type = nal[0]! & 0x1f;
    const isSlice = type === 1 || type === 5;
    if (hasSlice && (type === 7 || type === 9 || (isSlice && (nal[1]! & 0x80) !== 0))) {
      units.push(current);
      current = [];
      hasSlice = false;
    }
    current.push(nal);
    hasSlice ||= isSlice;
  }
  if (current.length > 0) units.push(current);
  return units.map((u) => joinAnnexB(u));
}


/** A SIP video phone's media sockets: RTP on an even port the test reads and sends from, RTCP on the next. */
export interface PhoneVideoSockets {
  rtp: Socket;
  rtcp: Socket;
  port: number;
  /** RTP datagrams received. */
  packets: Buffer[];
  /** RTCP packets received, split out of their compound datagrams. */
  feedback: { packetType: number; fmt: number; body: Buffer }[];
  close(): void;
}

export async function openPhoneVideoSockets(): Promise<PhoneVideoSockets> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const rtp = createSocket("udp4");
    await new Promise<void>((r) => rtp.bind(0, "127.0.0.1", () => r()));
    const port = rtp.address().port;
    const rtcp = createSocket("udp4");
    const bound = await new Promise<boolean>((r) => {
      rtcp.once("error", () => r(false));
      rtcp.bind(port + 1, "127.0.0.1", () => r(true));
    });
    if (!bound) {
      rtp.close();
      rtcp.close();
      continue;
    }
    const sockets: PhoneVideoSockets = {
      rtp,
      rtcp,
      port,
      packets: [],
      feedback: [],
      close: () => {
        rtp.close();
        rtcp.close();
      },
    };
    rtp.on("message", (m) => sockets.packets.push(m));
    rtcp.on("message", (m) => sockets.feedback.push(...splitRtcp(m)));
    return sockets;
  }
  throw new Error("no free port pair for the phone's video");
}

/** RFC 3550 compound RTCP, read here independently of the gateway's own parser. */
function splitRtcp(datagram: Buffer): { packetType: number; fmt: number; body: Buffer }[] {
  const out: { packetType: number; fmt: number; body: Buffer }[] = [];
  let off = 0;
  while (off + 4 <= datagram.length) {
    const words = datagram.readUInt16BE(off + 2) + 1;
    const end = off + words * 4;
    if (end > datagram.length) break;
    out.push({ packetType: datagram[off + 1]!, fmt: datagram[off]! & 0x1f, body: datagram.subarray(off + 4, end) });
    off = end;
  }
  return out;
}

/** Sends an H.264 clip as a phone's camera would: RTP at 30 fps from the phone's RTP socket. */
export async function sendPhoneCamera(phone: PhoneVideoSockets, to: number, seconds: number, ssrc: number): Promise<void> {
  const packetizer = new H264Packetizer({ payloadType: 96, ssrc });
  const clip = h264Clip(seconds);
  for (let i = 0; i < clip.length; i++) {
    for (const p of packetizer.packetize(clip[i]!, i * 3000)) phone.rtp.send(p.serialize(), to, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 33));
  }
}
