import { dialogListeners } from "../dialog-events.js";
import { SipCallStateError } from "../errors.js";
import { IncomingCallCore } from "../incoming-call-core.js";
import type { IncomingSipCall, SipDialogId, SipParty, SipReplaces } from "../signaling.js";
import { ALLOWED_METHODS, joinHeaderLines, readParty, tlsContactFor } from "./message.js";
import type { DrachtioCallContext, DrachtioLiveCall } from "./outgoing-call.js";
import { DrachtioSession } from "./session.js";
import type { SrfRequest, SrfServerResponse } from "./srf.js";

/**
 * A call the PBX places to us through drachtio-server (which has already sent 100 Trying): 18x,
 * a 2xx through createUAS, or a rejection; a CANCEL before our final answer has been answered
 * 200 + 487 by drachtio-server and is reported here.
 */
export class DrachtioIncomingCall extends IncomingCallCore<DrachtioSession> implements IncomingSipCall, DrachtioLiveCall {
  readonly from: SipParty;
  readonly to: SipParty;
  readonly requestUri: string;
  readonly source: { address: string; port: number; transport: "udp" | "tcp" | "tls" };

  constructor(
    private readonly ctx: DrachtioCallContext,
    private readonly req: SrfRequest,
    private readonly res: SrfServerResponse,
    incomingAnswerTimeoutMs: number,
    /** A Replaces header naming a live dialog of ours (checked by the signalling). */
    readonly replaces: SipReplaces | undefined = undefined,
  ) {
    const sipCallId = req.get("call-id") ?? "";
    super(sipCallId, sipCallId, ctx.logger);
    this.source = {
      address: req.source_address,
      port: req.source_port,
      transport: sourceTransport(req.protocol),
    };
    this.requestUri = req.uri;
    this.from = readParty(req.get("from"));
    this.to = readParty(req.get("to"));
    this.offered = req.body || undefined;
    req.on("cancel", () => this.onCancel());
    this.armAnswerTimer(incomingAnswerTimeoutMs);
  }

  /** Known once answered: drachtio-server chooses our tag. */
  get dialogId(): SipDialogId | undefined {
    return this.session?.dialogId;
  }

  dialogInfo(): { id: SipDialogId; phase: "early" | "confirmed" | "ending"; weAreUac: boolean } | undefined {
    const id = this.dialogId;
    if (!id || this.currentState === "terminated") return undefined;
    return { id, phase: this.currentState === "terminating" ? "ending" : "confirmed", weAreUac: false };
  }

  header(name: string): string | undefined {
    return this.req.get(name);
  }

  ringing(sdp?: string): void {
    if (!this.answerable) return;
    const headers: Record<string, string> = { "User-Agent": this.ctx.userAgent };
    if (sdp) headers["Content-Type"] = "application/sdp";
    const contact = tlsContactFor(this.req);
    if (contact) headers.Contact = contact;
    this.send(sdp ? 183 : 180, sdp ? "Session Progress" : "Ringing", { headers, ...(sdp ? { body: sdp } : {}) });
    this.setState("early");
  }

  accept(sdp: string): Promise<boolean> {
    if (!this.answerable) return Promise.reject(new SipCallStateError(this.callId, this.sipCallId, `cannot accept in state ${this.currentState}`));
    this.clearAnswerTimer();
    this.localAnswer = sdp;
    this.setState("accepted");
    return new Promise<boolean>((resolve) => {
      const contact = tlsContactFor(this.req);
      const headers = { "Content-Type": "application/sdp", Allow: ALLOWED_METHODS, "User-Agent": this.ctx.userAgent, ...(contact ? { Contact: contact } : {}) };
      try {
        this.ctx.srf.createUAS(this.req, this.res, { localSdp: sdp, headers }, (err, dialog) => {
          if (err || !dialog) {
            // Cancelled as we answered, or the connection went: no dialog came of it.
            this.ctx.logger.info({ sipCallId: this.sipCallId, err: err?.message }, "our 200 OK could not be sent");
            this.finishWithout(resolve);
            return;
          }
          if (this.currentState !== "accepted") {
            // The call was ended (stop, lost connection) while the 200 was on its way.
            try {
              dialog.destroy({ headers: { "User-Agent": this.ctx.userAgent } }, () => {});
            } catch {
              // no connection
            }
            resolve(false);
            return;
          }
          this.session = new DrachtioSession(dialog, {
            callId: this.callId,
            localSdp: sdp,
            remoteSdp: this.offered,
            credentials: undefined,
            ownsCallId: false,
            awaitingAck: true,
            userAgent: this.ctx.userAgent,
            logger: this.ctx.logger,
            reinviteAnswerTimeoutMs: this.ctx.reinviteAnswerTimeoutMs,
            referSubscriptionS: this.ctx.referSubscriptionS,
            hooks: dialogListeners(this, (reason) => this.onSessionEnded(reason)),
          });
          void this.session.awaitAck().then((acked) => {
            if (acked && this.currentState === "accepted") {
              this.setState("confirmed");
              this.emit("confirmed");
            }
            resolve(acked);
          });
        });
      } catch (err) {
        this.ctx.logger.warn({ sipCallId: this.sipCallId, err: (err as Error).message }, "our 200 OK could not be sent");
        this.finishWithout(resolve);
      }
    });
  }

  /** Accepting failed before a dialog existed: the call is over, with nothing more to send. */
  private finishWithout(resolve: (acked: boolean) => void): void {
    if (this.currentState !== "terminated") {
      this.setState("terminated");
      this.done();
    }
    resolve(false);
  }

  protected sendRejection(status: number, reason: string, headers: Record<string, string | readonly string[]> | undefined): void {
    const all: Record<string, string> = { "User-Agent": this.ctx.userAgent };
    for (const [name, value] of Object.entries(headers ?? {})) all[name] = joinHeaderLines(name, value);
    this.send(status, reason, { headers: all });
  }

  private onCancel(): void {
    if (!this.answerable) return; // already answered: the CANCEL has no effect (§9.2)
    this.setState("terminated");
    this.emit("cancel");
    this.done();
  }

  connectionLost(): string | undefined {
    if (this.answerable) {
      // Nothing can answer the INVITE any more; drachtio-server's transaction times out on its own.
      this.setState("terminated");
      this.emit("cancel");
      this.done();
      return undefined;
    }
    const session = this.session;
    if (!session) {
      if (this.currentState === "accepted") {
        this.setState("terminated");
        this.done();
      }
      return undefined;
    }
    const id = session.dialog.id;
    this.ctx.srf.removeDialog(session.dialog);
    session.terminate("signalling-lost");
    return id;
  }

  private send(status: number, reason: string, opts: { headers: Record<string, string>; body?: string }): void {
    try {
      this.res.send(status, reason, opts);
    } catch (err) {
      this.ctx.logger.debug({ err, sipCallId: this.sipCallId, status }, "response could not be sent");
    }
  }

  protected released(): void {
    this.ctx.callEnded(this);
  }
}

function sourceTransport(protocol: string): "udp" | "tcp" | "tls" {
  const p = protocol.toLowerCase();
  return p === "tcp" || p === "tls" ? p : "udp";
}
