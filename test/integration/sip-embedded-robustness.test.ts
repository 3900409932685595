import dgram from "node:dgram";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import { buildAnswer, buildOffer } from "../../sip/sdp.js";
import { SipTransportError } from "../../sip/errors.js";
import type { SipLogger } from "../../sip/logger.js";

/** Malformed input, port clashes and shutdown: the stack logs and carries on, never crashes. */

const warnings: string[] = [];
const logger: SipLogger = {
  debug() {},
  info() {},
  warn(_o, msg) {
    warnings.push(msg ?? "");
  },
  error(_o, msg) {
    warnings.push(`error: ${msg ?? ""}`);
  },
};

function udpExchange(port: number, payload: string, waitMs = 300): Promise<string[]> {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    const got: string[] = [];
    s.on("message", (m) => got.push(m.toString("latin1")));
    s.bind(0, "127.0.0.1", () => {
      s.send(Buffer.from(payload, "latin1"), port, "127.0.0.1");
      setTimeout(() => s.close(() => resolve(got)), waitMs);
    });
  });
}

function request(method: string, port: number, extra: { cseqMethod?: string; toTag?: string; via?: boolean } = {}): string {
  const lines = [
    `${method} sip:gw@127.0.0.1:${port} SIP/2.0`,
    ...(extra.via === false ? [] : ["Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-" + Math.random().toString(36).slice(2)]),
    "From: <sip:x@127.0.0.1>;tag=abc",
    `To: <sip:gw@127.0.0.1>${extra.toTag ? `;tag=${extra.toTag}` : ""}`,
    `Call-ID: ${Math.random().toString(36).slice(2)}@test`,
    `CSeq: 1 ${extra.cseqMethod ?? method}`,
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ];
  return lines.join("\r\n");
}

describe("embedded SIP: robustness", () => {
  let sig: EmbeddedSipSignaling;
  let peer: EmbeddedSipSignaling;

  beforeAll(async () => {
    sig = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, logger });
    peer = new EmbeddedSipSignaling({ address: "127.0.0.4", port: 0 });
    await sig.start();
    await peer.start();
  });
  afterAll(async () => {
    await sig?.stop();
    await peer?.stop();
  });

  it("drops garbage and malformed UDP messages and keeps answering", async () => {
    const garbage = [
      "\x00\x01\x02 not sip at all",
      "INVITE\r\n\r\n",
      "SIP/2.0 200\r\n\r\n",
      request("OPTIONS", sig.port, { via: false }),
      "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: ???\r\nCSeq: x\r\n\r\n",
      "INVITE sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\nContact: <not a uri\r\nContent-Length: 99999\r\n\r\nv=0",
      "\r\n\r\n",
    ];
    for (const g of garbage) expect(await udpExchange(sig.port, g, 50)).toBeDefined();
    expect(await peer.options(`sip:gw@127.0.0.1:${sig.port}`)).toBe(200);
    expect(warnings.some((w) => w.includes("malformed"))).toBe(true);
  });

  it("answers what it cannot serve: 400, 481, 405", async () => {
    const mismatch = await udpExchange(sig.port, request("OPTIONS", sig.port, { cseqMethod: "INVITE" }));
    expect(mismatch[0]).toMatch(/^SIP\/2\.0 400 /);
    const bye = await udpExchange(sig.port, request("BYE", sig.port));
    expect(bye[0]).toMatch(/^SIP\/2\.0 481 /);
    const inDialog = await udpExchange(sig.port, request("INFO", sig.port, { toTag: "nope" }));
    expect(inDialog[0]).toMatch(/^SIP\/2\.0 481 /);
    const subscribe = await udpExchange(sig.port, request("SUBSCRIBE", sig.port));
    expect(subscribe[0]).toMatch(/^SIP\/2\.0 405 /);
    expect(subscribe[0]).toContain("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO");
  });

  it("closes a TCP connection it cannot frame, and keeps serving TCP", async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const c = net.connect(sig.port, "127.0.0.1", () => c.write("OPTIONS sip:gw SIP/2.0\r\nVia: x\r\nContent-Length: banana\r\n\r\n"));
      c.on("error", () => {});
      c.on("close", () => resolve(true));
      setTimeout(() => resolve(false), 2000);
    });
    expect(closed).toBe(true);
    expect(await peer.options(`sip:gw@127.0.0.1:${sig.port};transport=tcp`)).toBe(200);
  });

  it("rejects start() on a port in use with SipTransportError instead of crashing", async () => {
    const clash = new EmbeddedSipSignaling({ address: "127.0.0.1", port: sig.port });
    await expect(clash.start()).rejects.toBeInstanceOf(SipTransportError);
    await clash.stop();
  });

  it("refuses bad input from our own side with a typed error", () => {
    expect(() => sig.placeCall({ uri: "not-a-uri", sdp: "v=0" })).toThrow(/invalid SIP URI/);
    expect(() => sig.placeCall({ uri: "sip:a@127.0.0.1", sdp: "v=0", headers: { "X-Evil": "a\r\nVia: x" } })).toThrow(/invalid value/);
    expect(() => sig.placeCall({ uri: "sip:a@127.0.0.1", sdp: "v=0", headers: { Via: "x" } })).toThrow(/set by the stack/);
    expect(() => sig.placeCall({ uri: "sip:a@127.0.0.1", sdp: "v=0", from: { user: "a b" } })).toThrow(/user part/);
  });

  it("stop() frees its UDP and TCP ports", async () => {
    const s = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0 });
    await s.start();
    const port = s.port;
    // An outgoing TCP connection is open too (an OPTIONS over TCP to the peer).
    expect(await s.options(`sip:x@127.0.0.4:${peer.port};transport=tcp`)).toBe(200);
    await s.stop();
    const again = new EmbeddedSipSignaling({ address: "127.0.0.1", port });
    await again.start();
    expect(again.port).toBe(port);
    await again.stop();
  });

  it("after calls over UDP and TCP, stop() leaves no socket or timer behind", async () => {
    const kinds = ["UDPWrap", "TCPWrap", "TCPSocketWrap", "TCPServerWrap", "Timeout"];
    const count = (): Record<string, number> => Object.fromEntries(kinds.map((k) => [k, process.getActiveResourcesInfo().filter((r) => r === k).length]));
    const before = count();
    const x = new EmbeddedSipSignaling({ address: "127.0.0.5", port: 0 });
    const y = new EmbeddedSipSignaling({ address: "127.0.0.6", port: 0 });
    await x.start();
    await y.start();
    y.on("incoming", (c) => {
      c.ringing();
      void c.accept(buildAnswer(c.remoteSdp ?? "", { mediaAddress: "127.0.0.6", audioPort: 5000 }));
    });
    for (const t of ["udp", "tcp"]) {
      const call = x.placeCall({ uri: `sip:y@127.0.0.6:${y.port};transport=${t}`, sdp: buildOffer({ mediaAddress: "127.0.0.5", audioPort: 6000 }) });
      await new Promise((r) => call.once("answered", r));
      await call.reinvite(buildOffer({ mediaAddress: "127.0.0.5", audioPort: 6000, sessionVersion: 2 }));
      await call.hangup();
    }
    await x.stop();
    await y.stop();
    await new Promise((r) => setTimeout(r, 50));
    const after = count();
    for (const k of kinds) expect(after[k], k).toBeLessThanOrEqual(before[k] ?? 0);
  });

  describe("message bounds", () => {
    let small: EmbeddedSipSignaling;
    const refused: { limit?: unknown; status?: unknown }[] = [];
    const boundLogger: SipLogger = {
      ...logger,
      warn(o, msg) {
        if (msg === "SIP message over a limit refused") refused.push(o as { limit?: unknown; status?: unknown });
      },
    };
    beforeAll(async () => {
      small = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, logger: boundLogger, limits: { maxMessageBytes: 4096, maxHeaders: 20, maxHeaderBytes: 1024 } });
      await small.start();
    });
    afterAll(async () => {
      await small?.stop();
    });

    const withExtras = (method: string, port: number, extra: string[], body = ""): string =>
      request(method, port).replace("Content-Length: 0\r\n\r\n", `${extra.map((h) => `${h}\r\n`).join("")}Content-Length: ${body.length}\r\n\r\n${body}`);

    it("answers 513 to a UDP request over the size bound and 400 to one with too many headers, naming the bound", async () => {
      const big = await udpExchange(small.port, withExtras("INVITE", small.port, [], "v=0\r\n" + "a=x\r\n".repeat(1000)));
      expect(big[0]).toMatch(/^SIP\/2\.0 513 Message Too Large\r\n/);
      expect(big[0]).toMatch(/\r\nVia: SIP\/2\.0\/UDP 127\.0\.0\.1:9;branch=z9hG4bK-/);
      const many = await udpExchange(small.port, withExtras("OPTIONS", small.port, Array.from({ length: 30 }, (_, i) => `X-H${i}: v`)));
      expect(many[0]).toMatch(/^SIP\/2\.0 400 Too Many Headers\r\n/);
      const long = await udpExchange(small.port, withExtras("OPTIONS", small.port, [`X-Long: ${"a".repeat(2000)}`]));
      expect(long[0]).toMatch(/^SIP\/2\.0 513 Header Too Large\r\n/);
      expect(refused.map((r) => r.limit)).toEqual(expect.arrayContaining(["SIP_MAX_MESSAGE_BYTES", "SIP_MAX_HEADERS", "SIP_MAX_HEADER_BYTES"]));
      // An over-size ACK or response gets no answer.
      expect(await udpExchange(small.port, withExtras("ACK", small.port, [], "x".repeat(5000)))).toEqual([]);
      expect(await peer.options(`sip:gw@127.0.0.1:${small.port}`)).toBe(200);
    });

    it("answers 513 to a TCP request declaring a 10^9-byte body, then closes without waiting for it", async () => {
      const got = await new Promise<{ data: string; closed: boolean }>((resolve) => {
        let data = "";
        const c = net.connect(small.port, "127.0.0.1", () => {
          c.write(withExtras("INVITE", small.port, []).replace("Content-Length: 0", "Content-Length: 1000000000").replace("SIP/2.0/UDP", "SIP/2.0/TCP"));
          // Keep sending, as an attacker would: the connection must still go.
          const pump = setInterval(() => c.writable && c.write("x".repeat(16_384)), 5);
          c.on("close", () => clearInterval(pump));
        });
        c.setEncoding("latin1");
        c.on("data", (d: string) => (data += d));
        c.on("error", () => {});
        c.on("close", () => resolve({ data, closed: true }));
        setTimeout(() => resolve({ data, closed: false }), 4000);
      });
      expect(got.data).toMatch(/^SIP\/2\.0 513 Message Too Large\r\n/);
      expect(got.closed).toBe(true);
    });

    it("closes a TCP stream of endless headers once it passes the bound", async () => {
      let sent = 0;
      const closed = await new Promise<boolean>((resolve) => {
        const c = net.connect(small.port, "127.0.0.1", () => {
          c.write("OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\n");
          const pump = setInterval(() => {
            if (!c.writable) return;
            c.write("X-Again: and again and again\r\n".repeat(50));
            sent += 1500;
          }, 5);
          c.on("close", () => clearInterval(pump));
        });
        c.on("error", () => {});
        c.on("close", () => resolve(true));
        setTimeout(() => resolve(false), 4000);
      });
      expect(closed).toBe(true);
      expect(sent).toBeLessThan(200_000);
      expect(await peer.options(`sip:gw@127.0.0.1:${small.port};transport=tcp`)).toBe(200);
    });

    it("is not stalled by datagrams that make npm sip's parser backtrack", async () => {
      const s = dgram.createSocket("udp4");
      await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
      const flood = Buffer.from(" ".repeat(60_000), "latin1");
      // The stack runs in this process: a stall shows as time from the flood to the answer.
      const started = Date.now();
      for (let i = 0; i < 10; i++) s.send(flood, sig.port, "127.0.0.1");
      expect(await peer.options(`sip:gw@127.0.0.1:${sig.port}`)).toBe(200);
      expect(Date.now() - started).toBeLessThan(500);
      await new Promise<void>((r) => s.close(() => r()));
    });
  });
});
