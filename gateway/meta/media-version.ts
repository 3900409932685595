/**
 * Messenger's media version rules (meta-calling-api.md §6), as pure logic the call session drives.
 *
 * The version starts at 0 when the call starts and goes up by one for each offer we make and each
 * media_update webhook applied. Meta's webhook carries its own version; the highest one wins and
 * older ones are stale. Our media_update requests carry from_version/to_version. When both sides
 * change media at once, Meta answers our request with a 200 without SDP or a "conflicting media
 * status" error: we roll our offer back, apply Meta's offer (its webhook is on the way), and retry
 * from the new version, a bounded number of times.
 */

export type MediaNegotiationState =
  /** Nothing in flight. */
  | "stable"
  /** Our media_update request is in flight. */
  | "local-offer"
  /** Our request collided; waiting for Meta's offer before retrying. */
  | "collided";

export interface RemoteOffer {
  version: number;
  sdp: string;
}

/** What the session must do about a media_update webhook. */
export type WebhookDecision =
  | { kind: "apply"; offer: RemoteOffer }
  | { kind: "drop"; reason: "stale" | "duplicate" }
  /** A local offer is in flight: keep the webhook until its outcome is known. */
  | { kind: "hold" };

/** What the session must do with the outcome of our media_update request. */
export type LocalOutcomeDecision =
  /** Apply Meta's answer; then, if present, its re-offer (answered locally). */
  | { kind: "applied"; answer: string; reoffer: RemoteOffer | undefined; heldOffers: RemoteOffer[] }
  /** Collision: roll back our offer, apply these held offers (maybe none yet), then retry. */
  | { kind: "collision"; heldOffers: RemoteOffer[]; retry: boolean }
  /** A definite failure: roll back, apply held offers, give up on this change. */
  | { kind: "failed"; heldOffers: RemoteOffer[] };

export type LocalOutcome =
  | { kind: "response"; answer?: string; reoffer?: string }
  | { kind: "conflict" }
  | { kind: "error" };

export class MediaVersionError extends Error {
  override readonly name = "MediaVersionError";
}

export class MediaVersionMachine {
  private _version = 0;
  private _state: MediaNegotiationState = "stable";
  private pendingTo: number | undefined;
  private held: RemoteOffer[] = [];
  private retries = 0;

  constructor(private readonly maxRetries = 3) {}

  get version(): number {
    return this._version;
  }

  get state(): MediaNegotiationState {
    return this._state;
  }

  /** A media_update webhook arrived. */
  onWebhook(offer: RemoteOffer): WebhookDecision {
    if (offer.version < this._version) return { kind: "drop", reason: "stale" };
    if (offer.version === this._version) return { kind: "drop", reason: "duplicate" };
    if (this.held.some((h) => h.version === offer.version)) return { kind: "drop", reason: "duplicate" };
    if (this._state === "local-offer") {
      this.held.push(offer);
      this.held.sort((a, b) => a.version - b.version);
      return { kind: "hold" };
    }
    return { kind: "apply", offer };
  }

  /** The session applied (and answered locally) a remote offer. */
  remoteApplied(version: number): void {
    if (version > this._version) this._version = version;
    if (this._state === "collided") this._state = "stable";
  }

  /** Whether a collided change may be retried now (its awaited Meta offer has been applied). */
  get readyToRetry(): boolean {
    return this._state === "stable" && this.retries > 0;
  }

  /** We are about to send a media_update with an offer: the versions to put in it. */
  beginLocalOffer(): { fromVersion: number; toVersion: number } {
    if (this._state === "local-offer") throw new MediaVersionError("a local media_update is already in flight");
    this._state = "local-offer";
    this.pendingTo = this._version + 1;
    return { fromVersion: this._version, toVersion: this.pendingTo };
  }

  /** The outcome of our media_update request. */
  onLocalOutcome(outcome: LocalOutcome): LocalOutcomeDecision {
    if (this._state !== "local-offer" || this.pendingTo === undefined) {
      throw new MediaVersionError(`no local media_update in flight (state ${this._state})`);
    }
    const to = this.pendingTo;
    this.pendingTo = undefined;
    const heldOffers = this.takeHeld();
    if (outcome.kind === "response" && outcome.answer !== undefined) {
      this._state = "stable";
      this.retries = 0;
      this._version = Math.max(this._version, to);
      let reoffer: RemoteOffer | undefined;
      if (outcome.reoffer !== undefined) reoffer = { version: this._version + 1, sdp: outcome.reoffer };
      // Held webhooks older than what the response already brought are stale now.
      const newest = reoffer?.version ?? this._version;
      return { kind: "applied", answer: outcome.answer, reoffer, heldOffers: heldOffers.filter((h) => h.version > newest) };
    }
    if (outcome.kind === "error") {
      this._state = "stable";
      this.retries = 0;
      return { kind: "failed", heldOffers };
    }
    // A 200 without SDP, or the conflict error: Meta has an offer of its own in flight.
    this.retries++;
    const retry = this.retries <= this.maxRetries;
    if (!retry) this.retries = 0;
    this._state = heldOffers.length > 0 || !retry ? "stable" : "collided";
    return { kind: "collision", heldOffers, retry };
  }

  /** Stop waiting for Meta's offer after a collision (it never came): retry from where we are. */
  giveUpWaiting(): void {
    if (this._state === "collided") this._state = "stable";
  }

  private takeHeld(): RemoteOffer[] {
    const h = this.held;
    this.held = [];
    return h;
  }
}
