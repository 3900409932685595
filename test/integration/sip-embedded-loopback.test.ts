import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import { buildAnswer, buildOffer } from "../../sip/sdp.js";
import type { IncomingSipCall, OutgoingSipCall } from "../../sip/signaling.js";

/** Two embedded stacks calling each other: the UAC and UAS halves of the dialog layer together. */

const offerA = (version = 1, video = false): string =>
  buildOffer({ mediaAddress: "127.0.0.2", audioPort: 42000, sessionId: "100", sessionVersion: version, ...(video ? { video: { port: 42002 } } : {}) });
const answerB = (offer: string, version = 1): string => buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 43000, sessionId: "200", sessionVersion: version, video: { port: 43002 } });

function incoming(sig: EmbeddedSipSignaling): Promise<IncomingSipCall> {
  return new Promise((resolve) => sig.once("incoming", resolve));
}
function answered(call: OutgoingSipCall): Promise<string> {
  return new Promise((resolve, reject) => {
    call.once("answered", resolve);
    call.once("failed", (s, r, k) => reject(new Error(`failed ${s} ${r} ${k}`)));
  });
}

describe("embedded SIP: our stack calling itself (127.0.0.2 → localhost)", () => {
  let a: EmbeddedSipSignaling;
  let b: EmbeddedSipSignaling;
  let uri: string;

  beforeAll(async () => {
    a = new EmbeddedSipSignaling({ address: "127.0.0.2", port: 0, transports: ["udp"] });
    b = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, host: "localhost" });
    await a.start();
    await b.start();
    // A hostname Request-URI: resolved through the resolver, and preferring IPv4 like our bind.
    uri = `sip:agent@localhost:${b.port}`;
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("call, re-INVITEs both ways (including simultaneous ones), INFO, hang-up from the callee", async () => {
    const inc = incoming(b);
    const call = a.placeCall({ uri, sdp: offerA(), from: { user: "1000", displayName: "Zoë" } });
    const bCall = await inc;
    expect(bCall.from.displayName).toBe("Zoë");
    bCall.ringing();
    const accepted = bCall.accept(answerB(bCall.remoteSdp ?? ""));
    const answer = await answered(call);
    expect(answer).toContain("c=IN IP4 127.0.0.1");
    expect(await accepted).toBe(true);

    let aVersion = 1;
    call.on("reinvite", (offer, respond) => respond(buildAnswer(offer, { mediaAddress: "127.0.0.2", audioPort: 42000, sessionId: "100", sessionVersion: ++aVersion })));
    let bVersion = 1;
    bCall.on("reinvite", (offer, respond) => respond(answerB(offer, ++bVersion)));

    // B → A
    const fromB = await bCall.reinvite(buildOffer({ mediaAddress: "127.0.0.1", audioPort: 43000, sessionId: "200", sessionVersion: ++bVersion }));
    expect(fromB).toContain("m=audio 42000");
    // A → B with video
    const fromA = await call.reinvite(offerA(++aVersion, true));
    expect(fromA).toContain("m=video 43002");
    // Both at once: one side gets 491 and retries after its back-off.
    const [x, y] = await Promise.all([
      call.reinvite(offerA(++aVersion)),
      bCall.reinvite(buildOffer({ mediaAddress: "127.0.0.1", audioPort: 43000, sessionId: "200", sessionVersion: ++bVersion })),
    ]);
    expect(x).toContain("m=audio 43000");
    expect(y).toContain("m=audio 42000");

    const info = new Promise<[string, string]>((resolve) => bCall.once("info", (ct, body) => resolve([ct, body])));
    expect(await call.sendInfo("application/dtmf-relay", "Signal=#\r\nDuration=100\r\n")).toBe(200);
    expect(await info).toEqual(["application/dtmf-relay", "Signal=#\r\nDuration=100\r\n"]);

    const ended = new Promise<string>((resolve) => call.once("ended", resolve));
    await bCall.hangup();
    expect(await ended).toBe("remote-bye");
    expect(bCall.state).toBe("terminated");
  }, 20_000);

  it("callee rejects with 486 → caller fails 'busy'", async () => {
    const inc = incoming(b);
    const call = a.placeCall({ uri, sdp: offerA() });
    (await inc).reject(486, "Busy Here");
    const failed = await new Promise<unknown[]>((resolve) => call.once("failed", (...args) => resolve(args)));
    expect(failed).toEqual([486, "Busy Here", "busy"]);
  });

  it("caller cancels while the callee rings", async () => {
    const inc = incoming(b);
    const call = a.placeCall({ uri, sdp: offerA() });
    const bCall = await inc;
    const provisional = new Promise<void>((resolve) => call.once("provisional", () => resolve()));
    bCall.ringing();
    await provisional;
    const cancelled = new Promise<void>((resolve) => bCall.once("cancel", resolve));
    const failed = new Promise<unknown[]>((resolve) => call.once("failed", (...args) => resolve(args)));
    await call.cancel();
    await cancelled;
    expect(await failed).toEqual([487, "Request Terminated", "cancelled"]);
  });

  it("cancel() before any provisional waits for one, then CANCELs", async () => {
    const inc = incoming(b);
    const call = a.placeCall({ uri, sdp: offerA() });
    const bCall = await inc; // B has sent 100 Trying only
    const failed = new Promise<unknown[]>((resolve) => call.once("failed", (...args) => resolve(args)));
    const cancelled = new Promise<void>((resolve) => bCall.once("cancel", resolve));
    void call.cancel();
    bCall.ringing();
    await cancelled;
    expect((await failed)[2]).toBe("cancelled");
  });

  it("stopping a stack ends its live calls with BYE", async () => {
    const c = new EmbeddedSipSignaling({ address: "127.0.0.3", port: 0 });
    await c.start();
    const inc = incoming(b);
    const call = c.placeCall({ uri, sdp: offerA() });
    const bCall = await inc;
    void bCall.accept(answerB(bCall.remoteSdp ?? ""));
    await answered(call);
    const remoteEnded = new Promise<string>((resolve) => bCall.once("ended", resolve));
    const localEnded = new Promise<string>((resolve) => call.once("ended", resolve));
    await c.stop();
    expect(await localEnded).toBe("stopped");
    expect(await remoteEnded).toBe("remote-bye");
    expect(c.activeCalls).toBe(0);
  });

  it("leaves no calls behind", () => {
    expect(a.activeCalls).toBe(0);
    expect(b.activeCalls).toBe(0);
  });
});
