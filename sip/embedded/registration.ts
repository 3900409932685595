import sip from "sip";
import { randomToken } from "../random-token.js";
import type { SipLogger } from "../logger.js";
import { RegistrationMachine, type RegisterAttempt, type RegisterOutcome, type RegistrationTransport } from "../registration-machine.js";
import { DigestAuthenticator } from "./authenticator.js";
import { checkSipUri, type SipResponse } from "./message.js";
import type { OutgoingRequest, SipStack } from "./stack.js";

export type { RegistrationState } from "../registration-machine.js";

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

/**
 * One registration binding on the embedded stack: the shared state machine, with REGISTERs sent
 * through the stack's client transactions and the TCP/TLS connection of a 2xx held and kept
 * alive (RFC 5626) while the binding stands.
 */
export class SipRegistration extends RegistrationMachine {
  constructor(stack: SipStack, o: SipRegistrationOptions, logger: SipLogger) {
    const transport = new EmbeddedRegisterTransport(stack, o);
    super(transport, { registrar: o.registrar, aor: transport.aor, expiresS: o.expiresS, retryMs: o.retryMs, maxRetryMs: o.maxRetryMs }, logger);
  }
}

/** One Call-ID and increasing CSeq for the binding's whole life (RFC 3261 §10.2.4). */
class EmbeddedRegisterTransport implements RegistrationTransport {
  readonly aor: string;
  private readonly callId: string;
  private readonly fromTag = randomToken();
  private cseq = 1;
  /** Kept across refreshes: a registrar's nonce is answered again (nc counting up) without a new 401. */
  private readonly auth: DigestAuthenticator;

  constructor(
    private readonly stack: SipStack,
    private readonly o: SipRegistrationOptions,
  ) {
    const registrar = checkSipUri(o.registrar, { tls: stack.supports("TLS") });
    this.aor = `${registrar.schema}:${o.user}@${registrar.host}`;
    this.callId = `${randomToken(12)}@${stack.host}`;
    this.auth = new DigestAuthenticator(o.auth);
  }

  send(expiresS: number, onFinal: (rs: RegisterOutcome) => void): RegisterAttempt {
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
    const txn = this.stack.sendRequest(rq, (rs) => {
      if (rs.status >= 200) onFinal(this.outcome(rs));
    });
    return { abandon: () => txn.shutdown() };
  }

  private outcome(rs: SipResponse): RegisterOutcome {
    const min = Number(header(rs, "min-expires"));
    return {
      status: rs.status,
      reason: rs.reason,
      minExpiresS: Number.isInteger(min) ? min : undefined,
      grantedExpiresS: this.grantedExpires(rs),
      acceptChallenge: () => this.auth.accept(rs),
      holdConnection: (lost) => {
        const lease = this.stack.leaseFlow(rs, lost);
        return () => lease?.release();
      },
    };
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
}

function header(rs: SipResponse, name: string): string | undefined {
  const v = rs.headers[name];
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
}
