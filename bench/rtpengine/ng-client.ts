import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { bdecode, bencode, type BencodeValue } from "./bencode.js";

export type NgDict = { [key: string]: BencodeValue };

export class NgError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(`rtpengine ${command}: ${message}`);
    this.name = "NgError";
  }
}

/**
 * rtpengine's NG control protocol over UDP: `<cookie> <bencoded dict>` each way. Requests are
 * retransmitted (UDP), and replies are matched by cookie, so many calls can be in flight at once.
 */
export class NgClient {
  private readonly socket = dgram.createSocket("udp4");
  private readonly pending = new Map<string, { resolve: (d: NgDict) => void; reject: (e: Error) => void; timers: NodeJS.Timeout[] }>();
  private closed = false;

  private constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.socket.on("message", (msg) => this.onMessage(msg));
    this.socket.on("error", () => undefined);
  }

  static async connect(host: string, port: number): Promise<NgClient> {
    const client = new NgClient(host, port);
    await new Promise<void>((resolve) => client.socket.bind(0, "127.0.0.1", resolve));
    return client;
  }

  /** Sends one command; rejects on `result: error` or when nothing answers within timeoutMs. */
  request(command: string, args: NgDict = {}, timeoutMs = 5000): Promise<NgDict> {
    if (this.closed) return Promise.reject(new NgError(command, "client closed"));
    const cookie = randomBytes(8).toString("hex");
    const packet = Buffer.concat([Buffer.from(`${cookie} `), bencode({ ...args, command })]);
    return new Promise<NgDict>((resolve, reject) => {
      const timers: NodeJS.Timeout[] = [];
      const send = (): void => this.socket.send(packet, this.port, this.host);
      // Retransmit twice: the daemon answers a repeated cookie from its cache.
      timers.push(setTimeout(send, 500), setTimeout(send, 1500));
      timers.push(
        setTimeout(() => {
          this.pending.delete(cookie);
          reject(new NgError(command, `no answer within ${timeoutMs} ms`));
        }, timeoutMs),
      );
      this.pending.set(cookie, {
        resolve: (reply) => {
          if (reply.result === "error") reject(new NgError(command, String(reply["error-reason"] ?? "error")));
          else resolve(reply);
        },
        reject,
        timers,
      });
      send();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      for (const t of p.timers) clearTimeout(t);
      p.reject(new Error("NG client closed"));
    }
    this.pending.clear();
    this.socket.close();
  }

  private onMessage(msg: Buffer): void {
    const space = msg.indexOf(0x20);
    if (space < 0) return;
    const cookie = msg.toString("latin1", 0, space);
    const entry = this.pending.get(cookie);
    if (!entry) return;
    this.pending.delete(cookie);
    for (const t of entry.timers) clearTimeout(t);
    let reply: BencodeValue;
    try {
      reply = bdecode(msg.subarray(space + 1));
    } catch (err) {
      entry.reject(err as Error);
      return;
    }
    if (typeof reply !== "object" || Array.isArray(reply)) {
      entry.reject(new Error("NG reply is not a dictionary"));
      return;
    }
    entry.resolve(reply);
  }
}
