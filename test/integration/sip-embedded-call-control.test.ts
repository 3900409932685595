import type { EventEmitter } from "node:events";
import { afterAll, afterEach, beforeAll, beforeEach, describe as suite, expect, it } from "vitest";
import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import { buildAnswer, buildOffer } from "../../sip/sdp.js";
import type { IncomingSipCall, OutgoingSipCall } from "../../sip/signaling.js";
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
    quick = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, timers: { sessionExpiresS: 30, minSeS: 1, t1Ms: 100 } });
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
      const call = await incoming;
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
});
