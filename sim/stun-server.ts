import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { crc32 } from "node:zlib";
import { LOOPBACK_HOST } from "./loopback-ice.js";

const MAGIC_COOKIE = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;

/**
 * A STUN binding responder on loopback. Full ICE agents under test (the gateway) point their
 * `stun:` URL here so werift's server-reflexive query gets an answer at once instead of
 * falling back to a public server or waiting out its gather timeout.
 */
export class LoopbackStunServer {
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
  ) {}

  static async start(host: string = LOOPBACK_HOST, port = 0): Promise<LoopbackStunServer> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    const server = new LoopbackStunServer(socket, socket.address().port);
    socket.on("message", (msg, rinfo) => server.onMessage(msg, rinfo));
    // A late ICMP error must not crash the process hosting the tests.
    socket.on("error", () => undefined);
    return server;
  }

  get url(): string {
    return `stun:${LOOPBACK_HOST}:${this.port}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const response = bindingResponse(msg, rinfo);
    if (response) this.socket.send(response, rinfo.port, rinfo.address);
  }
}

/** Builds a Binding success response (XOR-MAPPED-ADDRESS + FINGERPRINT), or undefined for anything else. */
export function bindingResponse(request: Buffer, from: { address: string; port: number }): Buffer | undefined {
  if (request.length < 20 || request.readUInt16BE(0) !== BINDING_REQUEST || request.readUInt32BE(4) !== MAGIC_COOKIE) {
    return undefined;
  }
  const octets = from.address.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return undefined;
  const ip = (((octets[0] ?? 0) << 24) | ((octets[1] ?? 0) << 16) | ((octets[2] ?? 0) << 8) | (octets[3] ?? 0)) >>> 0;

  const out = Buffer.alloc(20 + 12 + 8);
  out.writeUInt16BE(BINDING_SUCCESS, 0);
  out.writeUInt16BE(out.length - 20, 2);
  out.writeUInt32BE(MAGIC_COOKIE, 4);
  request.copy(out, 8, 8, 20);
  out.writeUInt16BE(ATTR_XOR_MAPPED_ADDRESS, 20);
  out.writeUInt16BE(8, 22);
  out.writeUInt8(0, 24);
  out.writeUInt8(0x01, 25);
  out.writeUInt16BE(from.port ^ (MAGIC_COOKIE >>> 16), 26);
  out.writeUInt32BE((ip ^ MAGIC_COOKIE) >>> 0, 28);
  out.writeUInt16BE(ATTR_FINGERPRINT, 32);
  out.writeUInt16BE(4, 34);
  out.writeUInt32BE((crc32(out.subarray(0, 32)) ^ FINGERPRINT_XOR) >>> 0, 36);
  return out;
}
