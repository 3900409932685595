import type { Logger } from "pino";
import { SipError } from "../../sip/errors.js";
import type {
  IncomingSipCall,
  OutgoingSipCall,
  ReinviteResponder,
  SipDialogCall,
  SipReferRequest,
  SipSignaling,
} from "../../sip/signaling.js";
import type { MessageEnd } from "./remote-sip.js";
import {
  capturedHeaders,
  toWireError,
  type DialogOp,
  type DialogSnapshot,
  type SipDownMessage,
  type SipUpMessage,
  type WireDialogEvent,
} from "./sip-protocol.js";

type AnyCall = (OutgoingSipCall | IncomingSipCall) & SipDialogCall;

interface Held {
  call: AnyCall;
  responders: Map<string, ReinviteResponder>;
  refers: Map<string, SipReferRequest>;
}

export interface SipBridgeOptions {
  signaling: SipSignaling;
  log: Logger;
  /** The worker an INVITE from the PBX goes to (an index into the attached workers). */
  pickWorker: (invite: IncomingSipCall) => number;
  /** False when the owner has answered the INVITE itself (refused it): no worker sees it. */
  screen?: (invite: IncomingSipCall) => boolean;
  /** Headers of INVITEs and REFERs the workers may read. */
  headers: readonly string[];
}

/**
 * The owner's half of the SIP port: the one SIP stack of the process, serving the calls of every
 * media worker. Each worker's calls are kept under the handles it knows them by; what the stack
 * reports of a call goes to the worker that holds it, with the call's state at that moment.
 */
export class SipBridge {
  private readonly workers: { end: MessageEnd<SipDownMessage>; calls: Map<string, Held> }[] = [];
  private nextIncoming = 1;
  private nextId = 1;

  constructor(private readonly o: SipBridgeOptions) {
    o.signaling.on("incoming", (invite) => this.onIncoming(invite));
    o.signaling.on("readiness", () => this.announceReadiness());
  }

  /** Puts a worker at `index` (a new one, or one in place of a worker that is gone). */
  attach(index: number, end: MessageEnd<SipDownMessage>): void {
    this.workers[index] = { end, calls: new Map() };
  }

  /**
   * SIP calls held for a worker that are not ending. A dialog whose BYE is still in flight (or one
   * kept a few seconds after it ended) is no load: counted, a worker that just ended calls would be
   * passed over for new ones.
   */
  callsOf(worker: number): number {
    let n = 0;
    for (const held of this.workers[worker]?.calls.values() ?? []) if (held.call.state !== "terminating" && held.call.state !== "terminated") n++;
    return n;
  }

  /** The worker holding the SIP dialog with this Call-ID (an INVITE with Replaces goes there). */
  workerOfSipCall(sipCallId: string): number | undefined {
    for (const [i, w] of this.workers.entries()) {
      for (const held of w.calls.values()) if (held.call.sipCallId === sipCallId) return i;
    }
    return undefined;
  }

  announceReadiness(): void {
    const s = this.o.signaling;
    for (const w of this.workers) w.end.postMessage({ t: "sip.readiness", ready: s.ready, localAddress: s.localAddress });
  }

  /** One message from worker `index`. */
  receive(index: number, m: SipUpMessage): void {
    const worker = this.workers[index];
    if (!worker) return;
    switch (m.t) {
      case "sip.place":
        this.place(index, m.h, m.options);
        return;
      case "sip.options":
        this.o.signaling.options(m.uri).then(
          (value) => worker.end.postMessage({ t: "sip.reply", req: m.req, ok: true, value }),
          (err: unknown) => worker.end.postMessage({ t: "sip.reply", req: m.req, ok: false, error: toWireError(err) }),
        );
        return;
      case "sip.op":
        this.op(index, m.h, m.op, m.req);
        return;
      case "sip.respond": {
        const held = worker.calls.get(m.h);
        const respond = held?.responders.get(m.respondId);
        held?.responders.delete(m.respondId);
        respond?.(m.answer);
        return;
      }
      case "sip.release":
        worker.calls.delete(m.h);
        return;
    }
  }

  /** Ends every call a worker held (the worker is gone). */
  async dropWorker(index: number): Promise<void> {
    const worker = this.workers[index];
    if (!worker) return;
    const calls = [...worker.calls.values()];
    worker.calls.clear();
    await Promise.allSettled(calls.map((h) => h.call.hangup()));
  }

  private place(index: number, h: string, options: Parameters<SipSignaling["placeCall"]>[0]): void {
    const worker = this.workers[index]!;
    let call: OutgoingSipCall;
    try {
      call = this.o.signaling.placeCall(options);
    } catch (err) {
      // The stack refused the options outright: the worker's call fails as one that never left.
      const snap: DialogSnapshot = { sipCallId: options.sipCallId ?? "", callId: options.callId ?? "", state: "terminated", localSdp: "", remoteSdp: undefined, dialogId: undefined };
      worker.end.postMessage({ t: "sip.event", h, call: snap, event: { name: "failed", status: 500, reason: (err as Error).message.slice(0, 200), kind: "failed" } });
      return;
    }
    this.hold(index, h, call, ["provisional", "answered", "failed", "state"]);
    worker.end.postMessage({ t: "sip.placed", h, call: snapshot(call) });
  }

  private onIncoming(invite: IncomingSipCall): void {
    if (this.o.screen && !this.o.screen(invite)) return;
    if (this.workers.length === 0) {
      invite.reject(503, "Service Unavailable");
      return;
    }
    const index = this.o.pickWorker(invite);
    const worker = this.workers[index];
    if (!worker) {
      invite.reject(503, "Service Unavailable");
      return;
    }
    const h = `i${this.nextIncoming++}`;
    this.hold(index, h, invite, ["cancel", "confirmed", "state"]);
    worker.end.postMessage({
      t: "sip.incoming",
      h,
      call: {
        ...snapshot(invite),
        from: invite.from,
        to: invite.to,
        requestUri: invite.requestUri,
        replaces: invite.replaces,
        source: invite.source,
        headers: capturedHeaders((n) => invite.header(n), this.o.headers),
      },
    });
  }

  /** Keeps the call under its handle and passes each of its events to the worker. */
  private hold(index: number, h: string, call: AnyCall, own: string[]): void {
    const worker = this.workers[index]!;
    const held: Held = { call, responders: new Map(), refers: new Map() };
    worker.calls.set(h, held);
    const post = (event: WireDialogEvent): void => worker.end.postMessage({ t: "sip.event", h, call: snapshot(call), event });
    // One listener per event name for both directions; the names are the SipSignaling ones.
    const on = call.on.bind(call) as unknown as (name: string, listener: (...args: never[]) => void) => void;
    on("reinvite", (offerSdp: string, respond: ReinviteResponder) => {
      const respondId = String(this.nextId++);
      held.responders.set(respondId, respond);
      post({ name: "reinvite", offerSdp, respondId });
    });
    on("update", (offerSdp: string, respond: ReinviteResponder, early: boolean) => {
      const respondId = String(this.nextId++);
      held.responders.set(respondId, respond);
      post({ name: "update", offerSdp, respondId, early });
    });
    on("refer", (refer: SipReferRequest) => {
      const id = String(this.nextId++);
      held.refers.set(id, refer);
      post({
        name: "refer",
        refer: { id, referTo: refer.referTo, referredBy: refer.referredBy, subscription: refer.subscription, headers: capturedHeaders((n) => refer.header(n), this.o.headers) },
      });
    });
    on("refreshed", (by: "local" | "remote") => post({ name: "refreshed", by }));
    on("info", (contentType: string, body: string) => post({ name: "info", contentType, body }));
    on("ended", (reason: string) => post({ name: "ended", reason } as WireDialogEvent));
    for (const name of own) {
      switch (name) {
        case "provisional":
          on(name, (status: number, reason: string, sdp: string | undefined) => post({ name, status, reason, sdp }));
          break;
        case "answered":
          on(name, (remoteSdp: string) => post({ name, remoteSdp }));
          break;
        case "failed":
          on(name, (status: number, reason: string, kind: string) => post({ name, status, reason, kind } as WireDialogEvent));
          break;
        case "state":
          on(name, (state: string) => post({ name, state } as WireDialogEvent));
          break;
        case "cancel":
        case "confirmed":
          on(name, () => post({ name }));
          break;
      }
    }
  }

  private op(index: number, h: string, op: DialogOp, req: number | undefined): void {
    const worker = this.workers[index]!;
    const reply = (p: Promise<unknown>): void => {
      p.then(
        (value) => {
          if (req !== undefined) worker.end.postMessage({ t: "sip.reply", req, ok: true, value });
        },
        (err: unknown) => {
          if (req !== undefined) worker.end.postMessage({ t: "sip.reply", req, ok: false, error: toWireError(err) });
          else this.o.log.debug({ err, op: op.op }, "SIP operation of a worker failed");
        },
      );
    };
    const held = worker.calls.get(h);
    if (!held) {
      reply(Promise.reject(new SipError(`no live SIP call ${h} for ${op.op}`)));
      return;
    }
    reply(Promise.resolve().then(() => run(held, op)));
  }
}

function run(held: Held, op: DialogOp): unknown {
  const call = held.call;
  switch (op.op) {
    case "hangup":
      return call.hangup();
    case "reinvite":
      return call.reinvite(op.sdp);
    case "sendInfo":
      return call.sendInfo(op.contentType, op.body);
    case "cancel":
      return (call as OutgoingSipCall).cancel();
    case "ringing":
      return (call as IncomingSipCall).ringing(op.sdp);
    case "accept":
      return (call as IncomingSipCall).accept(op.sdp);
    case "reject":
      return (call as IncomingSipCall).reject(op.status, op.reason, op.headers);
    case "refer.accept":
      return held.refers.get(op.referId)?.accept();
    case "refer.reject":
      return held.refers.get(op.referId)?.reject(op.status, op.reason);
    case "refer.notify": {
      const refer = held.refers.get(op.referId);
      if (!refer) throw new SipError(`no REFER ${op.referId} to notify`);
      return refer.notify(op.sipfrag, op.final);
    }
  }
}

function snapshot(call: AnyCall): DialogSnapshot {
  return {
    sipCallId: call.sipCallId,
    callId: call.callId,
    state: call.state,
    localSdp: call.localSdp,
    remoteSdp: call.remoteSdp,
    dialogId: call.dialogId,
  };
}
