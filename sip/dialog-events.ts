import type { ReinviteAnswer, SipDialogEvents, SipEndReason, SipReferRequest } from "./signaling.js";

/** The part of a call's emitter that its dialog's requests are reported through, in either direction. */
export interface DialogEventTarget {
  listenerCount(eventName: keyof SipDialogEvents): number;
  emit<K extends keyof SipDialogEvents>(eventName: K, ...args: SipDialogEvents[K]): boolean;
}

/** What a confirmed dialog's session hands its call, on either backend. */
export interface DialogListeners {
  /** False when nobody listens: the session answers with the current local SDP. */
  onReinvite(offerSdp: string, respond: (answer: ReinviteAnswer) => void): boolean;
  /** False when nobody listens for UPDATEs or re-INVITEs. */
  onUpdate(offerSdp: string, respond: (answer: ReinviteAnswer) => void): boolean;
  /** False when nobody listens: answered 603. */
  onRefer(request: SipReferRequest): boolean;
  onRefreshed(by: "local" | "remote"): void;
  onInfo(contentType: string, body: string): void;
  onEnded(reason: SipEndReason): void;
}

/** A confirmed dialog's requests as the call's events (`onEnded` is the call's own). */
export function dialogListeners(call: DialogEventTarget, onEnded: (reason: SipEndReason) => void): DialogListeners {
  return {
    onReinvite: (offer, respond) => {
      if (call.listenerCount("reinvite") === 0) return false;
      call.emit("reinvite", offer, respond);
      return true;
    },
    onUpdate: (offer, respond) => deliverUpdate(call, offer, respond, false),
    onRefer: (request) => {
      if (call.listenerCount("refer") === 0) return false;
      call.emit("refer", request);
      return true;
    },
    onRefreshed: (by) => call.emit("refreshed", by),
    onInfo: (contentType, body) => call.emit("info", contentType, body),
    onEnded,
  };
}

/**
 * An UPDATE's offer to the call: `update` listeners first; in a confirmed dialog the `reinvite` ones
 * stand in (it means the same); in an early one nobody listening is a 488. False: nobody listens.
 */
export function deliverUpdate(call: DialogEventTarget, offer: string, respond: (a: ReinviteAnswer) => void, early: boolean): boolean {
  if (call.listenerCount("update") > 0) {
    call.emit("update", offer, respond, early);
    return true;
  }
  if (!early && call.listenerCount("reinvite") > 0) {
    call.emit("reinvite", offer, respond);
    return true;
  }
  if (early) {
    respond({ status: 488, reason: "Not Acceptable Here" });
    return true;
  }
  return false;
}
