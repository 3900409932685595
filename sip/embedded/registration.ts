import { EventEmitter } from "node:events";
import sip from "sip";
import type { SipLogger } from "../logger.js";
import { DigestAuthenticator } from "./authenticator.js";
import { checkSipUri, randomToken, type SipResponse } from "./message.js";
import type { ClientTransactionHandle, OutgoingRequest, SipStack } from "./stack.js";
import type { FlowLease } from "./transport.js";

export interface SipRegistrationOptions {
  /** Registrar URI, e.g. `sip:pbx.example.com` or `sips:pbx.example.com:5061`. */
  registrar: string;
  /** User part of the address of record (`sip:<user>@<registrar host>`) and of our Contact. */
  user: string;
  /** Digest credentials for the registrar's 401/407; undefined = none offered. */
  auth: { username: string; password: string } | undefined;
  /** Expiry we ask for, in seconds. */
  expiresS: number;
  /** First retry after a failure; doubled up to maxRetryMs. Defaults 5 s and 300 s. */
  retryMs?: number;
  maxRetryMs?: number;
}

export type RegistrationState = "registering" | "registered" | "failed" | "stopped";

export interface SipRegistrationEvents {
  state: [RegistrationState];
}

/** Refresh this long before the binding expires (at most half of it): a late refresh loses the binding. */
const REFRESH_MARGIN_S = 30;
const MAX_AUTH_ROUNDS = 2;
const UNREGISTER_WAIT_MS = 2_000;

/**
 * One registration binding (RFC 3261 §10): REGISTER with digest, refreshed before it expires,
 * retried with exponential back-off after a failure, and removed (Expires: 0) on stop. One
 * Call-ID and increasing CSeq for its whole life (§10.2.4).
 */
export class SipRegistration extends EventEmitter<SipRegistrationEvents> {
  private readonly callId: string;
  private readonly fromTag = randomToken();
  private cseq = 1;
  private current: RegistrationState = "registering";
  private timer: NodeJS.Timeout | undefined;
  private pending: ClientTransactionHandle | undefined;
  private failures = 0;
  private readonly aor: string;
  private requestedExpiresS: number;
  /** Kept across refreshes: a registrar's nonce is answered again (nc counting up) without a new 401. */
  private readonly auth: DigestAuthenticator;
  /** The TCP/TLS connection the binding was made on, held and kept alive (RFC 5626) while it stands. */
  private flow: FlowLease | undefined;

  constructor(
    private readonly stack: SipStack,
    private readonly o: SipRegistrationOptions,
    private readonly logger: SipLogger,
  ) {
    super();
    const registrar = checkSipUri(o.registrar, { tls: stack.supports("TLS") });
    this.aor = `${registrar.schema}:${o.user}@${registrar.host}`;
    this.callId = `${randomToken(12)}@${stack.host}`;
    this.requestedExpiresS = o.expiresS;
    this.auth = new DigestAuthenticator(o.auth);
  }

  get state(): RegistrationState {
    return this.current;
  }

  start(): void {
    this.send(this.requestedExpiresS, 0);
  }

  /** Removes the binding (best effort, bounded wait) and stops refreshing. */
  async stop(): Promise<void> {
    if (this.current === "stopped") return;
    const wasRegistered = this.current === "registered";
    this.setState("stopped");
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending?.shutdown();
    if (!wasRegistered) return this.releaseFlow();
    await new Promise<void>((resolve) => {
      const done = setTimeout(resolve, UNREGISTER_WAIT_MS);
      this.send(0, 0, (rs) => {
        // A fresh nonce is answered once, so the binding really goes.
        if ((rs.status === 401 || rs.status === 407) && this.auth.accept(rs)) {
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
    this.releaseFlow();
  }

  private send(expiresS: number, authRounds: number, onFinal?: (rs: SipResponse) => void): void {
    const protocol = this.stack.protocolFor(this.o.registrar);
    const rq: OutgoingRequest = {
      method: "REGISTER",
      uri: this.o.registrar,
      headers: {
        from: `<${this.aor}>;tag=${this.fromTag}`,
        to: `<${this.aor}>`,
        "call-id": this.callId,
        cseq: { seq: this.cseq++, method: "REGISTER" },
        contact: this.stack.contact(this.o.user, protocol, this.aor.startsWith("sips:")),
        expires: String(expiresS),
      },
    };
    this.auth.apply(rq);
    this.pending = this.stack.sendRequest(rq, (rs) => {
      if (rs.status < 200) return;
      this.pending = undefined;
      if (onFinal) return onFinal(rs);
      if (this.current === "stopped") return;
      this.onFinal(rs, expiresS, authRounds);
    });
  }

  private onFinal(rs: SipResponse, expiresS: number, authRounds: number): void {
    if ((rs.status === 401 || rs.status === 407) && authRounds < MAX_AUTH_ROUNDS && this.auth.accept(rs)) {
      this.send(expiresS, authRounds + 1);
      return;
    }
    if (rs.status === 423) {
      // Interval Too Brief (§10.2.8): ask again with the registrar's minimum.
      const min = Number(header(rs, "min-expires"));
      if (Number.isInteger(min) && min > expiresS && min <= 86_400) {
        this.requestedExpiresS = min;
        this.send(min, authRounds);
        return;
      }
    }
    if (rs.status >= 200 && rs.status < 300) {
      const granted = this.grantedExpires(rs) ?? expiresS;
      this.failures = 0;
      if (this.current !== "registered") this.logger.info({ registrar: this.o.registrar, aor: this.aor, expiresS: granted }, "SIP registration in place");
      this.holdFlow(rs);
      this.setState("registered");
      const refreshS = Math.max(1, granted - Math.min(REFRESH_MARGIN_S, granted / 2));
      this.schedule(refreshS * 1000, () => this.start());
      return;
    }
    const retryMs = Math.min((this.o.retryMs ?? 5_000) * 2 ** this.failures, this.o.maxRetryMs ?? 300_000);
    this.failures++;
    this.logger.warn({ registrar: this.o.registrar, aor: this.aor, status: rs.status, reason: rs.reason, retryInMs: retryMs }, "SIP registration failed");
    this.setState("failed");
    this.schedule(retryMs, () => this.start());
  }

  /**
   * Holds the connection the 2xx came on. When it closes (a keep-alive went unanswered, the
   * registrar dropped it), the binding is made again at once on a new one (RFC 5626 §4.4.1).
   */
  private holdFlow(rs: SipResponse): void {
    const previous = this.flow;
    const lease: FlowLease | undefined = this.stack.leaseFlow(rs, () => {
      if (this.flow !== lease) return;
      this.flow = undefined;
      if (this.current !== "registered") return;
      this.logger.warn({ registrar: this.o.registrar, aor: this.aor }, "SIP connection to the registrar closed; registering again");
      this.schedule(0, () => this.start());
    });
    this.flow = lease;
    previous?.release();
  }

  private releaseFlow(): void {
    const flow = this.flow;
    this.flow = undefined;
    flow?.release();
  }

  /** Our Contact's expires in the 200, else its Expires header (§10.2.4). */
  private grantedExpires(rs: SipResponse): number | undefined {
    const contacts = Array.isArray(rs.headers.contact) ? rs.headers.contact : [];
    const ours = contacts.find((c) => c.uri !== undefined && sip.parseUri(c.uri)?.user === this.o.user);
    const fromContact = Number(ours?.params?.expires);
    if (Number.isFinite(fromContact) && fromContact > 0) return fromContact;
    const fromHeader = Number(header(rs, "expires"));
    return Number.isFinite(fromHeader) && fromHeader > 0 ? fromHeader : undefined;
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

function header(rs: SipResponse, name: string): string | undefined {
  const v = rs.headers[name];
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
}
