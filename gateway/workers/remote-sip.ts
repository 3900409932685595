import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type {
  IncomingCallState,
  IncomingSipCall,
  IncomingSipCallEvents,
  OutgoingCallState,
  OutgoingSipCall,
  OutgoingSipCallEvents,
  PlaceCallOptions,
  ReinviteAnswer,
  SipAddress,
  SipDialogId,
  SipParty,
  SipReferRequest,
  SipReferTarget,
  SipReplaces,
  SipSignaling,
  SipSignalingEvents,
} from "../../sip/signaling.js";
import { SipCallStateError } from "../../sip/errors.js";
import {
  fromWireError,
  type DialogOp,
  type DialogSnapshot,
  type IncomingSnapshot,
  type ReferSnapshot,
  type SipDownMessage,
  type SipUpMessage,
  type WireDialogEvent,
} from "./sip-protocol.js";

/** One end of a thread's message channel (a worker's `parentPort`, or a `Worker` seen from its owner). */
export interface MessageEnd<Out> {
  postMessage(message: Out): void;
}

/** What the signalling keeps of each live remote call. */
interface DialogEntry {
  receive(snap: DialogSnapshot, event: WireDialogEvent | undefined): void;
  hangup(): Promise<void>;
}

/** After `terminated`, how long a call's handle waits for a terminal event that may follow. */
const TERMINATED_KEPT_MS = 5_000;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * The SIP stack as a media worker sees it: the SipSignaling port, carried to the thread that owns
 * the real stack. Calls placed here and INVITEs handed here behave as the stack's own objects do
 * (same events, same errors); their getters read the state the owner sent with the last event.
 */
export class RemoteSipSignaling extends EventEmitter<SipSignalingEvents> implements SipSignaling {
  private readonly calls = new Map<string, DialogEntry>();
  private readonly pending = new Map<number, Pending>();
  private nextReq = 1;
  private nextHandle = 1;
  private _ready = false;
  private _localAddress: SipAddress | undefined;

  constructor(private readonly port: MessageEnd<SipUpMessage>) {
    super();
  }

  get ready(): boolean {
    return this._ready;
  }

  get localAddress(): SipAddress | undefined {
    return this._localAddress;
  }

  /** The owner's stack is started and stopped by the owner. */
  async start(): Promise<void> {}

  /**
   * Starts ending what is left of this worker's calls (BYE or CANCEL), without waiting for the far
   * ends to answer: the stack stays with the owner, which finishes them at its own stop, best
   * effort, as a stack of its own would.
   */
  async stop(): Promise<void> {
    for (const c of this.calls.values()) c.hangup().catch(() => undefined);
  }

  placeCall(options: PlaceCallOptions): OutgoingSipCall {
    const h = `o${this.nextHandle++}`;
    // The Call-ID is chosen here so that it is known the moment the call is placed, as with the stack itself.
    const sipCallId = options.sipCallId ?? randomUUID();
    const call = new RemoteOutgoingCall(this, h, { sipCallId, callId: options.callId ?? sipCallId, localSdp: options.sdp }, this.calls);
    this.calls.set(h, call);
    this.port.postMessage({ t: "sip.place", h, options: { ...options, sipCallId } });
    return call;
  }

  options(uri: string): Promise<number> {
    return this.request<number>((req) => ({ t: "sip.options", req, uri }));
  }

  /** Feeds one message from the owner. */
  receive(m: SipDownMessage): void {
    switch (m.t) {
      case "sip.readiness": {
        const changed = m.ready !== this._ready;
        this._ready = m.ready;
        this._localAddress = m.localAddress;
        if (changed) this.emit("readiness", m.ready);
        return;
      }
      case "sip.reply": {
        const p = this.pending.get(m.req);
        if (!p) return;
        this.pending.delete(m.req);
        if (m.ok) p.resolve(m.value);
        else p.reject(fromWireError(m.error));
        return;
      }
      case "sip.incoming": {
        const call = new RemoteIncomingCall(this, m.h, m.call, this.calls);
        this.calls.set(m.h, call);
        if (this.listenerCount("incoming") === 0) call.reject(480);
        else this.emit("incoming", call);
        return;
      }
      case "sip.placed":
      case "sip.event":
        this.calls.get(m.h)?.receive(m.call, m.t === "sip.event" ? m.event : undefined);
        return;
    }
  }

  /** @internal */
  send(m: SipUpMessage): void {
    this.port.postMessage(m);
  }

  /** @internal A request answered with a `sip.reply`; `T` is what the stack's own method resolves with. */
  request<T>(build: (req: number) => SipUpMessage): Promise<T> {
    const req = this.nextReq++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(req, { resolve: resolve as (value: unknown) => void, reject });
      this.port.postMessage(build(req));
    });
  }

  /** @internal An operation on call `h` whose outcome the caller waits for. */
  ask<T>(h: string, op: DialogOp): Promise<T> {
    return this.request<T>((req) => ({ t: "sip.op", req, h, op }));
  }

  /** @internal An operation on call `h` that the stack's own method does not report on (void). */
  tell(h: string, op: DialogOp): void {
    this.port.postMessage({ t: "sip.op", req: undefined, h, op });
  }
}

/** What both directions' remote calls share; each subclass types its own events. */
abstract class RemoteDialog<E extends Record<keyof E, unknown[]> = Record<string, unknown[]>> extends EventEmitter<E> {
  protected snap: DialogSnapshot;

  constructor(
    protected readonly sip: RemoteSipSignaling,
    readonly handle: string,
    snap: DialogSnapshot,
    private readonly registry: Map<string, DialogEntry>,
  ) {
    super();
    this.snap = snap;
  }

  get sipCallId(): string {
    return this.snap.sipCallId;
  }
  get callId(): string {
    return this.snap.callId;
  }
  get localSdp(): string {
    return this.snap.localSdp;
  }
  get remoteSdp(): string | undefined {
    return this.snap.remoteSdp;
  }
  get dialogId(): SipDialogId | undefined {
    return this.snap.dialogId;
  }

  /** Idempotent, as the stack's own: a call that is over resolves at once. */
  hangup(): Promise<void> {
    if (this.over) return Promise.resolve();
    return this.sip.ask<void>(this.handle, { op: "hangup" });
  }

  reinvite(sdp: string): Promise<string> {
    return this.live("re-INVITE", () => this.sip.ask<string>(this.handle, { op: "reinvite", sdp }));
  }

  sendInfo(contentType: string, body: string): Promise<number> {
    return this.live("send INFO", () => this.sip.ask<number>(this.handle, { op: "sendInfo", contentType, body }));
  }

  /** The call is over: the owner may forget its handle. Idempotent. */
  private release(): void {
    if (!this.registry.delete(this.handle)) return;
    this.sip.send({ t: "sip.release", h: this.handle });
  }

  /** Whether the owner reported the call's end (its handle is released). */
  protected get over(): boolean {
    return !this.registry.has(this.handle);
  }

  /** The operation, or the stack's own refusal once the call is over. */
  protected live<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.over) return Promise.reject(new SipCallStateError(this.callId, this.sipCallId, `cannot ${what}: the call is over`));
    return run();
  }

  /** @internal */
  receive(snap: DialogSnapshot, event: WireDialogEvent | undefined): void {
    this.snap = snap;
    if (event) this.dispatch(event);
  }

  private dispatch(e: WireDialogEvent): void {
    const emit = this.emit.bind(this) as (name: string, ...args: unknown[]) => boolean;
    switch (e.name) {
      case "reinvite":
      case "update": {
        const respond = once((answer: ReinviteAnswer) => this.sip.send({ t: "sip.respond", h: this.handle, respondId: e.respondId, answer }));
        if (e.name === "reinvite") emit("reinvite", e.offerSdp, respond);
        else emit("update", e.offerSdp, respond, e.early);
        return;
      }
      case "refer":
        emit("refer", new RemoteReferRequest(this.sip, this.handle, e.refer));
        return;
      case "refreshed":
        emit("refreshed", e.by);
        return;
      case "info":
        emit("info", e.contentType, e.body);
        return;
      case "ended":
        this.release();
        emit("ended", e.reason);
        return;
      case "provisional":
        emit("provisional", e.status, e.reason, e.sdp);
        return;
      case "answered":
        emit("answered", e.remoteSdp);
        return;
      case "failed":
        this.release();
        emit("failed", e.status, e.reason, e.kind);
        return;
      case "cancel":
        this.release();
        emit("cancel");
        return;
      case "state":
        // A call the worker refused (reject) ends with this state alone, no terminal event; one that
        // has a terminal event gets it right after. Either way its handle is let go.
        if (e.state === "terminated") setTimeout(() => this.release(), TERMINATED_KEPT_MS).unref();
        emit("state", e.state);
        return;
      case "confirmed":
        emit("confirmed");
        return;
    }
  }
}

class RemoteOutgoingCall extends RemoteDialog<OutgoingSipCallEvents> implements OutgoingSipCall {
  /** Until the owner reports the INVITE it sent, the call is `calling` with the offer it was placed with. */
  constructor(sip: RemoteSipSignaling, handle: string, ids: { sipCallId: string; callId: string; localSdp: string }, registry: Map<string, DialogEntry>) {
    super(sip, handle, { ...ids, state: "calling", remoteSdp: undefined, dialogId: undefined }, registry);
  }

  get state(): OutgoingCallState {
    return this.snap.state as OutgoingCallState;
  }

  cancel(): Promise<void> {
    if (this.over) return Promise.resolve();
    return this.sip.ask<void>(this.handle, { op: "cancel" });
  }
}

class RemoteIncomingCall extends RemoteDialog<IncomingSipCallEvents> implements IncomingSipCall {
  readonly from: SipParty;
  readonly to: SipParty;
  readonly requestUri: string;
  readonly replaces: SipReplaces | undefined;
  readonly source: { address: string; port: number; transport: "udp" | "tcp" | "tls" };
  private readonly headers: Record<string, string>;

  constructor(sip: RemoteSipSignaling, handle: string, snap: IncomingSnapshot, registry: Map<string, DialogEntry>) {
    super(sip, handle, snap, registry);
    this.from = snap.from;
    this.to = snap.to;
    this.requestUri = snap.requestUri;
    this.replaces = snap.replaces;
    this.source = snap.source;
    this.headers = snap.headers;
  }

  get state(): IncomingCallState {
    return this.snap.state as IncomingCallState;
  }

  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()];
  }

  ringing(sdp?: string): void {
    this.sip.tell(this.handle, { op: "ringing", sdp });
  }

  accept(sdp: string): Promise<boolean> {
    return this.sip.ask<boolean>(this.handle, { op: "accept", sdp });
  }

  reject(status: number, reason?: string, headers?: Record<string, string | readonly string[]>): void {
    this.sip.tell(this.handle, { op: "reject", status, reason, headers });
  }
}

class RemoteReferRequest implements SipReferRequest {
  readonly referTo: SipReferTarget;
  readonly referredBy: string | undefined;
  readonly subscription: boolean;

  constructor(
    private readonly sip: RemoteSipSignaling,
    private readonly handle: string,
    private readonly snap: ReferSnapshot,
  ) {
    this.referTo = snap.referTo;
    this.referredBy = snap.referredBy;
    this.subscription = snap.subscription;
  }

  header(name: string): string | undefined {
    return this.snap.headers[name.toLowerCase()];
  }

  accept(): void {
    this.sip.tell(this.handle, { op: "refer.accept", referId: this.snap.id });
  }

  reject(status: number, reason?: string): void {
    this.sip.tell(this.handle, { op: "refer.reject", referId: this.snap.id, status, reason });
  }

  notify(sipfrag: string, final: boolean): Promise<void> {
    return this.sip.ask<void>(this.handle, { op: "refer.notify", referId: this.snap.id, sipfrag, final });
  }
}

function once<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let done = false;
  return (...args: A) => {
    if (done) return;
    done = true;
    fn(...args);
  };
}
