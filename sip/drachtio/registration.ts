import { checkUserPart } from "../caller-input.js";
import { randomToken } from "../random-token.js";
import type { SipLogger } from "../logger.js";
import { RegistrationMachine, type RegisterAttempt, type RegisterOutcome, type RegistrationTransport } from "../registration-machine.js";
import { SipArgumentError } from "../errors.js";
import { StandingDigest, checkSipUri, headerValues } from "./message.js";
import type { Srf, SrfRequest, SrfResponse } from "./srf.js";

export interface DrachtioRegistrationOptions {
  /** Registrar URI, e.g. `sip:pbx.example.com`. */
  registrar: string;
  /** User part of the address of record (`sip:<user>@<registrar host>`) and of our Contact. */
  user: string;
  auth: { username: string; password: string } | undefined;
  expiresS: number;
  /** Outbound proxy the REGISTERs go through (drachtio-server sends them there). */
  outboundProxy?: string;
  userAgent: string;
  retryMs?: number;
  maxRetryMs?: number;
  /** A REGISTER with no final answer by then counts as 408. Default 40000 (past Timer F). */
  answerTimeoutMs?: number;
}

/** What the transport needs of the signalling: its drachtio-srf while connected. */
export interface DrachtioLink {
  /** The connected drachtio-srf, or undefined while there is no connection to drachtio-server. */
  connectedSrf(): Srf | undefined;
  /** drachtio-server's SIP-over-TLS listener, as it reported on connecting, when it has one. */
  tlsListener(): { address: string; port: number } | undefined;
}

/**
 * One registration binding through drachtio-server: the shared state machine, with each REGISTER
 * an out-of-dialog request (`srf.request`) carrying our own From tag, Call-ID and CSeq (one
 * Call-ID and increasing CSeq for the binding's life, RFC 3261 §10.2.4) and our own digest
 * answers, so a refresh answers the registrar's nonce again without a new 401.
 */
export class DrachtioRegistration extends RegistrationMachine {
  constructor(link: DrachtioLink, o: DrachtioRegistrationOptions, logger: SipLogger) {
    const transport = new DrachtioRegisterTransport(link, o);
    super(transport, { registrar: o.registrar, aor: transport.aor, expiresS: o.expiresS, retryMs: o.retryMs, maxRetryMs: o.maxRetryMs }, logger);
  }
}

/** Longest reason phrase carried into log lines. */
const MAX_REASON = 120;

class DrachtioRegisterTransport implements RegistrationTransport {
  readonly aor: string;
  private readonly scheme: "sip" | "sips";
  /** The registrar is reached over TLS (`sips:` or `;transport=tls`). */
  private readonly tls: boolean;
  private readonly callId = `${randomToken(12)}@gateway`;
  private readonly fromTag = randomToken();
  private cseq = 1;
  private readonly digest: StandingDigest;

  constructor(
    private readonly link: DrachtioLink,
    private readonly o: DrachtioRegistrationOptions,
  ) {
    checkUserPart(o.user);
    const { user, hostport } = checkSipUri(o.registrar);
    if (user !== undefined) throw new SipArgumentError(`registrar ${JSON.stringify(o.registrar)} names a user; give the registrar's host`);
    this.scheme = /^sips:/i.test(o.registrar) ? "sips" : "sip";
    this.tls = this.scheme === "sips" || /;\s*transport=tls\b/i.test(o.registrar);
    this.aor = `${this.scheme}:${o.user}@${hostOf(hostport)}`;
    this.digest = new StandingDigest(o.auth);
  }

  send(expiresS: number, onFinal: (rs: RegisterOutcome) => void): RegisterAttempt {
    let settled = false;
    const finish = (rs: RegisterOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      onFinal(rs);
    };
    const timer = setTimeout(() => finish(madeUp(408, "No answer to REGISTER")), this.o.answerTimeoutMs ?? 40_000);
    timer.unref();
    const srf = this.link.connectedSrf();
    if (!srf) {
      setImmediate(() => finish(madeUp(503, "No connection to drachtio-server")));
      return { abandon: () => (settled = true) };
    }
    const headers: Record<string, string> = {
      From: `<${this.aor}>;tag=${this.fromTag}`,
      To: `<${this.aor}>`,
      "Call-ID": this.callId,
      CSeq: `${this.cseq++} REGISTER`,
      Contact: this.contact(),
      Expires: String(expiresS),
      "User-Agent": this.o.userAgent,
      ...this.digest.headers("REGISTER", this.o.registrar),
    };
    try {
      srf.request(this.o.registrar, { method: "REGISTER", headers, ...(this.o.outboundProxy ? { proxy: this.o.outboundProxy } : {}) }, (err: Error | null, req?: SrfRequest) => {
        if (err || !req) {
          // drachtio-server refused to send it (no transport for the scheme, the URI unusable).
          finish(madeUp(503, `drachtio-server did not send it: ${(err?.message ?? "no request").slice(0, MAX_REASON)}`));
          return;
        }
        req.on("response", (res) => {
          if (res.status >= 200) finish(this.outcome(res));
        });
      });
    } catch {
      // The connection dropped between the check and the send: nothing went out.
      setImmediate(() => finish(madeUp(503, "No connection to drachtio-server")));
    }
    return {
      abandon: () => {
        settled = true;
        clearTimeout(timer);
      },
    };
  }

  /**
   * drachtio-server writes the address of the listener it sends from where a Contact says
   * localhost, but for TLS it writes the UDP/TCP listener's port (0.9.4), where the registrar's
   * calls would then fail: over TLS the Contact names the TLS listener itself.
   */
  private contact(): string {
    const listener = this.tls ? this.link.tlsListener() : undefined;
    if (!listener) return `<${this.scheme}:${this.o.user}@localhost>`;
    const host = listener.address.includes(":") ? `[${listener.address}]` : listener.address;
    return this.scheme === "sips" ? `<sips:${this.o.user}@${host}:${listener.port}>` : `<sip:${this.o.user}@${host}:${listener.port};transport=tls>`;
  }

  private outcome(res: SrfResponse): RegisterOutcome {
    const min = Number(res.get("min-expires"));
    return {
      status: res.status,
      reason: (res.reason ?? "").slice(0, MAX_REASON),
      minExpiresS: Number.isInteger(min) ? min : undefined,
      grantedExpiresS: grantedExpiresS(res.raw, this.o.user),
      acceptChallenge: () => this.digest.accept(res),
    };
  }
}

/** A response that did not come from the registrar: it has nothing to answer or hold. */
function madeUp(status: number, reason: string): RegisterOutcome {
  return { status, reason, minExpiresS: undefined, grantedExpiresS: undefined, acceptChallenge: () => false };
}

/** `host`, `host:port` or `[v6]:port` → the host. */
function hostOf(hostport: string): string {
  if (hostport.startsWith("[")) return hostport.slice(0, hostport.indexOf("]") + 1);
  return hostport.split(":")[0] ?? hostport;
}

/**
 * What a registrar's 2xx granted our binding (RFC 3261 §10.2.4): the expires parameter of the
 * Contact whose user part is ours, else the Expires header; undefined when it says neither.
 */
export function grantedExpiresS(raw: string, user: string): number | undefined {
  for (const value of [...headerValues(raw, "contact"), ...headerValues(raw, "m")]) {
    for (const contact of splitContacts(value)) {
      const uri = /<([^>]*)>/.exec(contact)?.[1] ?? contact.split(";")[0] ?? "";
      if (/^sips?:([^@;>]+)@/i.exec(uri.trim())?.[1] !== user) continue;
      const params = contact.slice(contact.indexOf(">") + 1);
      const expires = Number(/;\s*expires\s*=\s*"?(\d{1,9})"?\s*(?:;|$)/i.exec(params)?.[1]);
      if (Number.isFinite(expires) && expires > 0) return expires;
    }
  }
  const header = headerValues(raw, "expires")[0];
  const expires = header !== undefined && /^\s*\d{1,9}\s*$/.test(header) ? Number(header) : Number.NaN;
  return Number.isFinite(expires) && expires > 0 ? expires : undefined;
}

/** A Contact header's comma-separated entries, commas inside `<…>` or quotes left alone. */
function splitContacts(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '"' && value[i - 1] !== "\\") quoted = !quoted;
    else if (!quoted && c === "<") depth++;
    else if (!quoted && c === ">") depth = Math.max(0, depth - 1);
    else if (!quoted && depth === 0 && c === ",") {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((c) => c !== "");
}
