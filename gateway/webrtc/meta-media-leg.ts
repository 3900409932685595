import type { EventEmitter } from "node:events";
import type { MetaLeg, MetaLegEvents } from "./meta-leg.js";

/**
 * What a call uses of its leg toward Meta, whichever way the media is keyed: DTLS-SRTP over ICE
 * (MetaLeg, werift) or SDES-keyed SRTP without ICE or DTLS (SdesMetaLeg, WhatsApp numbers set to
 * `srtp_key_exchange_protocol: SDES`).
 */
export type MetaMediaLeg = Pick<
  MetaLeg,
  | "callId"
  | "state"
  | "sendsVideo"
  | "videoOutMsid"
  | "createOffer"
  | "applyAnswer"
  | "answerInitialOffer"
  | "applyOffer"
  | "waitConnected"
  | "sendAudio"
  | "telephoneEventPayloadType"
  | "inboundCodec"
  | "opusPayloadType"
  | "offerOutboundVideo"
  | "applyRenegotiationAnswer"
  | "rollbackLocalOffer"
  | "pauseVideo"
  | "sendVideo"
  | "inboundVideoCodec"
  | "requestKeyframe"
  | "stats"
  | "quality"
  | "close"
> &
  Pick<EventEmitter<MetaLegEvents>, "on" | "once" | "off">;
