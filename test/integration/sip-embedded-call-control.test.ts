import type { EventEmitter } from "node:events";
import { afterAll, afterEach, beforeAll, beforeEach, describe as suite, expect, it } from "vitest";
import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import { buildAnswer, buildOffer } from "../../sip/sdp.js";
import { SipArgumentError, SipCallStateError } from "../../sip/errors.js";
import type { IncomingSipCall, OutgoingSipCall, SipReferRequest } from "../../sip/signaling.js";
import { sipfragStatusLine } from "../../sip/sipfrag.js";
import { describe, finish, freePort, killAllSipp, requireSipp, startSipp, type SippOptions, type SippProcess, type SippResult } from "../support/sipp.js";

/**
 * Session timers, reliable provisionals, UPDATE, REFER and Replaces in the embedded stack, each
 * flow against SIPp playing the PBX.
 */

const OFFER = buildOffer({ mediaAddress: "127.0.0.1", audioPort: 40000, sessionId: "1" });

/** The arguments of the next `event` of a call (typed by the caller, e.g. `next<[SipEndReason]>`). */
function next<T extends unknown[]>(call: object, event: string): Promise<T> {
  return new Promise((resolve) => (call as EventEmitter).once(event, (...args: unknown[]) => resolve(args as T)));
}

function answered(call: OutgoingSipCall): Promise<string> {
  return new Promise((resolve, reject) => {
    call.once("answered", resolve);
    call.once("failed", (status, reason, kind) => reject(new Error(`call failed: ${status} ${reason} (${kind})`)));
  });
}

function nextIncoming(sig: EmbeddedSipSignaling): Promise<IncomingSipCall> {
  return new Promise((resolve) => sig.once("incoming", resolve));
}

/** The call SIPp places, or SIPp's account of why it never came (instead of a test timeout). */
function callFrom(incoming: Promise<IncomingSipCall>, sipp: SippProcess): Promise<IncomingSipCall> {
  // An early exit is reported below, with SIPp's output; `ready` would only repeat it unheard.
  sipp.ready.catch(() => {});
  return Promise.race([
    incoming,
    sipp.done.then((r) => {
      throw new Error(`SIPp ended before its call arrived\n${describe(r)}`);
    }),
  ]);
}

/** The messages SIPp received, in order, from their first line on (line ends as "\n"). */
function receivedMessages(r: SippResult): string[] {
  return r.messages
    .split(/-{10,}[^\n]*\n/)
    .filter((block) => /message received/.test(block))
    .map((block) => {
      const lines = block.replace(/\r/g, "").split("\n");
      const start = lines.findIndex((l) => /^(SIP\/2\.0 \d{3}|[A-Z]+ \S+ SIP\/2\.0)/.test(l.trim()));
      return start < 0 ? "" : lines.slice(start).map((l) => l.trimStart()).join("\n");
    });
}

/** Their first lines. */
function received(r: SippResult): string[] {
  return receivedMessages(r).map((m) => m.split("\n", 1)[0] ?? "");
}

suite("embedded SIP call control, with SIPp as the PBX", () => {
  /** Our Min-SE at the RFC floor (90 s), asking for 30-minute sessions: the 422 cases. */
  let strict: EmbeddedSipSignaling;
  /** Short intervals so refreshes and expiry happen within a test. */
  let quick: EmbeddedSipSignaling;

  beforeEach(() => requireSipp());
  beforeAll(async () => {
    strict = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0 });
    quick = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, timers: { sessionExpiresS: 30, minSeS: 1, t1Ms: 100, referSubscriptionS: 1 } });
    await strict.start();
    await quick.start();
  });
  afterEach(async () => {
    await killAllSipp();
  });
  afterAll(async () => {
    await strict?.stop();
    await quick?.stop();
  });

  async function pbx(scenario: string, extra: Partial<SippOptions> = {}): Promise<{ port: number; sipp: SippProcess }> {
    const port = await freePort();
    const sipp = startSipp({ scenario, port, ...extra });
    await sipp.ready;
    return { port, sipp };
  }

  async function sippOk(sipp: SippProcess, ms?: number): Promise<SippResult> {
    const r = await finish(sipp, ms);
    expect(r.code, describe(r)).toBe(0);
    return r;
  }

  suite("session timers (RFC 4028)", () => {
    it("our INVITE gets 422: retried with the PBX's Min-SE, a new CSeq, and the transfer headers the caller gave", async () => {
      const { port, sipp } = await pbx("uas-timer-422.xml");
      const call = quick.placeCall({
        uri: `sip:agent@127.0.0.1:${port}`,
        sdp: OFFER,
        headers: { "Referred-By": "<sip:agent7@pbx.example>", Replaces: "old-call@pbx.example;to-tag=aa;from-tag=bb" },
      });
      const failed: unknown[] = [];
      call.on("failed", (...a) => failed.push(a));
      await answered(call);
      await call.hangup();
      const r = await sippOk(sipp);
      expect(failed).toEqual([]);
      const [, first, second] = /cseq (\d+) then (\d+)/.exec(r.logs) ?? [];
      expect(Number(second)).toBe(Number(first) + 1);
    });

    it("an INVITE asking for less than our Min-SE gets 422 Min-SE: 90; the retry is answered with the PBX refreshing", async () => {
      const port = await freePort();
      const calls: IncomingSipCall[] = [];
      const onIncoming = (c: IncomingSipCall): void => {
        calls.push(c);
        void c.accept(buildAnswer(c.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 }));
      };
      strict.on("incoming", onIncoming);
      try {
        const sipp = startSipp({ scenario: "uac-timer-422.xml", port, remote: `127.0.0.1:${strict.port}`, service: "4410" });
        const r = await sippOk(sipp);
        expect(received(r)).toEqual(["SIP/2.0 422 Session Interval Too Small", "SIP/2.0 100 Trying", "SIP/2.0 200 OK", "SIP/2.0 200 OK"]);
      } finally {
        strict.off("incoming", onIncoming);
      }
      // Only the retry reached the application.
      expect(calls).toHaveLength(1);
      expect(calls[0]?.state).toBe("terminated");
    });
    it("as refresher, refreshes at half the interval with UPDATE when the PBX allows it", async () => {
      const { port, sipp } = await pbx("uas-refresh-update.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      await answered(call);
      const t0 = Date.now();
      const at: number[] = [];
      const twice = new Promise<void>((resolve) =>
        call.on("refreshed", (by) => {
          expect(by).toBe("local");
          at.push(Date.now() - t0);
          if (at.length === 2) resolve();
        }),
      );
      await twice;
      await call.hangup();
      await sippOk(sipp);
      // 2 s sessions: one refresh a second, never early.
      expect(at[0]).toBeGreaterThanOrEqual(950);
      expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
      expect(at[1]).toBeLessThan(3500);
    });

    it("as refresher, refreshes with a re-INVITE offering the same SDP, version unchanged, when UPDATE is not allowed", async () => {
      const { port, sipp } = await pbx("uas-refresh-reinvite.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      await answered(call);
      const [by] = await next<[string]>(call, "refreshed");
      expect(by).toBe("local");
      await call.hangup();
      const r = await sippOk(sipp);
      const offers = receivedMessages(r)
        .filter((m) => m.startsWith("INVITE "))
        .map((m) => m.slice(m.indexOf("\n\n") + 2).trim());
      expect(offers).toHaveLength(2);
      expect(offers[1]).toBe(offers[0]);
      expect(offers[0]).toContain("o=- 1 1 IN IP4 127.0.0.1");
      expect(call.localSdp).toBe(OFFER);
    });

    it("when the PBX refreshes (UPDATE, then re-INVITE) in time, the call lives on past the first expiry", async () => {
      const { port, sipp } = await pbx("uas-peer-refresher.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      const refreshes: string[] = [];
      call.on("refreshed", (by) => refreshes.push(by));
      call.on("reinvite", (offer, respond) => respond(buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 40000, sessionId: "1", sessionVersion: 2 })));
      await answered(call);
      const t0 = Date.now();
      const [reason] = await next<[string]>(call, "ended");
      expect(reason).toBe("remote-bye");
      expect(Date.now() - t0).toBeGreaterThan(2500);
      expect(refreshes).toEqual(["remote", "remote"]);
      await sippOk(sipp);
    });

    it("when the PBX misses its refresh, we send BYE at the interval minus a third and report 'session-expired'", async () => {
      const { port, sipp } = await pbx("uas-refresh-missed.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      await answered(call);
      const t0 = Date.now();
      const [reason] = await next<[string]>(call, "ended");
      const elapsed = Date.now() - t0;
      expect(reason).toBe("session-expired");
      expect(elapsed).toBeGreaterThanOrEqual(1900);
      expect(elapsed).toBeLessThan(3000);
      await sippOk(sipp);
    });

    it("a PBX calling us with Session-Expires and no refresher refreshes; when it stops, we end the call", async () => {
      const port = await freePort();
      const incoming = nextIncoming(quick);
      const sipp = startSipp({ scenario: "uac-timer-expire.xml", port, remote: `127.0.0.1:${quick.port}`, service: "4410" });
      const call = await callFrom(incoming, sipp);
      const refreshes: string[] = [];
      call.on("refreshed", (by) => refreshes.push(by));
      const ended = next<[string]>(call, "ended");
      expect(await call.accept(buildAnswer(call.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 }))).toBe(true);
      expect(await ended).toEqual(["session-expired"]);
      expect(refreshes).toEqual(["remote"]);
      await sippOk(sipp);
    });

    for (const [status, reason] of [
      [500, "Server Internal Error"],
      [481, "Call/Transaction Does Not Exist"],
    ] as const) {
      it(`a refresh answered ${status} ends the call with BYE ('refresh-failed')`, async () => {
        const { port, sipp } = await pbx("uas-refresh-fail.xml", { vars: { status: String(status), reason } });
        const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
        await answered(call);
        const [why] = await next<[string]>(call, "ended");
        expect(why).toBe("refresh-failed");
        await sippOk(sipp);
      });
    }

    it("a refresh answered 491 is retried soon enough to keep the session", async () => {
      const { port, sipp } = await pbx("uas-refresh-glare.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      const ends: string[] = [];
      call.on("ended", (why) => ends.push(why));
      await answered(call);
      const t0 = Date.now();
      await next<[string]>(call, "refreshed");
      // First try at 1 s, the retry at most a quarter of that later.
      expect(Date.now() - t0).toBeLessThan(1800);
      await call.hangup();
      expect(ends).toEqual(["local-bye"]);
      await sippOk(sipp);
    });
  });

  suite("reliable provisionals (RFC 3262) and early media", () => {
    it("PRACKs each reliable 180/183 once, reports a repeated one once, and takes the answer from the 183 when the 200 has none", async () => {
      const { port, sipp } = await pbx("uas-100rel.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      const provisionals: [number, string | undefined][] = [];
      call.on("provisional", (status, _reason, sdp) => provisionals.push([status, sdp]));
      const answer = await answered(call);
      expect(provisionals.map(([status]) => status)).toEqual([180, 183]);
      expect(provisionals[0]?.[1]).toBeUndefined();
      expect(provisionals[1]?.[1]).toContain("m=audio 30300 ");
      expect(answer).toBe(provisionals[1]?.[1]);
      expect(call.remoteSdp).toBe(answer);
      await call.hangup();
      const r = await sippOk(sipp);
      const pracks = receivedMessages(r).filter((m) => m.startsWith("PRACK "));
      expect(pracks).toHaveLength(2);
      const invite = receivedMessages(r).find((m) => m.startsWith("INVITE ")) ?? "";
      const inviteCSeq = /\nCSeq: (\d+) INVITE/.exec(invite)?.[1];
      expect(pracks.map((m) => /\nRAck: (.*)/.exec(m)?.[1])).toEqual([`1 ${inviteCSeq} INVITE`, `2 ${inviteCSeq} INVITE`]);
      // PRACKs are requests of the early dialog: CSeq after the INVITE's, the BYE after them.
      const seq = (m: string | undefined): number => Number(/\nCSeq: (\d+)/.exec(m ?? "")?.[1]);
      const bye = receivedMessages(r).find((m) => m.startsWith("BYE "));
      expect(seq(pracks[0])).toBe(Number(inviteCSeq) + 1);
      expect(seq(pracks[1])).toBe(Number(inviteCSeq) + 2);
      expect(seq(bye)).toBeGreaterThan(seq(pracks[1]));
    });

    for (const [label, port, version] of [
      ["the same SDP", "30400", "1"],
      ["a different SDP (media moved at answer)", "30410", "2"],
    ] as const) {
      it(`183 with SDP then 200 with ${label}: early media reported, the 200's SDP is the answer`, async () => {
        const { port: sipPort, sipp } = await pbx("uas-early-media.xml", { vars: { answer_port: port, version } });
        const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${sipPort}`, sdp: OFFER });
        const [status, , early] = await next<[number, string, string | undefined]>(call, "provisional");
        expect(status).toBe(183);
        expect(early).toContain("m=audio 30400 ");
        const answer = await answered(call);
        expect(answer).toContain(`m=audio ${port} `);
        expect(call.remoteSdp).toBe(answer);
        await call.hangup();
        await sippOk(sipp);
      });
    }

    it("as UAS, when the INVITE requires 100rel: 180 and 183 go reliably with consecutive RSeqs until PRACKed, the 200 after the 183's PRACK", async () => {
      const port = await freePort();
      const incoming = nextIncoming(quick);
      const sipp = startSipp({ scenario: "uac-100rel.xml", port, remote: `127.0.0.1:${quick.port}`, service: "4410" });
      const call = await callFrom(incoming, sipp);
      const answer = buildAnswer(call.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 });
      const states: string[] = [];
      call.on("state", (st) => states.push(st));
      call.ringing();
      call.ringing(answer);
      const ended = next<[string]>(call, "ended");
      expect(await call.accept(answer)).toBe(true);
      expect(await ended).toEqual(["remote-bye"]);
      expect(states).toEqual(["early", "accepted", "confirmed", "terminated"]);
      const r = await sippOk(sipp);
      const [, r1, r2] = /rseq (\d+) then (\d+)/.exec(r.logs) ?? [];
      expect(Number(r2)).toBe(Number(r1) + 1);
      // The PRACK was held back 350 ms; T1 is 100 ms here, so the 180 came again meanwhile.
      const ringing = receivedMessages(r).filter((m) => m.startsWith("SIP/2.0 180 "));
      expect(ringing.length).toBeGreaterThanOrEqual(2);
      expect(new Set(ringing.map((m) => /\nRSeq: (\d+)/.exec(m)?.[1])).size).toBe(1);
    });
  });

  suite("UPDATE (RFC 3311)", () => {
    it("an offer in the early dialog (after a PRACKed 183) and in the confirmed one is answered; a bodiless UPDATE is just answered", async () => {
      const { port, sipp } = await pbx("uas-update.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      const earlyAnswer = buildAnswer(OFFER.replace("m=audio 40000", "m=audio 41000"), { mediaAddress: "127.0.0.1", audioPort: 41000, sessionId: "1", sessionVersion: 2 });
      const updates: [string, boolean][] = [];
      const onUpdate = (offer: string, respond: (a: string) => void, early: boolean): void => {
        updates.push([offer, early]);
        respond(buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 41000, sessionId: "1", sessionVersion: 2 }));
      };
      call.on("update", onUpdate);
      const answer = await answered(call);
      expect(updates).toHaveLength(1);
      expect(updates[0]?.[1]).toBe(true);
      expect(updates[0]?.[0]).toContain("m=audio 30600 ");
      // The 200 had no SDP: the answer is what the early UPDATE settled, and our side is what we answered.
      expect(answer).toBe(updates[0]?.[0]);
      expect(call.localSdp).toContain("m=audio 41000 ");
      expect(earlyAnswer).toContain("m=audio 41000 ");
      // Confirmed dialog, no `update` listener: the offer reaches the `reinvite` listener.
      call.off("update", onUpdate);
      const reinvites: string[] = [];
      call.on("reinvite", (offer, respond) => {
        reinvites.push(offer);
        respond(buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 41002, sessionId: "1", sessionVersion: 3 }));
      });
      const [reason] = await next<[string]>(call, "ended");
      expect(reason).toBe("remote-bye");
      expect(reinvites).toHaveLength(1);
      expect(reinvites[0]).toContain("m=audio 30700 ");
      expect(call.remoteSdp).toBe(reinvites[0]);
      await sippOk(sipp);
    });

    it("on the early dialog of a call to us: PRACK, a refresh UPDATE, an UPDATE offer (reported early), INFO; a BYE there withdraws the call (487)", async () => {
      const port = await freePort();
      const incoming = nextIncoming(quick);
      const sipp = startSipp({ scenario: "uac-early-dialog.xml", port, remote: `127.0.0.1:${quick.port}`, service: "4410" });
      const call = await callFrom(incoming, sipp);
      const updates: [string, boolean][] = [];
      call.on("update", (offer, respond, early) => {
        updates.push([offer, early]);
        respond(buildAnswer(offer, { mediaAddress: "127.0.0.1", audioPort: 41004, sessionVersion: 2 }));
      });
      const infos: string[] = [];
      call.on("info", (_ct, body) => infos.push(body));
      const cancelled = next<[]>(call, "cancel");
      call.ringing(buildAnswer(call.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 }));
      await cancelled;
      expect(call.state).toBe("terminated");
      expect(updates).toHaveLength(1);
      expect(updates[0]?.[0]).toContain("m=audio 30800 ");
      expect(updates[0]?.[1]).toBe(true);
      expect(infos).toEqual(["Signal=9\r\nDuration=160\r\n"]);
      const r = await sippOk(sipp);
      expect(r.logs).toContain("update answer m=audio 41004 ");
      expect(r.logs).toContain("bye BYE");
    });

    it("an UPDATE offer before our offer has a reliable answer gets 491; a REFER nobody listens for gets 603", async () => {
      const { port, sipp } = await pbx("uas-early-update-491.xml");
      const call = quick.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      const updates: string[] = [];
      call.on("update", (offer, respond) => {
        updates.push(offer);
        respond({ status: 488 });
      });
      await answered(call);
      const [reason] = await next<[string]>(call, "ended");
      expect(reason).toBe("remote-bye");
      expect(updates).toEqual([]);
      await sippOk(sipp);
    });
  });

  suite("REFER (RFC 3515, 3892, 4488)", () => {
    it("blind transfer: Refer-To and Referred-By reported, 202, then NOTIFY 100 → 180 → 200 as SIPp sees them", async () => {
      const port = await freePort();
      const incoming = nextIncoming(strict);
      const sipp = startSipp({ scenario: "uac-refer-blind.xml", port, remote: `127.0.0.1:${strict.port}`, service: "4410" });
      const call = await callFrom(incoming, sipp);
      const referred = next<[SipReferRequest]>(call, "refer");
      const ended = next<[string]>(call, "ended");
      await call.accept(buildAnswer(call.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 }));
      const [refer] = await referred;
      expect(refer.referTo).toEqual({ uri: "sip:2000@127.0.0.1:5999;transport=udp", displayName: undefined, headers: {}, replaces: undefined });
      expect(refer.referredBy).toMatch(/^"Agent 42" <sip:agent42@127\.0\.0\.1:\d+>$/);
      expect(refer.subscription).toBe(true);
      await expect(refer.notify(sipfragStatusLine(100), false)).rejects.toBeInstanceOf(SipCallStateError);
      refer.accept();
      // Called back to back: they must still reach SIPp one at a time, in this order.
      const sent = [refer.notify(sipfragStatusLine(100), false), refer.notify("SIP/2.0 180 Ringing", false), refer.notify(sipfragStatusLine(200), true)];
      await Promise.all(sent);
      await expect(refer.notify(sipfragStatusLine(200), true)).rejects.toBeInstanceOf(SipCallStateError);
      await expect(refer.notify("garbage", false)).rejects.toBeInstanceOf(SipArgumentError);
      expect(await ended).toEqual(["remote-bye"]);
      const r = await sippOk(sipp);
      expect(r.logs).toMatch(/notify1 refer;id=2 active;expires=\d+ message\/sipfrag(;version=2\.0)? SIP\/2\.0 100 Trying sip:/);
      expect(r.logs).toMatch(/notify2 active;expires=\d+ SIP\/2\.0 180 Ringing/);
      expect(r.logs).toMatch(/notify3 terminated;reason=noresource SIP\/2\.0 200 OK/);
      expect(r.logs).toMatch(/202 contact .*sip:/);
    });

    it("attended transfer: the escaped Replaces in Refer-To comes out parsed; a rejection is 603; Refer-Sub: false is honoured", async () => {
      const { port, sipp } = await pbx("uas-refer-replaces.xml");
      const call = strict.placeCall({ uri: `sip:agent@127.0.0.1:${port}`, sdp: OFFER });
      const refers: SipReferRequest[] = [];
      call.on("refer", (r) => {
        refers.push(r);
        if (refers.length === 1) r.reject(603);
        else r.accept();
      });
      await answered(call);
      const [reason] = await next<[string]>(call, "ended");
      expect(reason).toBe("remote-bye");
      expect(refers).toHaveLength(2);
      expect(refers[0]?.referTo).toEqual({
        uri: "sip:3000@127.0.0.1:5998",
        displayName: undefined,
        headers: { Replaces: "consult-77@pbx.example;to-tag=t111;from-tag=f222", Require: "replaces" },
        replaces: { callId: "consult-77@pbx.example", toTag: "t111", fromTag: "f222", earlyOnly: false },
      });
      expect(refers[0]?.referredBy).toMatch(/^<sip:agent@127\.0\.0\.1:\d+>$/);
      expect(refers[1]?.referTo.uri).toBe("sip:3001@127.0.0.1:5998");
      expect(refers[1]?.subscription).toBe(false);
      expect(refers[1]?.header("refer-sub")).toBe("false");
      // No subscription: nothing is sent, and saying so is not an error.
      await refers[1]?.notify(sipfragStatusLine(200), true);
      const r = await sippOk(sipp);
      expect(received(r).filter((l) => l.startsWith("NOTIFY"))).toEqual([]);
      expect(r.logs).toContain("refer-sub false");
    });

    it("a subscription whose transfer never finishes is closed at its expiry with terminated;reason=timeout", async () => {
      const port = await freePort();
      const incoming = nextIncoming(quick);
      const sipp = startSipp({ scenario: "uac-refer-expiry.xml", port, remote: `127.0.0.1:${quick.port}`, service: "4410" });
      const call = await callFrom(incoming, sipp);
      const referred = next<[SipReferRequest]>(call, "refer");
      const ended = next<[string]>(call, "ended");
      await call.accept(buildAnswer(call.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 }));
      const [refer] = await referred;
      refer.accept();
      await refer.notify(sipfragStatusLine(100), false);
      expect(await ended).toEqual(["remote-bye"]);
      await expect(refer.notify(sipfragStatusLine(200), true)).rejects.toBeInstanceOf(SipCallStateError);
      const r = await sippOk(sipp);
      expect(r.logs).toContain("notify1 active;expires=1");
      expect(r.logs).toMatch(/notify2 terminated;reason=timeout SIP\/2\.0 100 Trying/);
    });
  });

  suite("INVITE with Replaces (RFC 3891)", () => {
    it("names a live dialog: reported on the call and found by findDialog; unknown → 481; early-only for a confirmed one → 486", async () => {
      // The call to be replaced.
      const portA = await freePort();
      const incomingA = nextIncoming(strict);
      const sippA = startSipp({ scenario: "uac-call-until-bye.xml", port: portA, remote: `127.0.0.1:${strict.port}`, service: "4410" });
      const callA = await callFrom(incomingA, sippA);
      expect(callA.replaces).toBeUndefined();
      expect(await callA.accept(buildAnswer(callA.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41000 }))).toBe(true);
      const id = callA.dialogId;
      if (!id) throw new Error("an answered call has a dialog id");
      expect(id.callId).toBe(callA.sipCallId);
      expect(strict.findDialog(id.callId, id.localTag, id.remoteTag)).toBe(callA);

      const reported: IncomingSipCall[] = [];
      const count = (c: IncomingSipCall): number => reported.push(c);
      strict.on("incoming", count);
      try {
        for (const [replaces, status] of [
          [`no-such-call@pbx;to-tag=${id.localTag};from-tag=${id.remoteTag}`, "481"],
          [`${id.callId};to-tag=${id.remoteTag};from-tag=${id.localTag}`, "481"],
          [`${id.callId};to-tag=${id.localTag};from-tag=${id.remoteTag};early-only`, "486"],
        ] as const) {
          const port = await freePort();
          const sipp = startSipp({ scenario: "uac-replaces-refused.xml", port, remote: `127.0.0.1:${strict.port}`, service: "4410", vars: { replaces, status } });
          await sippOk(sipp);
        }
        expect(reported).toEqual([]);
      } finally {
        strict.off("incoming", count);
      }

      const portB = await freePort();
      const incomingB = nextIncoming(strict);
      const sippB = startSipp({
        scenario: "uac-replaces.xml",
        port: portB,
        remote: `127.0.0.1:${strict.port}`,
        service: "4410",
        vars: { replaces: `${id.callId};to-tag=${id.localTag};from-tag=${id.remoteTag}` },
      });
      const callB = await callFrom(incomingB, sippB);
      expect(callB.replaces).toEqual({ callId: id.callId, toTag: id.localTag, fromTag: id.remoteTag, earlyOnly: false });
      const replaced = strict.findDialog(callB.replaces!.callId, callB.replaces!.toTag, callB.replaces!.fromTag);
      expect(replaced).toBe(callA);
      // What the application does with it: take the new call, release the old one.
      const endedB = next<[string]>(callB, "ended");
      expect(await callB.accept(buildAnswer(callB.remoteSdp ?? "", { mediaAddress: "127.0.0.1", audioPort: 41002 }))).toBe(true);
      await replaced!.hangup();
      expect(strict.findDialog(id.callId, id.localTag, id.remoteTag)).toBeUndefined();
      expect(await endedB).toEqual(["remote-bye"]);
      await sippOk(sippA);
      await sippOk(sippB);
    });
  });

  it("leaves no calls behind", () => {
    expect(strict.activeCalls).toBe(0);
    expect(quick.activeCalls).toBe(0);
  });
});
