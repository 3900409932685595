import { afterAll, afterEach, beforeAll, beforeEach, describe as suite, expect, it } from "vitest";
import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import { buildAnswer, readRemoteMedia } from "../../sip/sdp.js";
import type { IncomingSipCall } from "../../sip/signaling.js";
import { describe, finish, freePort, killAllSipp, requireSipp, startSipp } from "../support/sipp.js";

function nextIncoming(sig: EmbeddedSipSignaling): Promise<IncomingSipCall> {
  return new Promise((resolve) => sig.once("incoming", resolve));
}

suite("embedded SIP: calls the PBX places to us, with SIPp as the PBX", () => {
  let sig: EmbeddedSipSignaling;

  beforeEach(() => requireSipp());
  beforeAll(async () => {
    // A short T1 keeps the no-ACK case (64·T1) quick; retransmissions still start at T1.
    sig = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, timers: { t1Ms: 100 } });
    await sig.start();
  });
  afterEach(async () => {
    await killAllSipp();
  });
  afterAll(async () => {
    await sig?.stop();
  });

  it("rings, answers with the PBX's preferred codec, retransmits the 200 until the late ACK, takes the BYE", async () => {
    const port = await freePort();
    const incoming = nextIncoming(sig);
    const sipp = startSipp({ scenario: "uac-call.xml", port, remote: `127.0.0.1:${sig.port}`, service: "4410" });
    const call = await incoming;
    expect(call.from.displayName).toBe("Agent Åsa");
    expect(call.from.user).toBe("agent42");
    expect(call.to.user).toBe("4410");
    expect(call.header("X-Consumer")).toBe("1234567");
    expect(call.state).toBe("offered");
    const offer = call.remoteSdp ?? "";
    expect(readRemoteMedia(offer).audio.codec).toBe("PCMA");
    call.ringing();
    expect(call.state).toBe("early");
    const ended = new Promise<string>((resolve) => call.once("ended", resolve));
    const acked = await call.accept(buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 41000, sessionId: "7" }));
    expect(acked).toBe(true);
    expect(call.state).toBe("confirmed");
    expect(await ended).toBe("remote-bye");
    const r = await finish(sipp);
    expect(r.code, describe(r)).toBe(0);
    const okCount = r.messages.split("\n").filter((l) => l.startsWith("SIP/2.0 200 OK")).length;
    // Received 200s to the INVITE (first + retransmissions while the ACK was held) plus the BYE's.
    expect(okCount).toBeGreaterThanOrEqual(3);
  });

  it("a CANCEL while ringing is answered 200 + 487 and reported", async () => {
    const port = await freePort();
    const incoming = nextIncoming(sig);
    const sipp = startSipp({ scenario: "uac-cancel.xml", port, remote: `127.0.0.1:${sig.port}`, service: "4410" });
    const call = await incoming;
    const cancelled = new Promise<void>((resolve) => call.once("cancel", resolve));
    call.ringing();
    await cancelled;
    expect(call.state).toBe("terminated");
    const r = await finish(sipp);
    expect(r.code, describe(r)).toBe(0);
  });

  it("no ACK for our 200: retransmissions give up after 64·T1 and the call is ended with BYE", async () => {
    const port = await freePort();
    const incoming = nextIncoming(sig);
    const sipp = startSipp({ scenario: "uac-no-ack.xml", port, remote: `127.0.0.1:${sig.port}`, service: "4410" });
    const call = await incoming;
    const ended = new Promise<string>((resolve) => call.once("ended", resolve));
    const acked = await call.accept(buildAnswer(call.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 }));
    expect(acked).toBe(false);
    expect(await ended).toBe("ack-timeout");
    const r = await finish(sipp);
    expect(r.code, describe(r)).toBe(0);
  });

  it("leaves no calls behind", () => {
    expect(sig.activeCalls).toBe(0);
  });
});
