import type { Logger } from "pino";
import type { EventDeduper } from "../meta/dedupe.js";
import { isStaleConnect } from "../meta/dedupe.js";
import { dedupeKey, type ConnectEvent, type MessengerCallEvent, type ParsedWebhook } from "../meta/webhook.js";
import type { MetaLeg } from "../webrtc/meta-leg.js";
import { InboundCall, type MetaCallControl } from "./inbound-call.js";
import type { CallRegistry } from "./registry.js";
import type { CallTarget } from "./target.js";

export interface CallManagerOptions {
  pageId: string;
  registry: CallRegistry;
  deduper: EventDeduper;
  meta: MetaCallControl;
  createLeg: (callId: string, log: Logger) => MetaLeg;
  createTarget: (callId: string) => CallTarget;
  log: Logger;
  acceptTimeoutMs: number;
  connectTimeoutMs: number;
  mediaTimeoutMs: number;
  maxConcurrent: number;
}

export interface CallManagerStats {
  eventsHandled: number;
  duplicatesDropped: number;
  staleDropped: number;
  unknownCallEvents: number;
  otherPageDropped: number;
  admissionRejected: number;
}

/**
 * Turns Messenger webhook events into call actions: a connect starts a call, a terminate or
 * media_update goes to the call it names, in the call's own serial queue. Retries, duplicates and
 * stale deliveries stop here.
 */
export class CallManager {
  private draining = false;
  private readonly counters: CallManagerStats = {
    eventsHandled: 0,
    duplicatesDropped: 0,
    staleDropped: 0,
    unknownCallEvents: 0,
    otherPageDropped: 0,
    admissionRejected: 0,
  };

  constructor(private readonly o: CallManagerOptions) {}

  /** Dispatches every event of one delivery; never throws (a bad event is logged and skipped). */
  handleWebhook(parsed: ParsedWebhook): void {
    for (const r of parsed.rejected) this.o.log.warn({ item: r.index, reason: r.reason }, "webhook item rejected");
    for (const event of parsed.events) {
      try {
        this.handleEvent(event);
      } catch (err) {
        this.o.log.error({ err, callId: event.callId, event: event.event }, "webhook event failed");
      }
    }
    for (const reply of parsed.permissionReplies) {
      this.o.log.info({ psid: reply.psid, response: reply.response }, "call permission reply");
    }
  }

  /** Stops taking new calls; live calls go on. */
  startDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  get atCapacity(): boolean {
    return this.o.registry.size >= this.o.maxConcurrent;
  }

  /** Ends every live call on both legs and waits for them to finish. */
  async hangupAll(reason: string): Promise<void> {
    await Promise.allSettled(this.o.registry.all().map((c) => c.hangup(reason)));
  }

  stats(): CallManagerStats {
    return { ...this.counters };
  }

  private handleEvent(event: MessengerCallEvent): void {
    const log = this.o.log;
    if (event.pageId !== this.o.pageId) {
      this.counters.otherPageDropped++;
      log.warn({ callId: event.callId, pageId: event.pageId }, "event for another Page dropped");
      return;
    }
    if (!this.o.deduper.firstSeen(dedupeKey(event))) {
      this.counters.duplicatesDropped++;
      log.debug({ callId: event.callId, event: event.event }, "duplicate webhook event dropped");
      return;
    }
    this.counters.eventsHandled++;
    switch (event.event) {
      case "connect":
        this.onConnect(event);
        return;
      case "terminate": {
        const call = this.o.registry.get(event.callId);
        if (!call) return this.unknown(event);
        void call.onMetaTerminate(event.status);
        return;
      }
      case "media_update": {
        const call = this.o.registry.get(event.callId);
        if (!call) return this.unknown(event);
        void call.onMetaMediaUpdate(event.version, event.offer.sdp);
        return;
      }
      case "call_status":
        // Only business-initiated calls get call_status; those arrive with outbound calling.
        if (!this.o.registry.get(event.callId)) this.unknown(event);
        return;
    }
  }

  private onConnect(event: ConnectEvent): void {
    const log = this.o.log.child({ callId: event.callId });
    if (event.direction !== "user_initiated") {
      log.warn({ direction: event.direction }, "connect for a call we did not place: ignored");
      return;
    }
    if (this.o.registry.knows(event.callId)) {
      this.counters.duplicatesDropped++;
      log.debug("connect for a known call dropped");
      return;
    }
    if (isStaleConnect(event, Date.now())) {
      this.counters.staleDropped++;
      log.warn({ timestamp: event.timestamp }, "stale connect dropped: the ring window has passed");
      return;
    }
    if (this.draining || this.atCapacity) {
      this.counters.admissionRejected++;
      log.warn({ draining: this.draining, active: this.o.registry.size }, "call refused: not admitting calls");
      this.o.meta.reject(event.callId).catch((err: unknown) => log.warn({ err }, "reject failed"));
      return;
    }
    const callLog = log.child({ psid: event.from, direction: "inbound" });
    const call = new InboundCall({
      callId: event.callId,
      psid: event.from,
      leg: this.o.createLeg(event.callId, callLog),
      target: this.o.createTarget(event.callId),
      meta: this.o.meta,
      log: callLog,
      acceptTimeoutMs: this.o.acceptTimeoutMs,
      connectTimeoutMs: this.o.connectTimeoutMs,
      mediaTimeoutMs: this.o.mediaTimeoutMs,
    });
    this.o.registry.add(call);
    callLog.info("consumer call received");
    void call.start();
  }

  private unknown(event: MessengerCallEvent): void {
    this.counters.unknownCallEvents++;
    this.o.log.debug({ callId: event.callId, event: event.event }, "event for no live call");
  }
}
