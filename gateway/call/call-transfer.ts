import type { Logger } from "pino";
import type { SipReferRequest } from "../../sip/signaling.js";
import { sipfragStatusLine } from "../../sip/sipfrag.js";
import type { FarMedia } from "./far-media.js";
import { checkReferTarget, type ReferPolicy } from "./refer-policy.js";
import type { CallTarget, RingInfo } from "./target.js";
import { READ_HEADERS } from "./read-headers.js";

export interface TransferOptions {
  policy: ReferPolicy;
  /** Where the call's SIP peer is, for the default policy (its own PBX only). */
  pbxHosts: readonly string[];
  /** A SIP target ringing `uri` with these headers beside the consumer's own. */
  createTarget: (uri: string, headers: Record<string, string>) => CallTarget;
  /** What the new INVITE says about the consumer's call. */
  ring: RingInfo;
  log: Logger;
}

/** The new party of a transfer that succeeded: its target (for its end) and its media. */
export interface TransferredParty {
  target: CallTarget;
  far: FarMedia;
}

/** How long the switch waits for the transferor to take the final NOTIFY. */
const FINAL_NOTIFY_WAIT_MS = 2000;

/** Headers of a Refer-To URI that belong in the INVITE it asks for (RFC 3515 §2.1, RFC 3891 §3). */
const CARRIED_HEADERS = new Set(["replaces", "require"]);

/**
 * Follows one REFER from the party a consumer is bridged to (RFC 3515, with RFC 3892 Referred-By
 * and an embedded Replaces for attended transfers): checks the target against the policy, answers
 * 202, rings the new party, reports its progress in NOTIFY message/sipfrag, and resolves with the
 * new party once it answered, or undefined when it did not (the REFER was refused, or the new
 * party failed). The caller moves the consumer's media and releases the old party; on failure the
 * consumer stays where it was.
 */
export async function followRefer(refer: SipReferRequest, o: TransferOptions): Promise<TransferredParty | undefined> {
  const { log } = o;
  const decision = checkReferTarget(refer.referTo.uri, o.policy, o.pbxHosts);
  if (!decision.ok) {
    log.warn({ status: decision.status, detail: decision.detail }, "transfer refused");
    refer.reject(decision.status, decision.reason);
    return undefined;
  }
  refer.accept();
  const notify = (status: number, reason: string | undefined, final: boolean): void => {
    refer.notify(sipfragStatusLine(status, reason), final).catch((err: unknown) => log.debug({ err }, "transfer NOTIFY not delivered"));
  };
  notify(100, "Trying", false);
  const headers: Record<string, string> = {};
  const referredBy = refer.referredBy ?? refer.header(READ_HEADERS.from);
  if (referredBy) headers["Referred-By"] = referredBy;
  for (const [name, value] of Object.entries(refer.referTo.headers)) {
    if (CARRIED_HEADERS.has(name.toLowerCase())) headers[name] = value;
  }
  log.info({ target: decision.uri, attended: refer.referTo.replaces !== undefined }, "transfer: calling the new party");
  const target = o.createTarget(decision.uri, headers);
  const outcome = await new Promise<{ far: FarMedia } | { failed: string }>((resolve) => {
    target.on("ringing", (status) => notify(status, undefined, false));
    target.on("answered", (far) => resolve({ far }));
    target.on("failed", (_why, detail) => resolve({ failed: detail }));
    target.on("ended", (detail) => resolve({ failed: detail }));
    target.ring(o.ring);
  });
  if ("far" in outcome) {
    // The final NOTIFY goes out before the old party is released (after its BYE the dialog it
    // travels in is gone), but a transferor that never answers it does not hold the switch up.
    const final = refer.notify(sipfragStatusLine(200, "OK"), true).catch((err: unknown) => log.debug({ err }, "transfer NOTIFY not delivered"));
    await Promise.race([final, new Promise((r) => setTimeout(r, FINAL_NOTIFY_WAIT_MS).unref())]);
    log.info({ target: decision.uri }, "transfer: the new party answered");
    return { target, far: outcome.far };
  }
  // The failure as the new party gave it ("486 Busy Here"), else a generic one.
  const m = /^([3-6]\d\d) (.+)$/.exec(outcome.failed);
  notify(m ? Number(m[1]) : 503, m ? m[2] : "Service Unavailable", true);
  log.info({ target: decision.uri, detail: outcome.failed }, "transfer failed: the consumer stays with the current party");
  await target.hangup("transfer failed");
  return undefined;
}

/** Transfers by how they ended, for the whole gateway. */
export interface TransferCounts {
  succeeded: number;
  failed: number;
  /** Refused by SIP_REFER / SIP_REFER_ALLOW: nobody was called. */
  refused: number;
}

/** What a call lends its transfers: whether it can move now, how it moves, and how it ends. */
export interface TransferHost {
  /** The call is up with media both ways. */
  active: boolean;
  ring: TransferOptions["ring"];
  log: Logger;
  /** Runs a step in the call's serial queue. */
  inQueue: (step: () => Promise<void>) => Promise<void>;
  /** Moves the consumer to the new party (in the queue). */
  switchTo: (party: TransferredParty) => Promise<void>;
  /** Ends the call on both legs (in the queue). */
  end: (detail: string) => Promise<void>;
}

/**
 * A call's transfers: the operator's policy, its PBX, how to ring a new party; one transfer at a
 * time. The new party rings outside the call's queue (it may ring for a while, and a terminate must
 * not wait behind it); the switch happens in it. The party that asked may hang up meanwhile (PBXs
 * often release the transferor right after the 202): that does not end the consumer's call unless
 * the transfer then fails.
 */
export class CallTransfers {
  private running = false;
  private askerLeft = false;

  constructor(
    private readonly o: Omit<TransferOptions, "ring" | "log">,
    /** Counted for the whole gateway (metrics). */
    private readonly counts?: TransferCounts,
  ) {}

  /** The party that asked for the running transfer hung up; false when no transfer runs. */
  partyLeft(): boolean {
    if (!this.running) return false;
    this.askerLeft = true;
    return true;
  }

  async handle(request: SipReferRequest, host: TransferHost): Promise<void> {
    if (!host.active || this.running) {
      request.reject(491, "Request Pending");
      return;
    }
    this.running = true;
    this.askerLeft = false;
    try {
      const party = await this.follow(request, host.ring, host.log);
      if (this.counts) this.counts[party ? "succeeded" : checkReferTarget(request.referTo.uri, this.o.policy, this.o.pbxHosts).ok ? "failed" : "refused"]++;
      if (party) await host.inQueue(() => host.switchTo(party));
      else if (this.askerLeft) await host.inQueue(() => host.end("the transfer failed after the transferring party hung up"));
    } finally {
      this.running = false;
    }
  }

  /** Where the call's PBX is. */
  get pbxHosts(): readonly string[] {
    return this.o.pbxHosts;
  }

  follow(refer: SipReferRequest, ring: TransferOptions["ring"], log: Logger): Promise<TransferredParty | undefined> {
    return followRefer(refer, { ...this.o, ring, log });
  }
}
