import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../sip/logger.js";
import type { RemoteInfo } from "../../sip/embedded/message.js";
import { DEFAULT_SIP_MESSAGE_LIMITS } from "../../sip/embedded/message-limits.js";
import { SipTransport } from "../../sip/embedded/transport.js";

const OPTIONS = "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";

/** RFC 5626 keep-alives of the embedded stack's TCP connections, against a peer on a real socket. */
describe("SIP over TCP keep-alives (RFC 5626)", () => {
  let transport: SipTransport | undefined;
  let peer: net.Socket | undefined;
  afterEach(async () => {
    peer?.destroy();
    peer = undefined;
    await transport?.stop();
    transport = undefined;
  });

  /** Our transport on an ephemeral port, and a peer connected to it that has sent one request. */
  async function connected(o: { keepAliveMs: number; tcpIdleMs: number }): Promise<{ t: SipTransport; peer: net.Socket; remote: RemoteInfo; received: () => string }> {
    let remote: RemoteInfo | undefined;
    const t = new SipTransport(
      { address: "127.0.0.1", port: 0, udp: false, tcp: true, logger: silentLogger, limits: DEFAULT_SIP_MESSAGE_LIMITS, ...o },
      { message: (_raw, r) => (remote = r), unframeable: () => {} },
    );
    transport = t;
    await t.start();
    const socket = net.connect({ host: "127.0.0.1", port: t.port });
    peer = socket;
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (text += d));
    await new Promise<void>((r) => socket.once("connect", () => r()));
    socket.write(OPTIONS);
    await until(() => remote !== undefined);
    return { t, peer: socket, remote: remote!, received: () => text };
  }

  it("answers a double-CRLF ping with one CRLF, and a ping split across segments too", async () => {
    const { peer, received } = await connected({ keepAliveMs: 0, tcpIdleMs: 60_000 });
    peer.write("\r\n\r\n");
    await until(() => received() === "\r\n");
    peer.write("\r\n");
    await new Promise((r) => setTimeout(r, 50));
    peer.write("\r\n");
    await until(() => received() === "\r\n\r\n");
  });

  it("keeps a held connection past the idle timeout and pings it; a peer that never answers is not closed", async () => {
    const { t, peer, remote, received } = await connected({ keepAliveMs: 200, tcpIdleMs: 150 });
    let lost = false;
    const lease = t.lease(remote, () => (lost = true));
    expect(lease).toBeDefined();
    await until(() => received().split("\r\n\r\n").length - 1 >= 3);
    expect(peer.destroyed || lost).toBe(false);
    // Released: nothing holds it any more, and the idle timeout closes it.
    lease!.release();
    const closed = new Promise<void>((r) => peer.once("close", () => r()));
    await closed;
    expect(lost).toBe(false);
  });

  it("closes a connection whose peer answered pings and then stops, telling the holder", async () => {
    const { t, peer, remote, received } = await connected({ keepAliveMs: 200, tcpIdleMs: 60_000 });
    let answering = true;
    let pings = 0;
    peer.on("data", () => {
      const seen = received().split("\r\n\r\n").length - 1;
      for (; pings < seen; pings++) if (answering) peer.write("\r\n");
    });
    let lost = false;
    t.lease(remote, () => (lost = true));
    await until(() => pings >= 3);
    expect(lost).toBe(false);
    answering = false;
    await until(() => lost, 3000);
    await until(() => peer.destroyed || peer.readableEnded, 3000);
  });
});

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
