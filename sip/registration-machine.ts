import { EventEmitter } from "node:events";
import type { SipLogger } from "./logger.js";

/**
 * The life of one registration binding (RFC 3261 §10), whichever SIP stack carries its REGISTERs:
 * digest rounds, 423 Interval Too Brief, the refresh before expiry, exponential back-off after a
 * failure, re-registration when the connection the binding stands on closes, and the removal
 * (Expires: 0) on stop. A backend supplies only the transport hook that puts one REGISTER on the
 * wire and reads its final response.
 */

export type RegistrationState = "registering" | "registered" | "failed" | "stopped";

export interface RegistrationEvents {
  state: [RegistrationState];
}

/** A final response to one REGISTER, as the state machine needs it read. */
export interface RegisterOutcome {
  status: number;
  reason: string;
  /** A 423's Min-Expires, when it is a whole number. */
  minExpiresS: number | undefined;
  /** What a 2xx granted our Contact: its expires parameter, else the Expires header. */
  grantedExpiresS: number | undefined;
  /**
   * For a 401/407: takes its challenges for the next REGISTER. False when there is nothing new to
   * answer (no credentials, no usable challenge, or the nonce just answered refused again).
   */
  acceptChallenge(): boolean;
  /**
   * For a 2xx that came on a connection (TCP/TLS) the stack can hold: keeps it while the binding
   * stands and calls `lost` once when it closes. Returns what lets it go.
   */
  holdConnection?(lost: () => void): () => void;
}

/** A REGISTER on its way; abandoning it drops whatever its response would have done. */
export interface RegisterAttempt {
  abandon(): void;
}

/** What a SIP stack provides: one REGISTER of the binding, with its next CSeq and current credentials. */
export interface RegistrationTransport {
  /**
   * Sends one REGISTER asking for `expiresS` (0 removes the binding), carrying answers to every
   * challenge accepted so far. `onFinal` is called once with the final response, or with one the
   * transport makes up (408, 503) when none can come; never synchronously.
   */
  send(expiresS: number, onFinal: (rs: RegisterOutcome) => void): RegisterAttempt;
}

export interface RegistrationMachineOptions {
  /** For log lines: the registrar URI and the address of record. */
  registrar: string;
  aor: string;
  /** Expiry asked for, in seconds. */
  expiresS: number;
  /** First retry after a failure; doubled up to maxRetryMs. Defaults 5 s and 300 s. */
  retryMs?: number;
  maxRetryMs?: number;
}

/** Refresh this long before the binding expires (at most half of it): a late refresh loses the binding. */
export const REFRESH_MARGIN_S = 30;
/** Challenges answered in a row before the REGISTER counts as refused. */
export const MAX_AUTH_ROUNDS = 2;
/** Longest wait for the removal's answer at stop. */
export const UNREGISTER_WAIT_MS = 2_000;
/** A 423's Min-Expires above this is not followed (one day). */
const MAX_MIN_EXPIRES_S = 86_400;
/** The longest wait before a refresh. */
const MAX_REFRESH_S = 86_400;

/**
 * When to refresh a binding granted for `grantedS` seconds, in seconds from now: at least daily,
 * whatever a registrar grants (a timer past 24.8 days would fire at once).
 */
export function refreshDelayS(grantedS: number): number {
  return Math.min(MAX_REFRESH_S, Math.max(1, grantedS - Math.min(REFRESH_MARGIN_S, grantedS / 2)));
}

/** The wait before retry number `failures` (0 = the first), doubling up to the ceiling. */
export function retryDelayMs(failures: number, firstMs = 5_000, maxMs = 300_000): number {
  return Math.min(firstMs * 2 ** failures, maxMs);
}

export class RegistrationMachine extends EventEmitter<RegistrationEvents> {
  private current: RegistrationState = "registering";
  private timer: NodeJS.Timeout | undefined;
  private pending: RegisterAttempt | undefined;
  private failures = 0;
  private requestedExpiresS: number;
  /** The held connection's release, and a token telling its own loss from a replaced one's. */
  private held: { token: object; release: () => void } | undefined;

  constructor(
    private readonly transport: RegistrationTransport,
    private readonly o: RegistrationMachineOptions,
    private readonly logger: SipLogger,
  ) {
    super();
    this.requestedExpiresS = o.expiresS;
  }

  get state(): RegistrationState {
    return this.current;
  }

  start(): void {
    if (this.current === "stopped") return;
    this.send(this.requestedExpiresS, 0);
  }

  /**
   * Registers again at once, dropping a REGISTER still waiting for its answer: the path to the
   * registrar was lost and is back, so the binding may be gone and a pending answer never come.
   */
  refreshNow(): void {
    if (this.current === "stopped") return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending?.abandon();
    this.pending = undefined;
    this.start();
  }

  /** Removes the binding (best effort, bounded wait) and stops refreshing. */
  async stop(): Promise<void> {
    if (this.current === "stopped") return;
    const wasRegistered = this.current === "registered";
    this.setState("stopped");
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending?.abandon();
    this.pending = undefined;
    if (!wasRegistered) return this.releaseHeld();
    await new Promise<void>((resolve) => {
      const done = setTimeout(resolve, UNREGISTER_WAIT_MS);
      this.send(0, 0, (rs) => {
        // A fresh nonce is answered once, so the binding really goes.
        if ((rs.status === 401 || rs.status === 407) && rs.acceptChallenge()) {
          this.send(0, 1, () => {
            clearTimeout(done);
            resolve();
          });
          return;
        }
        clearTimeout(done);
        resolve();
      });
    });
    this.releaseHeld();
  }

  private send(expiresS: number, authRounds: number, onFinal?: (rs: RegisterOutcome) => void): void {
    const attempt = this.transport.send(expiresS, (rs) => {
      if (this.pending === attempt) this.pending = undefined;
      if (onFinal) return onFinal(rs);
      if (this.current === "stopped") return;
      this.onFinal(rs, expiresS, authRounds);
    });
    if (!onFinal) this.pending = attempt;
  }

  private onFinal(rs: RegisterOutcome, expiresS: number, authRounds: number): void {
    if ((rs.status === 401 || rs.status === 407) && authRounds < MAX_AUTH_ROUNDS && rs.acceptChallenge()) {
      this.send(expiresS, authRounds + 1);
      return;
    }
    if (rs.status === 423) {
      // Interval Too Brief (§10.2.8): ask again with the registrar's minimum.
      const min = rs.minExpiresS;
      if (min !== undefined && min > expiresS && min <= MAX_MIN_EXPIRES_S) {
        this.requestedExpiresS = min;
        this.send(min, authRounds);
        return;
      }
    }
    if (rs.status >= 200 && rs.status < 300) {
      const granted = rs.grantedExpiresS ?? expiresS;
      this.failures = 0;
      const fields = { registrar: this.o.registrar, aor: this.o.aor, expiresS: granted };
      if (this.current !== "registered") this.logger.info(fields, "SIP registration in place");
      else this.logger.debug(fields, "SIP registration refreshed");
      this.hold(rs);
      this.setState("registered");
      this.schedule(refreshDelayS(granted) * 1000, () => this.start());
      return;
    }
    const retryMs = retryDelayMs(this.failures, this.o.retryMs, this.o.maxRetryMs);
    this.failures++;
    this.logger.warn({ registrar: this.o.registrar, aor: this.o.aor, status: rs.status, reason: rs.reason, retryInMs: retryMs }, "SIP registration failed");
    this.setState("failed");
    this.schedule(retryMs, () => this.start());
  }

  /**
   * Holds the connection the 2xx came on. When it closes (a keep-alive went unanswered, the
   * registrar dropped it), the binding is made again at once on a new one (RFC 5626 §4.4.1).
   */
  private hold(rs: RegisterOutcome): void {
    const previous = this.held;
    this.held = undefined;
    if (rs.holdConnection) {
      const token = {};
      const release = rs.holdConnection(() => {
        if (this.held?.token !== token) return;
        this.held = undefined;
        if (this.current !== "registered") return;
        this.logger.warn({ registrar: this.o.registrar, aor: this.o.aor }, "SIP connection to the registrar closed; registering again");
        this.schedule(0, () => this.start());
      });
      this.held = { token, release };
    }
    previous?.release();
  }

  private releaseHeld(): void {
    const held = this.held;
    this.held = undefined;
    held?.release();
  }

  private schedule(ms: number, run: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.current !== "stopped") run();
    }, ms);
    this.timer.unref();
  }

  private setState(state: RegistrationState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit("state", state);
  }
}
