import dgram from "node:dgram";
import { isIPv6 } from "node:net";

/** Binds a UDP socket, or rejects (closing it) when the port is taken; never leaves an error unhandled. */
export function bindUdpSocket(
  address: string,
  port: number,
  onMessage?: (msg: Buffer, rinfo: dgram.RemoteInfo) => void,
): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: isIPv6(address) ? "udp6" : "udp4", reuseAddr: false }, onMessage);
    const onError = (err: Error): void => {
      try {
        socket.close();
      } catch {
        // never bound
      }
      reject(err);
    };
    socket.once("error", onError);
    socket.bind(port, address, () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}
