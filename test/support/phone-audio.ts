import { createSocket } from "node:dgram";

/**
 * A phone's microphone sending µ-law silence: 20 ms PCMU packets from a socket of the test to the
 * gateway's audio port, so the gateway sees a live PBX. Returns a stop function.
 */
export function phoneAudio(port: number): () => void {
  const sock = createSocket("udp4");
  let seq = 0;
  const timer = setInterval(() => {
    const p = Buffer.alloc(12 + 160, 0xff);
    p[0] = 0x80;
    p[1] = 0;
    p.writeUInt16BE(seq & 0xffff, 2);
    p.writeUInt32BE((seq * 160) >>> 0, 4);
    p.writeUInt32BE(0xa11ce, 8);
    seq++;
    sock.send(p, port, "127.0.0.1");
  }, 20);
  return () => {
    clearInterval(timer);
    sock.close();
  };
}
