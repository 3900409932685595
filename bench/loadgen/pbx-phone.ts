import dgram from "node:dgram";
import { randomInt } from "node:crypto";

const RTP_HEADER = 12;
const PCMU_PT = 0;

export interface PhoneRtp {
  sequenceNumber: number;
  timestamp: number;
  payload: Buffer;
}

/**
 * A PBX phone's media: one plain UDP socket that sends PCMU and hands received RTP on. RTCP is
 * announced on the same port (a=rtcp) and dropped on arrival, which keeps one socket per phone.
 */
export class PbxPhone {
  private remote: { address: string; port: number } | undefined;
  private readonly ssrc = randomInt(1, 2 ** 32 - 1);
  private closed = false;
  packetsReceived = 0;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly onRtp: (packet: PhoneRtp, arrivalMs: number) => void,
  ) {
    socket.on("message", (msg) => this.onMessage(msg));
    socket.on("error", () => undefined);
  }

  static async open(onRtp: (packet: PhoneRtp, arrivalMs: number) => void): Promise<PbxPhone> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return new PbxPhone(socket, onRtp);
  }

  get port(): number {
    return this.socket.address().port;
  }

  setRemote(address: string, port: number): void {
    this.remote = { address, port };
  }

  send(sequenceNumber: number, timestamp: number, payload: Buffer, marker: boolean): void {
    const to = this.remote;
    if (this.closed || !to) return;
    const packet = Buffer.allocUnsafe(RTP_HEADER + payload.length);
    packet[0] = 0x80;
    packet[1] = (marker ? 0x80 : 0) | PCMU_PT;
    packet.writeUInt16BE(sequenceNumber, 2);
    packet.writeUInt32BE(timestamp, 4);
    packet.writeUInt32BE(this.ssrc, 8);
    payload.copy(packet, RTP_HEADER);
    this.socket.send(packet, to.port, to.address);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }

  private onMessage(msg: Buffer): void {
    const arrival = performance.now();
    if (this.closed || msg.length < RTP_HEADER || msg[0]! >> 6 !== 2) return;
    const pt = msg[1]! & 0x7f;
    // RTCP (SR 200 … APP 204) shares the port: its second byte reads as PT 72–76.
    if (pt >= 72 && pt <= 76) return;
    const csrcs = msg[0]! & 0x0f;
    let offset = RTP_HEADER + csrcs * 4;
    if (msg[0]! & 0x10) offset += 4 + msg.readUInt16BE(offset + 2) * 4;
    if (offset > msg.length) return;
    this.packetsReceived++;
    this.onRtp({ sequenceNumber: msg.readUInt16BE(2), timestamp: msg.readUInt32BE(4), payload: msg.subarray(offset) }, arrival);
  }
}
