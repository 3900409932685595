import type { Logger } from "pino";
import { GraphApiError } from "../meta/graph-errors.js";
import type { WhatsAppGraphClient } from "../meta/whatsapp-client.js";
import type { MetaMediaLeg } from "../webrtc/meta-media-leg.js";
import type { MetaMediaControl } from "./call-media.js";
import type { Platform } from "../meta/platform.js";

/** The Graph API calls a consumer-initiated Messenger call makes; the GraphClient provides them. */
export interface MetaCallControl extends MetaMediaControl {
  accept(callId: string, sdpOffer: string): Promise<{ answer: string; reoffer?: string }>;
  reject(callId: string): Promise<void>;
  terminate(callId: string): Promise<void>;
}

/**
 * What differs between platforms when a consumer calls the business: who offers, and what
 * accepting carries. InboundCall drives the rest (ringing, bridging, ending) the same way for both.
 */
export interface InboundSignalling {
  readonly platform: Platform;
  /** The Page or the WhatsApp phone-number id the call came to. */
  readonly businessId: string;
  /** Whether `prepare` runs before the target rings (WhatsApp pre-accepts first, as Meta advises). */
  readonly prepareBeforeRinging: boolean;
  /** Media changes once the call is up; undefined where the platform has none (WhatsApp). */
  readonly media: MetaMediaControl | undefined;
  /** SDP work while (or before) the target rings. */
  prepare(leg: MetaMediaLeg): Promise<void>;
  /** The target answered: `accept` at Meta. Throws GraphApiError when Meta refused or did not answer. */
  accept(correlation: string | undefined): Promise<void>;
  /** After accept's 200: what Meta sent back applied to the leg. Throws when it is unusable. */
  completeAccept(leg: MetaMediaLeg): Promise<void>;
  reject(): Promise<void>;
  terminate(): Promise<void>;
}

/**
 * Messenger: the connect webhook has no SDP. We offer (while the target rings) in `accept`; Meta
 * answers in the response and re-offers, and the consumer's audio arrives on the transceiver the
 * re-offer adds.
 */
export class MessengerInbound implements InboundSignalling {
  readonly platform = "messenger";
  readonly prepareBeforeRinging = false;
  private offer: string | undefined;
  private accepted: { answer: string; reoffer?: string } | undefined;

  constructor(
    private readonly callId: string,
    readonly businessId: string,
    private readonly meta: MetaCallControl,
    private readonly log: Logger,
  ) {}

  get media(): MetaMediaControl {
    return this.meta;
  }

  async prepare(leg: MetaMediaLeg): Promise<void> {
    this.offer = await leg.createOffer();
  }

  async accept(): Promise<void> {
    this.accepted = await this.meta.accept(this.callId, this.offer!);
  }

  async completeAccept(leg: MetaMediaLeg): Promise<void> {
    const { answer, reoffer } = this.accepted!;
    await leg.applyAnswer(answer);
    if (reoffer) await leg.applyOffer(reoffer);
    else this.log.warn("accept response carried no sdp_renegotiation; consumer audio may not arrive");
  }

  reject(): Promise<void> {
    return this.meta.reject(this.callId);
  }

  terminate(): Promise<void> {
    return this.meta.terminate(this.callId);
  }
}

/**
 * WhatsApp: Meta's offer is in the connect webhook. We answer it at once and `pre_accept` with
 * that answer before the PBX is even rung, so ICE and DTLS complete while it rings (Meta's
 * remedy for clipped first words); `accept` later carries the byte-identical answer.
 */
export class WhatsAppInbound implements InboundSignalling {
  readonly platform = "whatsapp";
  readonly prepareBeforeRinging = true;
  readonly media = undefined;
  private answer: string | undefined;

  constructor(
    private readonly callId: string,
    private readonly offer: string,
    private readonly client: WhatsAppGraphClient,
    private readonly log: Logger,
  ) {}

  async prepare(leg: MetaMediaLeg): Promise<void> {
    this.answer = await leg.answerInitialOffer(this.offer);
    try {
      await this.client.preAccept(this.callId, this.answer);
      this.log.info("pre_accept sent: media connects while the PBX rings");
    } catch (err) {
      // pre_accept is an optimisation: without it accept still connects the call, later. Only a
      // call Meta says is gone is given up here.
      if (err instanceof GraphApiError && err.errorClass === "call-gone") throw err;
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, "pre_accept failed; the call goes on to accept");
    }
  }

  async accept(correlation: string | undefined): Promise<void> {
    await this.client.accept(this.callId, this.answer!, correlation);
  }

  get businessId(): string {
    return this.client.phoneNumberId;
  }

  /** Nothing comes back in WhatsApp's accept response: the leg was complete since pre_accept. */
  async completeAccept(): Promise<void> {}

  reject(): Promise<void> {
    return this.client.reject(this.callId);
  }

  terminate(): Promise<void> {
    return this.client.terminate(this.callId);
  }
}
