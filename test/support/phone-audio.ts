import { createSocket, type Socket } from "node:dgram";
import { encodeMulaw } from "../../transcode/g711.js";

/**
 * A phone's microphone: 20 ms PCMU packets to the gateway's audio port, a sine at `toneHz` (0 for
 * silence), so the gateway sees a live PBX. Sends from `from` when given (the socket the phone's SDP
 * names, for symmetric RTP), else from a socket of its own. Returns a stop function.
 */
export function phoneAudio(port: number, o: { toneHz?: number; from?: Socket } = {}): () => void {
  const sock = o.from ?? createSocket("udp4");
  const hz = o.toneHz ?? 0;
  let seq = 0;
  let n = 0;
  const pcm = new Int16Array(160);
  const timer = setInterval(() => {
    for (let i = 0; i < 160; i++, n++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * hz * n) / 8000));
    const p = Buffer.alloc(12 + 160);
    p[0] = 0x80;
    p[1] = 0;
    p.writeUInt16BE(seq & 0xffff, 2);
    p.writeUInt32BE((seq * 160) >>> 0, 4);
    p.writeUInt32BE(0xa11ce, 8);
    p.set(encodeMulaw(pcm), 12);
    seq++;
    sock.send(p, port, "127.0.0.1");
  }, 20);
  return () => {
    clearInterval(timer);
    if (!o.from) sock.close();
  };
}
