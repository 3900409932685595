import type { EventEmitter } from "node:events";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import { SipCallStateError, SipRequestError } from "../../sip/errors.js";
import { buildAnswer, buildOffer } from "../../sip/sdp.js";
import type { IncomingSipCall, OutgoingSipCall, SipSignaling } from "../../sip/signaling.js";
import { RemoteSipSignaling } from "../../gateway/workers/remote-sip.js";
import { SipBridge } from "../../gateway/workers/sip-bridge.js";
import type { SipDownMessage, SipUpMessage } from "../../gateway/workers/sip-protocol.js";

const OFFER = buildOffer({ mediaAddress: "127.0.0.1", audioPort: 40000, sessionId: "1" });
const ANSWER = buildAnswer(OFFER, { mediaAddress: "127.0.0.1", audioPort: 40100, sessionId: "2" });

function next<T extends unknown[]>(emitter: object, event: string): Promise<T> {
  return new Promise((resolve) => (emitter as EventEmitter).once(event, (...args: unknown[]) => resolve(args as T)));
}

/**
 * The SIP port between threads, over a real MessageChannel: the owner's embedded stack and its
 * bridge on one side, a RemoteSipSignaling on the other, and a second embedded stack playing the
 * PBX over real UDP. What the remote side sees must be what the stack itself would show.
 */
describe("SIP port between the owner thread and a media worker", () => {
  let owner: EmbeddedSipSignaling;
  let pbx: EmbeddedSipSignaling;
  let bridge: SipBridge;
  let remote: RemoteSipSignaling;
  let ports: MessagePort[];
  let pick = 0;

  beforeAll(async () => {
    owner = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0 });
    pbx = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0 });
    await owner.start();
    await pbx.start();
    const channel = new MessageChannel();
    ports = [channel.port1, channel.port2];
    bridge = new SipBridge({ signaling: owner, log: pino({ level: "silent" }), pickWorker: () => pick, headers: ["X-Meta-Page-Id", "From"] });
    bridge.attach(0, { postMessage: (m: SipDownMessage) => channel.port1.postMessage(m) });
    channel.port1.on("message", (m: SipUpMessage) => bridge.receive(0, m));
    remote = new RemoteSipSignaling({ postMessage: (m) => channel.port2.postMessage(m) });
    channel.port2.on("message", (m: SipDownMessage) => remote.receive(m));
    bridge.announceReadiness();
    await next(remote, "readiness");
  });

  afterAll(async () => {
    for (const p of ports ?? []) p.close();
    await owner?.stop();
    await pbx?.stop();
  });

  const pbxUri = (): string => `sip:agent@127.0.0.1:${pbx.localAddress!.port}`;
  const ownerUri = (): string => `sip:gw@127.0.0.1:${owner.localAddress!.port}`;

  it("reports the owner's readiness and address", () => {
    expect(remote.ready).toBe(true);
    expect(remote.localAddress).toEqual(owner.localAddress);
  });

  it("a call placed from the worker: its Call-ID known at once, answered, re-INVITE and INFO both ways, BYE", async () => {
    const incoming = next<[IncomingSipCall]>(pbx, "incoming");
    const call: OutgoingSipCall = remote.placeCall({ uri: pbxUri(), sdp: OFFER, callId: "meta-1", headers: { "X-Meta-Call-Id": "meta-1" } });
    const chosen = call.sipCallId;
    expect(chosen).toMatch(/^[0-9a-f-]{36}$/);
    expect(call.callId).toBe("meta-1");
    const [atPbx] = await incoming;
    expect(atPbx.sipCallId).toBe(chosen);
    expect(atPbx.header("X-Meta-Call-Id")).toBe("meta-1");
    const answered = next<[string]>(call, "answered");
    expect(await atPbx.accept(ANSWER)).toBe(true);
    expect((await answered)[0]).toBe(ANSWER);
    expect(call.remoteSdp).toBe(ANSWER);
    expect(call.dialogId?.callId).toBe(chosen);
    expect(bridge.workerOfSipCall(chosen)).toBe(0);

    // The PBX re-INVITEs: the worker answers through its responder.
    const reinvite = next<[string, (a: string) => void]>(call, "reinvite");
    const pbxReinvite = atPbx.reinvite(OFFER.replace("s=-", "s=re"));
    const [offer, respond] = await reinvite;
    expect(offer).toContain("s=re");
    respond(ANSWER);
    expect(await pbxReinvite).toBe(ANSWER);

    // INFO both ways.
    const info = next<[string, string]>(call, "info");
    await atPbx.sendInfo("application/dtmf-relay", "Signal=5\r\nDuration=100\r\n");
    expect((await info)[1]).toContain("Signal=5");
    const pbxInfo = next<[string, string]>(atPbx, "info");
    expect(await call.sendInfo("application/dtmf-relay", "Signal=7\r\nDuration=100\r\n")).toBe(200);
    expect((await pbxInfo)[1]).toContain("Signal=7");

    const ended = next<[string]>(call, "ended");
    const pbxEnded = next<[string]>(atPbx, "ended");
    await call.hangup();
    expect((await ended)[0]).toBe("local-bye");
    expect((await pbxEnded)[0]).toBe("remote-bye");
    await expect.poll(() => bridge.callsOf(0)).toBe(0);
  });

  it("an INVITE from the PBX reaches the worker with its parties and headers; ringing, accept, BYE from the PBX", async () => {
    const incoming = next<[IncomingSipCall]>(remote, "incoming");
    const out = pbx.placeCall({ uri: ownerUri(), sdp: OFFER, from: { user: "1001", displayName: "Agent" }, headers: { "X-Meta-Page-Id": "4242", "X-Other": "not carried" } });
    const [call] = await incoming;
    expect(call.sipCallId).toBe(out.sipCallId);
    expect(call.from.user).toBe("1001");
    expect(call.from.displayName).toBe("Agent");
    expect(call.header("x-meta-page-id")).toBe("4242");
    expect(call.header("X-Other")).toBeUndefined();
    expect(call.source.address).toBe("127.0.0.1");
    expect(call.state).toBe("offered");

    const ringing = next<[number]>(out, "provisional");
    call.ringing();
    expect((await ringing)[0]).toBe(180);
    const answered = next<[string]>(out, "answered");
    expect(await call.accept(ANSWER)).toBe(true);
    expect((await answered)[0]).toBe(ANSWER);
    const ended = next<[string]>(call, "ended");
    await out.hangup();
    expect((await ended)[0]).toBe("remote-bye");
  });

  it("errors cross as the same classes: a re-INVITE before the answer, an INFO after the end, a re-INVITE the PBX refuses", async () => {
    const incoming = next<[IncomingSipCall]>(pbx, "incoming");
    const call = remote.placeCall({ uri: pbxUri(), sdp: OFFER });
    const [atPbx] = await incoming;
    const early = await call.reinvite(OFFER).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(SipCallStateError);
    expect((early as SipCallStateError).sipCallId).toBe(call.sipCallId);
    await atPbx.accept(ANSWER);
    await expect.poll(() => call.state).toBe("confirmed");
    const failed = next<[number]>(call, "ended");
    await call.hangup();
    await failed;
    const late = await call.sendInfo("text/plain", "x").catch((e: unknown) => e);
    expect(late).toBeInstanceOf(SipCallStateError);
    // A refusal from the PBX crosses with its status.
    const refused = remote.placeCall({ uri: pbxUri(), sdp: OFFER });
    const [atPbx2] = await next<[IncomingSipCall]>(pbx, "incoming");
    atPbx2.on("reinvite", (_offer, respond) => respond({ status: 488, reason: "Not Acceptable Here" }));
    await atPbx2.accept(ANSWER);
    await expect.poll(() => refused.state).toBe("confirmed");
    const err = await refused.reinvite(OFFER).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SipRequestError);
    expect((err as SipRequestError).status).toBe(488);
    expect((err as SipRequestError).method).toBe("INVITE");
    await refused.hangup();
  });

  it("a call the stack refuses outright fails on the worker instead of throwing there", async () => {
    const call = remote.placeCall({ uri: "not a sip uri", sdp: OFFER });
    const [status, , kind] = await next<[number, string, string]>(call, "failed");
    expect(status).toBe(500);
    expect(kind).toBe("failed");
  });

  it("an INVITE the worker refuses is answered with its status, and the owner lets the call go", async () => {
    const incoming = next<[IncomingSipCall]>(remote, "incoming");
    const out = pbx.placeCall({ uri: ownerUri(), sdp: OFFER });
    const [call] = await incoming;
    expect(bridge.callsOf(0)).toBe(1);
    const failed = next<[number]>(out, "failed");
    call.reject(486, "Busy Here");
    expect((await failed)[0]).toBe(486);
    await expect.poll(() => bridge.callsOf(0), { timeout: 8000 }).toBe(0);
  });

  it("an INVITE for a worker that is not there is refused 503", async () => {
    pick = 3;
    try {
      const out = pbx.placeCall({ uri: ownerUri(), sdp: OFFER });
      const [status] = await next<[number]>(out, "failed");
      expect(status).toBe(503);
    } finally {
      pick = 0;
    }
  });

  it("keeps the SipSignaling shape: options() answers through the owner's stack", async () => {
    const sig: SipSignaling = remote;
    expect(await sig.options(pbxUri())).toBe(200);
  });
});
