import type { Logger } from "pino";
import { callQuality, type CallEndInfo, type MetaCall } from "../call/meta-call.js";
import type { CallQuality } from "../quality/call-quality.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import { newEventId, summarizeQuality, type CallEvent, type CallParties } from "./call-events.js";

/** What the call manager tells the monitor about a call it has just created. */
export interface CallBirth {
  psid: string;
  /** The WhatsApp number the call belongs to; the Page for a Messenger call. */
  businessId?: string;
  /** The agent's INVITE, for a call an agent placed. */
  sipCallId?: string;
  sipPeer?: string;
  /** Subscribes to the call's state changes (its named states). */
  states: (listener: (state: string) => void) => void;
}

/** Setup phases timed per call; a fixed set, so a label on them stays bounded. */
export type SetupPhase = "webhook_to_invite" | "answer_to_accept" | "accept_to_media" | "invite_to_connect" | "pickup_to_media";

export interface CallMonitorOptions {
  /** The Messenger Page; undefined on a WhatsApp-only gateway. */
  pageId: string | undefined;
  /** What consumer calls ring: the SIP URI, or "echo". */
  sipTarget: string;
  /** Every call event, in the order it happened; `callKey` is the same for all events of one call. */
  publish: (event: CallEvent, callKey: string) => void;
  /** A setup phase of one call completed, in seconds. */
  observeSetup?: (direction: "inbound" | "outbound", phase: SetupPhase, seconds: number) => void;
  log: Logger;
}

/** One live call as GET /calls lists it. */
export interface LiveCallView {
  callId: string;
  parties: CallParties;
  state: string;
  startedAt: string;
  answeredAt: string | null;
  ageMs: number;
  quality: CallQuality;
}

interface Watched {
  /** Stable for the call's life (an agent's call changes its id when Meta gives it one). */
  key: string;
  call: MetaCall;
  leg: MetaMediaLeg;
  direction: "inbound" | "outbound";
  psid: string;
  businessId: string;
  sipCallId: string | undefined;
  sipPeer: string;
  startedAt: number;
  /** performance.now() of the start and of each state reached, for the setup phases. */
  t0: number;
  stateAt: Map<string, number>;
  invitedAt: number | undefined;
  answeredAt: number | undefined;
  sequence: number;
  ringing: boolean;
  answered: boolean;
}

/** A leg not claimed by a call within this long belongs to a call that failed to start. */
const UNCLAIMED_LEG_MS = 30_000;

/**
 * Follows every call from its creation to its end: the live list behind GET /calls, the
 * integrator's events (ringing, answered, ended, in order per call, with both legs' ids), the
 * setup-phase timings and the counts by direction and state.
 */
export class CallMonitor {
  private readonly legs = new Map<string, { leg: MetaMediaLeg; at: number }>();
  private readonly calls = new Set<Watched>();
  private watched = 0;

  constructor(private readonly o: CallMonitorOptions) {}

  /** The Meta leg the gateway built for a call, under the id the call starts with. */
  legCreated(callId: string, leg: MetaMediaLeg): void {
    const now = Date.now();
    for (const [id, l] of this.legs) if (now - l.at > UNCLAIMED_LEG_MS) this.legs.delete(id);
    this.legs.set(callId, { leg, at: now });
  }

  /** An INVITE went to the PBX for a consumer's call (or a transfer of it): its SIP Call-ID. */
  invited(metaCallId: string, sipCallId: string, uri: string): void {
    const w = this.find(metaCallId);
    if (!w) return;
    w.sipCallId = sipCallId;
    w.sipPeer = uri;
    if (w.invitedAt === undefined) {
      w.invitedAt = performance.now();
      this.o.observeSetup?.("inbound", "webhook_to_invite", (w.invitedAt - w.t0) / 1000);
    }
    this.ringing(w);
  }

  /** A call the manager just created; its leg was announced through legCreated under the same id. */
  watch(call: MetaCall, birth: CallBirth): void {
    const claimed = this.legs.get(call.callId);
    if (!claimed) {
      this.o.log.warn({ callId: call.callId }, "call created without a known Meta leg: not monitored");
      return;
    }
    this.legs.delete(call.callId);
    const w: Watched = {
      key: `call-${++this.watched}`,
      call,
      leg: claimed.leg,
      direction: call.direction,
      psid: birth.psid,
      businessId: birth.businessId ?? this.o.pageId ?? "",
      sipCallId: birth.sipCallId,
      sipPeer: birth.sipPeer ?? this.o.sipTarget,
      startedAt: Date.now(),
      t0: performance.now(),
      stateAt: new Map(),
      invitedAt: undefined,
      answeredAt: undefined,
      sequence: 0,
      ringing: false,
      answered: false,
    };
    this.calls.add(w);
    birth.states((state) => this.onState(w, state));
    call.whenEnded((info) => this.onEnded(w, info));
    // The echo target rings nothing: the call is ringing from the start.
    if (w.direction === "inbound" && this.o.sipTarget === "echo") this.ringing(w);
  }

  /** Live calls with their figures now, oldest first. */
  live(): LiveCallView[] {
    const now = Date.now();
    return [...this.calls].map((w) => ({
      callId: w.call.callId,
      parties: this.parties(w),
      state: w.call.state,
      startedAt: iso(w.startedAt),
      answeredAt: w.answeredAt === undefined ? null : iso(w.answeredAt),
      ageMs: now - w.startedAt,
      quality: callQuality(w.startedAt, w.leg, w.call.pbxMediaStats()),
    }));
  }

  /** Live calls by direction and state. */
  countsByState(): { direction: "inbound" | "outbound"; state: string; count: number }[] {
    const counts = new Map<string, { direction: "inbound" | "outbound"; state: string; count: number }>();
    for (const w of this.calls) {
      const key = `${w.direction} ${w.call.state}`;
      const entry = counts.get(key) ?? { direction: w.direction, state: w.call.state, count: 0 };
      entry.count++;
      counts.set(key, entry);
    }
    return [...counts.values()];
  }

  get size(): number {
    return this.calls.size;
  }

  private find(callId: string): Watched | undefined {
    for (const w of this.calls) if (w.call.callId === callId) return w;
    return undefined;
  }

  private onState(w: Watched, state: string): void {
    const now = performance.now();
    w.stateAt.set(state, now);
    const since = (from: string): number | undefined => {
      const at = from === "start" ? w.t0 : w.stateAt.get(from);
      return at === undefined ? undefined : (now - at) / 1000;
    };
    const observe = (phase: SetupPhase, seconds: number | undefined): void => {
      if (seconds !== undefined) this.o.observeSetup?.(w.direction, phase, seconds);
    };
    if (w.direction === "inbound") {
      if (state === "accepting") this.answered(w);
      if (state === "connecting") observe("answer_to_accept", since("accepting"));
      if (state === "active") observe("accept_to_media", since("connecting"));
    } else {
      if (state === "ringing") {
        observe("invite_to_connect", since("start"));
        this.ringing(w);
      }
      if (state === "answering") this.answered(w);
      if (state === "active") observe("pickup_to_media", since("answering"));
    }
  }

  private ringing(w: Watched): void {
    if (w.ringing) return;
    w.ringing = true;
    this.publish(w, { type: "call.ringing", data: { startedAt: iso(w.startedAt) } });
  }

  private answered(w: Watched): void {
    if (w.answered) return;
    this.ringing(w);
    w.answered = true;
    w.answeredAt = Date.now();
    this.publish(w, { type: "call.answered", data: { startedAt: iso(w.startedAt), answeredAt: iso(w.answeredAt) } });
  }

  private onEnded(w: Watched, info: CallEndInfo): void {
    this.calls.delete(w);
    this.publish(w, {
      type: "call.ended",
      data: {
        outcome: info.outcome,
        detail: info.detail,
        startedAt: iso(info.startedAt),
        answeredAt: w.answeredAt === undefined ? null : iso(w.answeredAt),
        endedAt: iso(info.endedAt),
        durationMs: info.durationMs,
        talkMs: w.answeredAt === undefined ? 0 : Math.max(0, info.endedAt - w.answeredAt),
        mediaFlowed: info.mediaFlowed,
        quality: summarizeQuality(info.quality),
      },
    });
  }

  private parties(w: Watched): CallParties {
    const id = w.call.callId;
    return {
      metaCallId: id.startsWith("c_") || id.startsWith("wacid.") ? id : null,
      sipCallId: w.sipCallId ?? null,
      psid: w.psid,
      direction: w.direction,
      pageId: w.businessId,
      sipPeer: w.sipPeer,
    };
  }

  private publish(w: Watched, e: Pick<CallEvent, "type" | "data">): void {
    w.sequence++;
    const event = { id: newEventId(), time: iso(Date.now()), sequence: w.sequence, call: this.parties(w), ...e } as CallEvent;
    try {
      this.o.publish(event, w.key);
    } catch (err) {
      // Reporting must never break a call.
      this.o.log.error({ err, type: event.type }, "call event could not be published");
    }
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
