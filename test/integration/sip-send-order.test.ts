import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../sip/logger.js";
import { SipStack, type OutgoingRequest } from "../../sip/embedded/stack.js";
import { TestDnsServer } from "../support/dns-server.js";

/**
 * A dialog's requests leave in the order the dialog layer sent them, even when the next hop's
 * lookup for the first answers last: an ACK overtaken by the next re-INVITE makes the peer
 * refuse that re-INVITE (RFC 3261 §14.2).
 */
describe("embedded SIP stack: send order within a call", () => {
  let dns: TestDnsServer;
  let peer: dgram.Socket;
  let stack: SipStack;
  const seen: string[] = [];

  beforeAll(async () => {
    peer = dgram.createSocket("udp4");
    peer.on("message", (msg) => seen.push(msg.toString("latin1").split("\r\n")[0]!));
    await new Promise<void>((resolve) => peer.bind(0, "127.0.0.1", () => resolve()));
    dns = await TestDnsServer.start({ a: { "pbx.test": ["127.0.0.1"] }, aaaa: {}, slowFirstMs: { "pbx.test": 300 } });
    stack = new SipStack(
      { address: "127.0.0.1", port: 0, udp: true, tcp: false, dnsServers: [dns.address], userAgent: "order-test", logger: silentLogger },
      () => {},
      () => {},
    );
    await stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
    await dns?.close();
    peer?.close();
  });

  const request = (method: string, callId: string, seq: number): OutgoingRequest => ({
    method,
    uri: `sip:agent@pbx.test:${peer.address().port}`,
    headers: {
      from: "<sip:gw@127.0.0.1>;tag=a1",
      to: "<sip:agent@pbx.test>;tag=b1",
      "call-id": callId,
      cseq: { seq, method: method === "ACK" ? "INVITE" : method },
      "content-length": 0,
    },
  });

  it("sends a call's ACK before its next request although the ACK's lookup answered last", async () => {
    stack.sendAck(request("ACK", "order-1", 1));
    stack.sendRequest(request("INVITE", "order-1", 2), () => {});
    // Another call's request is not held behind the slow lookup of this one's.
    stack.sendRequest(request("OPTIONS", "order-2", 1), () => {});
    const deadline = Date.now() + 5_000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(seen.map((line) => line.split(" ")[0])).toEqual(["OPTIONS", "ACK", "INVITE"]);
    // The slow answers were the first of their kind: the later lookups were not answered from a cache.
    expect(dns.count("pbx.test", "A")).toBeGreaterThanOrEqual(2);
  });
});
