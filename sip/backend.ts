import { DrachtioSipSignaling } from "./drachtio/drachtio-signaling.js";
import { EmbeddedSipSignaling } from "./embedded/embedded-signaling.js";
import type { SipMessageLimits } from "./embedded/message-limits.js";
import type { SipLogger } from "./logger.js";
import type { SipSignaling, SipTransportName } from "./signaling.js";

/**
 * Which SIP stack carries the gateway's signalling: the embedded one (in process, the default) or
 * drachtio-srf talking to a drachtio-server sidecar (inbound connection mode).
 */
export type SipBackendChoice = { kind: "embedded" } | { kind: "drachtio"; host: string; port: number; secret: string };

export const SIP_BACKENDS = ["embedded", "drachtio"] as const;

export interface SipSignalingOptions {
  backend: SipBackendChoice;
  /** Where the embedded stack binds (drachtio-server listens on its own). */
  listen: { host: string; port: number };
  transports: SipTransportName[];
  /** Nameservers for SIP hosts' SRV and address lookups (embedded stack); unset = the system's. */
  dnsServers?: string[];
  /** RFC 5626 CRLF keep-alive interval in seconds on held TCP/TLS connections (embedded stack); 0 = none. */
  keepAliveS?: number;
  /** A registration to keep (either backend). */
  registration?: { registrar: string; user: string; password: string | undefined; expiresS: number };
  /** Outbound proxy for requests outside a dialog (either backend). */
  outboundProxy?: string;
  /** Certificate, key and trust for SIP over TLS (embedded stack; drachtio-server has its own). */
  tls?: { cert: string; key: string; ca: string | undefined; verify: boolean };
  /** Host the embedded stack writes in Via, Contact and From. */
  advertisedHost?: string;
  userAgent: string;
  logger: SipLogger;
  /** Bounds on received messages, for the embedded stack's parser. */
  limits?: Partial<SipMessageLimits>;
}

/** The configured backend behind the SipSignaling port; callers see nothing else. */
export function createSipSignaling(o: SipSignalingOptions): SipSignaling {
  const registration = o.registration && {
    registrar: o.registration.registrar,
    user: o.registration.user,
    auth: o.registration.password === undefined ? undefined : { username: o.registration.user, password: o.registration.password },
    expiresS: o.registration.expiresS,
  };
  if (o.backend.kind === "drachtio") {
    return new DrachtioSipSignaling({
      host: o.backend.host,
      port: o.backend.port,
      secret: o.backend.secret,
      userAgent: o.userAgent,
      logger: o.logger,
      registration,
      outboundProxy: o.outboundProxy,
    });
  }
  return new EmbeddedSipSignaling({
    address: o.listen.host,
    port: o.listen.port,
    transports: o.transports,
    tls: o.tls,
    outboundProxy: o.outboundProxy,
    dnsServers: o.dnsServers,
    keepAliveS: o.keepAliveS,
    registration,
    host: o.advertisedHost,
    userAgent: o.userAgent,
    logger: o.logger,
    limits: o.limits,
  });
}
