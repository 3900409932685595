import dgram from "node:dgram";

/** Records a test zone serves: SRV by owner name, A by name. */
export interface TestZone {
  srv?: Record<string, { priority: number; weight: number; port: number; target: string }[]>;
  a?: Record<string, string[]>;
  /** Names answered SERVFAIL (a broken upstream). */
  servfail?: string[];
}

const TYPE_A = 1;
const TYPE_SRV = 33;

/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP) for one test zone: SRV and A answers,
 * NODATA for other types of a known name, NXDOMAIN for unknown names, SERVFAIL where told.
 * Counts the queries it saw.
 */
export class TestDnsServer {
  readonly queries: { name: string; type: number }[] = [];

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly zone: TestZone,
  ) {
    socket.on("message", (msg, rinfo) => {
      const reply = this.answer(msg);
      if (reply) socket.send(reply, rinfo.port, rinfo.address);
    });
  }

  static async start(zone: TestZone): Promise<TestDnsServer> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => resolve());
    });
    return new TestDnsServer(socket, zone);
  }

  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private answer(msg: Buffer): Buffer | undefined {
    if (msg.length < 12) return undefined;
    let offset = 12;
    const labels: string[] = [];
    while (offset < msg.length && msg[offset] !== 0) {
      const len = msg[offset]!;
      labels.push(msg.subarray(offset + 1, offset + 1 + len).toString("ascii"));
      offset += 1 + len;
    }
    offset += 1;
    const type = msg.readUInt16BE(offset);
    const questionEnd = offset + 4;
    const name = labels.join(".").toLowerCase();
    this.queries.push({ name, type });
    const srv = this.zone.srv?.[name];
    const a = this.zone.a?.[name];
    const answers: Buffer[] = [];
    if (type === TYPE_SRV && srv) {
      for (const r of srv) {
        const target = encodeName(r.target);
        const rdata = Buffer.alloc(6 + target.length);
        rdata.writeUInt16BE(r.priority, 0);
        rdata.writeUInt16BE(r.weight, 2);
        rdata.writeUInt16BE(r.port, 4);
        target.copy(rdata, 6);
        answers.push(record(TYPE_SRV, rdata));
      }
    } else if (type === TYPE_A && a) {
      for (const ip of a) answers.push(record(TYPE_A, Buffer.from(ip.split(".").map(Number))));
    }
    const known = srv !== undefined || a !== undefined;
    const rcode = this.zone.servfail?.includes(name) ? 2 : known ? 0 : 3;
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2);
    // QR, AA, RD (copied), RA; NXDOMAIN for a name we do not have at all.
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(rcode === 0 ? answers.length : 0, 6);
    return Buffer.concat([header, msg.subarray(12, questionEnd), ...(rcode === 0 ? answers : [])]);
  }
}

function encodeName(name: string): Buffer {
  const parts = name.split(".").filter((p) => p !== "");
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, "ascii")])), Buffer.from([0])]);
}

function record(type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0); // the question's name
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt32BE(60, 6);
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}
