import type { VideoSendOptions } from "./consumer-video.js";

/**
 * What the simulator needs from the consumer behind Meta's edge for one call. SimConsumer (werift)
 * is the default; another WebRTC stack (e.g. a Chromium page, sim/browser-consumer.ts) can play the
 * consumer through `placeCall({ consumer })`. Failures are SimulatorErrors: ConsumerClosedError once
 * closed, ConsumerNegotiationError for SDP the stack refused, SimStateError for a wrong moment.
 */
export interface ConsumerPeer {
  /** Answers the business's first offer (accept or connect); the answer goes back in `sdp_response`. */
  answerOffer(offerSdp: string): Promise<string>;
  /**
   * Meta's first re-offer (accept `sdp_renegotiation`, or the pickup media_update): the consumer's own
   * sending m-line (and a camera already on). The business's answer never comes back: the peer infers it.
   */
  createSplitReoffer(): Promise<string>;
  /** A further re-offer of the current media state (media_update webhook); answer inferred as above. */
  createReoffer(): Promise<string>;
  /** Camera on: the re-offer for a media_update webhook, or undefined before the first re-offer (which then carries it). */
  startVideo(options: VideoSendOptions): Promise<string | undefined>;
  /** Camera off: the re-offer for a media_update webhook, or undefined when nothing needs renegotiating. */
  stopVideo(): Promise<string | undefined>;
  /** Answers an offer the business sends with a media_update request. */
  answerBusinessReoffer(offerSdp: string): Promise<string>;
  /** Resolves once at least `count` audio RTP packets arrived from the business. */
  waitForPackets(count: number, timeoutMs: number): Promise<void>;
  /** Frees everything; later operations fail with ConsumerClosedError. */
  close(): Promise<void>;
}
