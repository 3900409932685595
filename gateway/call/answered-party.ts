import { EventEmitter } from "node:events";
import type { IncomingSipCall, SipDialogId } from "../../sip/signaling.js";
import type { PbxLeg } from "./pbx-leg.js";
import type { CallTarget, CallTargetEvents } from "./target.js";

/**
 * A party that joined a call by an INVITE of its own (RFC 3891 Replaces): already answered, so it
 * never rings; it ends when its dialog does.
 */
export class AnsweredParty extends EventEmitter<CallTargetEvents> implements CallTarget {
  readonly kind = "sip-replaces";
  private ended = false;

  constructor(
    private readonly sip: IncomingSipCall,
    private readonly leg: PbxLeg,
  ) {
    super();
    sip.on("ended", (reason) => {
      if (this.ended) return;
      this.ended = true;
      void leg.close();
      this.emit("ended", reason === "remote-bye" ? "PBX hung up" : `SIP dialog ended (${reason})`);
    });
  }

  get dialogId(): SipDialogId | undefined {
    return this.sip.dialogId;
  }

  ring(): void {
    // Answered when it arrived.
  }

  async hangup(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.removeAllListeners();
    // The BYE's transaction completes on its own (RFC 3261 §15.1.1): media is released at once.
    this.sip.hangup().catch(() => undefined);
    await this.leg.close();
  }
}
