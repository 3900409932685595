import { createHash } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildAnswer, buildOffer, readRemoteMedia } from "../../sip/sdp.js";
import type { IncomingSipCall, OutgoingSipCall, OutgoingSipCallEvents, SipFailureKind } from "../../sip/signaling.js";
import { describe as describeSipp, finish, freePort, killAllSipp, requireSipp, startSipp, type SippOptions, type SippProcess } from "../support/sipp.js";
import { announceSkips, BACKENDS, suiteTitle, type BackendRig } from "./backends.js";

/**
 * The SipSignaling contract, the same scenarios against every backend: SIPp plays the PBX (or the
 * agent's phone) and checks what reaches the wire; the port's events and results are checked here.
 */

const OFFER = buildOffer({ mediaAddress: "127.0.0.1", audioPort: 40000, sessionId: "1" });

function next<K extends keyof OutgoingSipCallEvents>(call: OutgoingSipCall, event: K): Promise<OutgoingSipCallEvents[K]> {
  return new Promise((resolve) => {
    const handler = (...args: OutgoingSipCallEvents[K]): void => resolve(args);
    (call.once as (e: K, f: (...a: OutgoingSipCallEvents[K]) => void) => OutgoingSipCall)(event, handler);
  });
}

/** Resolves with the answer SDP, or throws with the failure: a test never hangs on a refused call. */
function answered(call: OutgoingSipCall): Promise<string> {
  return new Promise((resolve, reject) => {
    call.once("answered", resolve);
    call.once("failed", (status, reason, kind) => reject(new Error(`call failed: ${status} ${reason} (${kind})`)));
  });
}

announceSkips();

for (const backend of BACKENDS) {
  describe.skipIf(backend.skipReason !== undefined)(suiteTitle("SIP signalling contract", backend), () => {
    let rig: BackendRig;

    beforeAll(async () => {
      rig = await backend.start();
    });
    afterAll(async () => {
      await rig?.stop();
    });
    beforeEach(({ onTestFailed }) => {
      requireSipp();
      // What drachtio-server saw is the first thing to read when its half fails.
      onTestFailed(() => {
        if (rig?.server) process.stdout.write(`--- drachtio-server log (tail) ---\n${rig.server.log().slice(-12_000)}\n`);
      });
    });
    afterEach(async () => {
      await killAllSipp();
    });

    async function pbx(scenario: string, extra: Partial<SippOptions> = {}): Promise<{ port: number; sipp: SippProcess }> {
      const port = await freePort();
      const sipp = startSipp({ scenario, port, ...extra });
      await sipp.ready;
      return { port, sipp };
    }

    async function expectSippOk(sipp: SippProcess): Promise<string> {
      const r = await finish(sipp);
      expect(r.code, describeSipp(r)).toBe(0);
      return r.logs;
    }

    it("is ready and reports where SIP reaches it", () => {
      expect(rig.sig.ready).toBe(true);
      expect(rig.sig.localAddress?.port).toBeGreaterThan(0);
    });

    describe("calls we place (SIPp as the PBX)", () => {
      for (const transport of ["udp", "tcp"] as const) {
        it(`answered, BYE from us; Max-Forwards, User-Agent, X- headers and a UTF-8 name on the INVITE (${transport})`, async () => {
          const { port, sipp } = await pbx("uas-answer.xml", { transport: transport === "tcp" ? "t1" : "u1" });
          const call = rig.sig.placeCall({
            uri: `sip:agent@127.0.0.1:${port}${transport === "tcp" ? ";transport=tcp" : ""}`,
            sdp: OFFER,
            from: { user: "9876543210", displayName: "Zoë Ünïcødé" },
            headers: { "X-Meta-PSID": "9876543210", "X-Meta-Call-Id": "wacid.abc" },
            callId: "gw-call-1",
          });
          const states: string[] = [];
          call.on("state", (s) => states.push(s));
          const provisional = next(call, "provisional");
          const answer = await answered(call);
          expect((await provisional)[0]).toBe(180);
          expect(readRemoteMedia(answer).audio.codec).toBe("PCMA");
          expect(call.state).toBe("confirmed");
          expect(call.callId).toBe("gw-call-1");
          expect(call.remoteSdp).toBe(answer);
          const ended = next(call, "ended");
          await call.hangup();
          expect((await ended)[0]).toBe("local-bye");
          expect(states.slice(-3)).toEqual(["confirmed", "terminating", "terminated"]);
          expect(states).toContain("early");
          await expectSippOk(sipp);
        });
      }

      it("ACK and BYE follow the Record-Route set (reversed, loose routing) to the Contact", async () => {
        const { port, sipp } = await pbx("uas-record-route.xml");
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
        await answered(call);
        await call.hangup();
        await expectSippOk(sipp);
      });

      it("BYE from the PBX ends the call", async () => {
        const { port, sipp } = await pbx("uas-bye-from-pbx.xml");
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
        await answered(call);
        const [reason] = await next(call, "ended");
        expect(reason).toBe("remote-bye");
        expect(call.state).toBe("terminated");
        await expectSippOk(sipp);
      });

      const rejections: [number, string, SipFailureKind][] = [
        [486, "Busy Here", "busy"],
        [603, "Decline", "declined"],
        [480, "Temporarily Unavailable", "no-answer"],
        [404, "Not Found", "unreachable"],
      ];
      for (const [status, reason, kind] of rejections) {
        it(`${status} ${reason} → failed '${kind}'`, async () => {
          const { port, sipp } = await pbx("uas-reject.xml", { vars: { status: String(status), reason } });
          const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
          const [gotStatus, gotReason, gotKind] = await next(call, "failed");
          expect([gotStatus, gotReason, gotKind]).toEqual([status, reason, kind]);
          await expectSippOk(sipp);
        });
      }

      it("CANCEL while ringing → 487 → failed 'cancelled'", async () => {
        const { port, sipp } = await pbx("uas-cancel.xml");
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
        await next(call, "provisional");
        const failed = next(call, "failed");
        await call.cancel();
        expect(await failed).toEqual([487, "Request Terminated", "cancelled"]);
        await expectSippOk(sipp);
      });

      it("no answer within the ring time: CANCEL, failed 'no-answer'", async () => {
        const { port, sipp } = await pbx("uas-cancel.xml");
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER, timeoutMs: 400 });
        const [status, , kind] = await next(call, "failed");
        expect([status, kind]).toEqual([408, "no-answer"]);
        await expectSippOk(sipp);
      });

      it("401 digest challenge (qop=auth) is answered; SIPp <verifyauth> accepts it", async () => {
        const { port, sipp } = await pbx("uas-auth.xml", { vars: { status: "401", reason: "Unauthorized", header: "WWW-Authenticate" } });
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER, auth: { username: "alice", password: "s3cret" } });
        await answered(call);
        await call.hangup();
        await expectSippOk(sipp);
      });

      it("407 proxy challenge (qop=auth) is answered with a correct Proxy-Authorization", async () => {
        const { port, sipp } = await pbx("uas-auth-proxy.xml");
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER, auth: { username: "alice", password: "s3cret" } });
        await answered(call);
        await call.hangup();
        const logs = await expectSippOk(sipp);
        const header = /PROXY-AUTH (.*)/.exec(logs)?.[1] ?? "";
        const field = (name: string): string => new RegExp(`${name}="?([^",]*)"?`).exec(header)?.[1] ?? "";
        // RFC 2617 §3.2.2.1, computed here independently of either backend's digest code.
        const md5 = (s: string): string => createHash("md5").update(s).digest("hex");
        const ha1 = md5("alice:pbx.test:s3cret");
        const ha2 = md5(`INVITE:${field("uri")}`);
        expect(field("username")).toBe("alice");
        expect(field("opaque")).toBe("op4que");
        expect(field("uri")).toBe(`sip:agent@127.0.0.1:${port}`);
        expect(field("response")).toBe(md5(`${ha1}:4f2a9c71b8e3d05a:${field("nc")}:${field("cnonce")}:auth:${ha2}`));
      });

      it("wrong password: the second challenge is not answered again", async () => {
        const { port, sipp } = await pbx("uas-auth.xml", { vars: { status: "401", reason: "Unauthorized", header: "WWW-Authenticate" } });
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER, auth: { username: "alice", password: "wrong" } });
        const [status] = await next(call, "failed");
        expect(status).toBe(403);
        await finish(sipp);
      });

      it("PBX re-INVITE (adding video) is answered with our SDP; INFO both ways", async () => {
        const { port, sipp } = await pbx("uas-reinvite-from-pbx.xml");
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
        const infos: [string, string][] = [];
        call.on("info", (ct, body) => infos.push([ct, body]));
        const offers: string[] = [];
        call.on("reinvite", (offer, respond) => {
          offers.push(offer);
          respond(buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 40000, sessionId: "1", sessionVersion: 2, video: { port: 40002 } }));
        });
        await answered(call);
        await new Promise<void>((resolve) => call.once("info", () => resolve()));
        expect(offers).toHaveLength(1);
        expect(readRemoteMedia(offers[0] as string).video?.h264?.payloadType).toBe(96);
        expect(infos[0]?.[0]).toBe("application/dtmf-relay");
        expect(infos[0]?.[1]).toContain("Signal=5");
        expect(call.localSdp).toContain("m=video 40002");
        expect(await call.sendInfo("application/dtmf-relay", "Signal=7\r\nDuration=160\r\n")).toBe(200);
        const [reason] = await next(call, "ended");
        expect(reason).toBe("remote-bye");
        await expectSippOk(sipp);
      });

      it("PBX re-INVITE without SDP: our 200 carries an offer, the ACK's answer becomes the remote SDP", async () => {
        const { port, sipp } = await pbx("uas-reinvite-offerless.xml");
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
        const offers: string[] = [];
        call.on("reinvite", (offer, respond) => {
          offers.push(offer);
          respond(buildOffer({ mediaAddress: "127.0.0.1", audioPort: 40000, sessionId: "1", sessionVersion: 2 }));
        });
        await answered(call);
        const [reason] = await next(call, "ended");
        expect(reason).toBe("remote-bye");
        expect(offers).toEqual([""]);
        expect(readRemoteMedia(call.remoteSdp ?? "").audio.codec).toBe("PCMA");
        await expectSippOk(sipp);
      });

      // RFC 3261 §14.1: we own the Call-ID, so a 491 is retried after 2.1–4 s; §14.2: a 500 with
      // Retry-After after the seconds it asks for.
      it.each([
        { refusal: "491 glare", scenario: "uas-reinvite-from-us.xml", minMs: 2100, maxMs: 5000 },
        { refusal: "500 with Retry-After: 1", scenario: "uas-reinvite-retry-after.xml", minMs: 1000, maxMs: 2100 },
      ])("our re-INVITE meets $refusal, is sent again after the delay asked and answered", async ({ scenario, minMs, maxMs }) => {
        const { port, sipp } = await pbx(scenario);
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
        await answered(call);
        const withVideo = buildOffer({ mediaAddress: "127.0.0.1", audioPort: 40000, sessionId: "1", sessionVersion: 2, video: { port: 40002 } });
        const started = Date.now();
        const answer = await call.reinvite(withVideo);
        const waited = Date.now() - started;
        expect(waited).toBeGreaterThanOrEqual(minMs);
        expect(waited).toBeLessThan(maxMs);
        expect(readRemoteMedia(answer).video?.port).toBeGreaterThan(0);
        expect(call.remoteSdp).toBe(answer);
        expect(call.localSdp).toBe(withVideo);
        await call.hangup();
        await expectSippOk(sipp);
      });

      it("OPTIONS to the PBX resolves with its status", async () => {
        const { port, sipp } = await pbx("uas-options.xml");
        expect(await rig.sig.options(`sip:pbx@127.0.0.1:${port}`)).toBe(200);
        await expectSippOk(sipp);
      });

      it("TCP to a closed port fails fast as 'unreachable'", async () => {
        const port = await freePort();
        const started = Date.now();
        const call = rig.sig.placeCall({ uri: `sip:agent@127.0.0.1:${port};transport=tcp`, sdp: OFFER });
        const [status, , kind] = await next(call, "failed");
        expect(status).toBe(503);
        expect(kind).toBe("unreachable");
        expect(Date.now() - started).toBeLessThan(5000);
      });
    });

    describe("calls the PBX places to us (SIPp as the agent's phone)", () => {
      function nextIncoming(): Promise<IncomingSipCall> {
        return new Promise((resolve) => rig.sig.once("incoming", resolve));
      }

      it("rings, answers with the PBX's preferred codec, confirmed by the late ACK, ended by the PBX's BYE", async () => {
        const port = await freePort();
        const incoming = nextIncoming();
        const sipp = startSipp({ scenario: "uac-call.xml", port, remote: rig.sipTarget, service: "4410" });
        const call = await incoming;
        expect(call.from.displayName).toBe("Agent Åsa");
        expect(call.from.user).toBe("agent42");
        expect(call.to.user).toBe("4410");
        expect(call.header("X-Consumer")).toBe("1234567");
        expect(call.source.address).toBe("127.0.0.1");
        expect(call.source.transport).toBe("udp");
        expect(call.requestUri).toMatch(/^sip:4410@/);
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
        await expectSippOk(sipp);
      });

      it("a CANCEL while ringing is answered 200 + 487 and reported", async () => {
        const port = await freePort();
        const incoming = nextIncoming();
        const sipp = startSipp({ scenario: "uac-cancel.xml", port, remote: rig.sipTarget, service: "4410" });
        const call = await incoming;
        const cancelled = new Promise<void>((resolve) => call.once("cancel", resolve));
        call.ringing();
        await cancelled;
        expect(call.state).toBe("terminated");
        await expectSippOk(sipp);
      });

      it("OPTIONS from the PBX is answered 200 with Allow", async () => {
        const port = await freePort();
        const sipp = startSipp({ scenario: "uac-options.xml", port, remote: rig.sipTarget, service: "gateway" });
        await expectSippOk(sipp);
      });
    });

    it("leaves no calls behind", async () => {
      // A CANCELled INVITE may wait a moment for its 487.
      for (let i = 0; i < 50 && rig.activeCalls() > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(rig.activeCalls()).toBe(0);
    });
  });
}
