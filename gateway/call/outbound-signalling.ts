import type { CallPermission } from "../meta/call-permission.js";
import type { WhatsAppGraphClient, WhatsAppRecipient } from "../meta/whatsapp-client.js";
import type { MetaMediaControl } from "./call-media.js";
import type { KeyExchange, Platform } from "../meta/platform.js";

/** The Graph API calls an agent's Messenger call to a consumer makes; the GraphClient provides them. */
export interface MetaOutboundControl extends MetaMediaControl {
  getCallPermission(psid: string): Promise<Pick<CallPermission, "status" | "canStartCall" | "canRequestPermission">>;
  requestCallPermission(psid: string): Promise<void>;
  connect(psid: string, sdpOffer: string): Promise<{ callId: string; answer: string }>;
  terminate(callId: string): Promise<void>;
}

/**
 * What differs between platforms when an agent calls a consumer. OutboundCall drives the rest
 * (permission, ringing, pickup, bridging, ending) the same way for both.
 */
export interface OutboundSignalling {
  readonly platform: Platform;
  /** The Page or the WhatsApp phone-number id the call is placed from. */
  readonly businessId: string;
  /** How the media toward Meta is keyed: DTLS, or SDES for WhatsApp numbers set to it. */
  readonly keyExchange: KeyExchange;
  /** Media changes once the call is up; undefined where the platform has none (WhatsApp). */
  readonly media: MetaMediaControl | undefined;
  /**
   * Messenger brings the consumer's media only with the media_update re-offer after pickup;
   * WhatsApp's answer (by webhook) already carries it.
   */
  readonly mediaNeedsPickupReoffer: boolean;
  permission(): Promise<Pick<CallPermission, "status" | "canStartCall" | "canRequestPermission">>;
  requestPermission(): Promise<void>;
  /**
   * `connect` with our offer; never retried (a retry could ring the consumer twice). Messenger
   * returns Meta's answer with the call id; WhatsApp's answer comes later by webhook.
   */
  connect(offer: string, correlation: string): Promise<{ callId: string; answer?: string }>;
  terminate(callId: string): Promise<void>;
}

export class MessengerOutbound implements OutboundSignalling {
  readonly platform = "messenger";
  readonly keyExchange = "DTLS";
  readonly mediaNeedsPickupReoffer = true;

  constructor(
    private readonly psid: string,
    readonly businessId: string,
    private readonly meta: MetaOutboundControl,
  ) {}

  get media(): MetaMediaControl {
    return this.meta;
  }

  permission(): ReturnType<OutboundSignalling["permission"]> {
    return this.meta.getCallPermission(this.psid);
  }

  requestPermission(): Promise<void> {
    return this.meta.requestCallPermission(this.psid);
  }

  connect(offer: string): Promise<{ callId: string; answer: string }> {
    return this.meta.connect(this.psid, offer);
  }

  terminate(callId: string): Promise<void> {
    return this.meta.terminate(callId);
  }
}

export class WhatsAppOutbound implements OutboundSignalling {
  readonly platform = "whatsapp";
  readonly mediaNeedsPickupReoffer = false;
  readonly media = undefined;

  constructor(
    private readonly to: WhatsAppRecipient,
    private readonly client: WhatsAppGraphClient,
    readonly keyExchange: KeyExchange = "DTLS",
  ) {}

  get businessId(): string {
    return this.client.phoneNumberId;
  }

  permission(): ReturnType<OutboundSignalling["permission"]> {
    return this.client.getCallPermission(this.to);
  }

  requestPermission(): Promise<void> {
    return this.client.requestCallPermission(this.to);
  }

  connect(offer: string, correlation: string): Promise<{ callId: string }> {
    return this.client.connect(this.to, offer, correlation);
  }

  terminate(callId: string): Promise<void> {
    return this.client.terminate(callId);
  }
}
