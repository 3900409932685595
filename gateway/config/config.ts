import { accessSync, constants as fsConstants, readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { delimiter, isAbsolute, join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { SipBackendChoice } from "../../sip/backend.js";
import { CHALLENGE_ALGORITHMS, type ChallengeAlgorithm } from "../../sip/digest-verifier.js";
import type { ReferPolicy } from "../call/refer-policy.js";
import { LIMIT_KEYS, readLimits, type Limits } from "./limits.js";
import { CLUSTER_KEYS, readClusterConfig, redactClusterConfig, type ClusterConfig } from "../cluster/config.js";
import type { KeyExchange } from "../meta/platform.js";
import type { OverloadLimits } from "../observe/load-guard.js";

/** Every setting the gateway reads, after validation. One struct, validated in one place. */
export interface GatewayConfig {
  meta: {
    appSecret: string;
    verifyToken: string;
    /** The (first) Page whose Messenger calls this gateway handles; undefined = WhatsApp only. */
    pageId: string | undefined;
    pageAccessToken: string | undefined;
    /** Every Page, with its token and the SIP URI its consumers' calls ring (SIP_TARGET when absent). */
    pages: MessengerPageConfig[];
    graphUrl: string;
    graphVersion: string;
    graphTimeoutMs: number;
    /** After each call, one POST /{page-id}/call_metrics with its audio figures (CALL_METRICS). */
    callMetrics: boolean;
  };
  /** WhatsApp Business numbers the gateway answers and calls from; undefined = Messenger only. */
  whatsApp: WhatsAppConfig | undefined;
  http: { host: string; port: number };
  /** Call events for the integrator (call.ringing, call.answered, call.ended). */
  events: EventsConfig;
  sip: {
    /** The SIP stack: embedded (in process) or drachtio-server reached over its control port. */
    backend: SipBackendChoice;
    /** `echo` or a SIP URI that consumer-initiated calls ring. */
    target: SipTarget;
    /** host:port the SIP stack listens on (UDP and TCP). */
    listen: { host: string; port: number };
    transports: ("udp" | "tcp" | "tls")[];
    /** A registration the gateway keeps at the PBX (a registered trunk or extension); undefined = none. */
    register: { registrar: string; user: string; password: string | undefined; expiresS: number } | undefined;
    /** Nameservers for SIP hosts (NAPTR, SRV, A/AAAA); undefined = the system's resolver. */
    dnsServers: string[] | undefined;
    /** RFC 5626 CRLF keep-alive interval on TCP/TLS connections a registration or call holds; 0 = none. */
    keepAliveS: number;
    /** Outbound proxy URI every request outside a dialog goes through; undefined = none. */
    outboundProxy: string | undefined;
    /** SIP over TLS (with `tls` in transports): PEM certificate chain, key and trust, read at start. */
    tls: { certFile: string; keyFile: string; caFile: string | undefined; cert: string; key: string; ca: string | undefined; verify: boolean } | undefined;
    /** Credentials for digest challenges (401/407) from the PBX or its proxy. */
    auth: { username: string; password: string } | undefined;
    /** Sources (IPs and CIDRs) allowed to place agent calls; empty = none. */
    allowFrom: string[];
    /** Where an agent's INVITE names the consumer: the Request-URI user part, or this header. */
    psidHeader: string | undefined;
    /** Digest credentials agents must present (after the source allowlist); undefined = none asked. */
    agentAuth: { username: string; password: string; realm: string; algorithms: ChallengeAlgorithm[] } | undefined;
    /** Give up on a consumer who does not pick up an agent's call. */
    ringTimeoutMs: number;
    /** Ask a consumer without call permission for it (calling_optin) when an agent calls. */
    requestPermission: boolean;
    /** Whether a REFER from the PBX is followed, and where to (see gateway/call/refer-policy.ts). */
    refer: ReferPolicy;
    /** SDES-keyed SRTP toward the PBX: never, offered in RTP/AVP, or required (RTP/SAVP). */
    srtp: "off" | "offer" | "require";
  };
  media: {
    rtpPortMin: number;
    rtpPortMax: number;
    /** Address advertised in ICE candidates and SIP SDP; undefined = every local interface. */
    publicIp: string | undefined;
    /** Address media sockets bind to; undefined = all interfaces. */
    bindIp: string | undefined;
    /** STUN servers for the Meta leg; empty = none at all (werift's hidden default is disabled). */
    stunUrls: string[];
    /** ffmpeg for video transcoding; undefined = `ffmpeg` on PATH. */
    ffmpegPath: string | undefined;
    /**
     * Threads that carry calls (MEDIA_WORKERS): 1 = every call on the main thread; more = that many
     * media workers, with HTTP and SIP on the main thread. `auto` = one per core.
     */
    workers: number;
  };
  calls: {
    /** Upper bound Meta gives us to accept a consumer call (60 s); we answer well inside it. */
    acceptTimeoutMs: number;
    /**
     * When a consumer's call is accepted at Meta: when the PBX answers (200), or already on its early
     * media (a 183 with SDP: IVR prompts, ringback), which the consumer then hears.
     */
    acceptOn: "answer" | "early-media";
    /** Ends a call whose Meta leg has received no RTP for this long after it connected. */
    mediaTimeoutMs: number;
    maxConcurrent: number;
    /** After SIGTERM, how long live calls may go on before they are ended. */
    drainSeconds: number;
    /** Load over which new calls are refused (OVERLOAD_LOOP_DELAY_MS, OVERLOAD_MIN_IDLE_CPU; 0 = off). */
    overload: OverloadLimits;
  };
  /** Bounds on everything that arrives from outside. */
  limits: Limits;
  logLevel: LogLevel;
  /** Several instances sharing call ownership in Redis (REDIS_URL); undefined = one instance on its own. */
  cluster: ClusterConfig | undefined;
}

export type SipTarget = { kind: "echo" } | { kind: "uri"; uri: string };

export interface MessengerPageConfig {
  pageId: string;
  accessToken: string;
  sipTarget: string | undefined;
}

export interface WhatsAppConfig {
  /** A system-user token with whatsapp_business_messaging for every number below. */
  accessToken: string;
  /** When set, webhooks from any other WhatsApp Business Account are dropped. */
  wabaId: string | undefined;
  /**
   * Each number, the SIP URI its consumers' calls ring (SIP_TARGET when absent), and how its media
   * is keyed (its `srtp_key_exchange_protocol` at Meta).
   */
  numbers: { phoneNumberId: string; sipTarget: string | undefined; keyExchange: KeyExchange }[];
}

export interface EventsConfig {
  /** Where event lines are written: the gateway's own log output (tagged), a file of their own, or nowhere. */
  log: { kind: "log" } | { kind: "file"; path: string } | { kind: "off" };
  /** Each event is also POSTed here, signed with `secret` (HMAC-SHA256). */
  url: string | undefined;
  secret: string | undefined;
}
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/** A setting is missing or invalid; the message names the setting. */
export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = "ConfigError";
  }
}

type Source = Record<string, string | undefined>;

const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** The keys accepted from the environment and, with the same names, from a YAML file. */
export const CONFIG_KEYS = [
  "META_APP_SECRET",
  "META_VERIFY_TOKEN",
  "META_PAGE_ID",
  "META_PAGE_ACCESS_TOKEN",
  "WHATSAPP_PHONE_NUMBERS",
  "WHATSAPP_ACCESS_TOKEN",
  "WHATSAPP_WABA_ID",
  "WHATSAPP_SDES_NUMBERS",
  "META_GRAPH_URL",
  "META_GRAPH_VERSION",
  "META_GRAPH_TIMEOUT_MS",
  "CALL_METRICS",
  "EVENTS_URL",
  "EVENTS_SECRET",
  "EVENTS_LOG",
  "HTTP_HOST",
  "HTTP_PORT",
  "SIP_TARGET",
  "SIP_BACKEND",
  "DRACHTIO_HOST",
  "DRACHTIO_PORT",
  "DRACHTIO_SECRET",
  "SIP_LISTEN",
  "SIP_TRANSPORTS",
  "SIP_AUTH_USER",
  "SIP_AUTH_PASSWORD",
  "SIP_ALLOW_FROM",
  "SIP_PSID_HEADER",
  "SIP_AGENT_AUTH_USER",
  "SIP_AGENT_AUTH_PASSWORD",
  "SIP_AGENT_AUTH_REALM",
  "SIP_AGENT_AUTH_ALGORITHMS",
  "RING_TIMEOUT_MS",
  "CALL_PERMISSION_REQUEST",
  "SIP_REFER",
  "SIP_REFER_ALLOW",
  "SIP_SRTP",
  "SIP_OUTBOUND_PROXY",
  "SIP_DNS_SERVERS",
  "SIP_KEEPALIVE_INTERVAL",
  "SIP_REGISTRAR",
  "SIP_REGISTER_USER",
  "SIP_REGISTER_PASSWORD",
  "SIP_REGISTER_EXPIRES",
  "SIP_TLS_CERT",
  "SIP_TLS_KEY",
  "SIP_TLS_CA",
  "SIP_TLS_VERIFY",
  "RTP_PORT_MIN",
  "RTP_PORT_MAX",
  "PUBLIC_IP",
  "MEDIA_BIND_IP",
  "STUN_URLS",
  "ACCEPT_TIMEOUT_MS",
  "ACCEPT_ON",
  "MEDIA_TIMEOUT_MS",
  "MAX_CONCURRENT_CALLS",
  "DRAIN_SECONDS",
  "OVERLOAD_LOOP_DELAY_MS",
  "OVERLOAD_MIN_IDLE_CPU",
  "FFMPEG_PATH",
  "MEDIA_WORKERS",
  "LOG_LEVEL",
  ...LIMIT_KEYS,
  ...CLUSTER_KEYS,
] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/**
 * Reads a YAML file of `KEY: value` pairs (the same keys as the environment). Environment
 * variables win over the file so a container can override one setting without a new file.
 */
export function readConfigFile(path: string): Source {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError("--config", `cannot read ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError("--config", `${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError("--config", `${path} must be a mapping of settings`);
  }
  const out: Source = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(key, `unknown setting in ${path}`);
    }
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) out[key] = value.map(String).join(",");
    else if (typeof value === "object") throw new ConfigError(key, "must be a scalar or a list");
    else out[key] = String(value);
  }
  return out;
}

/** Builds and validates the configuration from the environment merged over an optional file. */
export function loadConfig(env: Source, file: Source = {}): GatewayConfig {
  const src: Source = { ...file };
  for (const key of CONFIG_KEYS) {
    const v = env[key];
    if (v !== undefined && v !== "") src[key] = v;
  }
  const str = (key: ConfigKey, fallback?: string): string => {
    const v = src[key]?.trim();
    if (v === undefined || v === "") {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(key, "is required");
    }
    return v;
  };
  const optional = (key: ConfigKey): string | undefined => {
    const v = src[key]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const int = (key: ConfigKey, fallback: number, min: number, max: number): number => {
    const raw = optional(key);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw)) throw new ConfigError(key, `must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new ConfigError(key, `must be between ${min} and ${max}, got ${n}`);
    return n;
  };
  const bool = (key: ConfigKey, fallback: boolean): boolean => {
    const raw = optional(key)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (["true", "yes", "1", "on"].includes(raw)) return true;
    if (["false", "no", "0", "off"].includes(raw)) return false;
    throw new ConfigError(key, `must be true or false, got "${raw}"`);
  };
  const ip = (key: ConfigKey): string | undefined => {
    const v = optional(key);
    if (v !== undefined && isIP(v) === 0) throw new ConfigError(key, `must be an IP address, got "${v}"`);
    return v;
  };

  const graphUrl = str("META_GRAPH_URL", "https://graph.facebook.com").replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]+/.test(graphUrl)) {
    throw new ConfigError("META_GRAPH_URL", `must be an http(s) URL, got "${graphUrl}"`);
  }
  const graphVersion = str("META_GRAPH_VERSION", "v26.0");
  if (!/^v\d+\.\d+$/.test(graphVersion)) {
    throw new ConfigError("META_GRAPH_VERSION", `must look like v26.0, got "${graphVersion}"`);
  }
  // The settings every deployment needs are named first when missing.
  const appSecret = str("META_APP_SECRET");
  const verifyToken = str("META_VERIFY_TOKEN");
  const whatsApp = parseWhatsApp(optional("WHATSAPP_PHONE_NUMBERS"), optional("WHATSAPP_ACCESS_TOKEN"), optional("WHATSAPP_WABA_ID"), optional("WHATSAPP_SDES_NUMBERS"));
  // A WhatsApp-only gateway needs no Page; without WhatsApp numbers the Page is what it serves.
  const pages = parsePages(whatsApp ? optional("META_PAGE_ID") : str("META_PAGE_ID"), optional("META_PAGE_ACCESS_TOKEN"));

  const rtpPortMin = int("RTP_PORT_MIN", 40000, 1024, 65534);
  const rtpPortMax = int("RTP_PORT_MAX", 49999, 1025, 65535);
  if (rtpPortMax <= rtpPortMin) {
    throw new ConfigError("RTP_PORT_MAX", `must be above RTP_PORT_MIN (${rtpPortMin})`);
  }

  const logLevel = str("LOG_LEVEL", "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError("LOG_LEVEL", `must be one of ${LOG_LEVELS.join(", ")}`);
  }

  return {
    meta: {
      appSecret,
      verifyToken,
      pageId: pages[0]?.pageId,
      pageAccessToken: pages[0]?.accessToken,
      pages,
      graphUrl,
      graphVersion,
      graphTimeoutMs: int("META_GRAPH_TIMEOUT_MS", 10_000, 100, 120_000),
      callMetrics: oneOf("CALL_METRICS", str("CALL_METRICS", "on"), ["on", "off"] as const) === "on",
    },
    whatsApp,
    events: parseEvents(optional("EVENTS_URL"), optional("EVENTS_SECRET"), optional("EVENTS_LOG")),
    http: {
      host: str("HTTP_HOST", "0.0.0.0"),
      port: int("HTTP_PORT", 8080, 0, 65535),
    },
    sip: {
      backend: parseSipBackend(optional),
      target: parseSipTarget(str("SIP_TARGET", "echo")),
      listen: parseHostPort("SIP_LISTEN", str("SIP_LISTEN", "0.0.0.0:5060"), true),
      transports: parseTransports(str("SIP_TRANSPORTS", "udp,tcp")),
      outboundProxy: parseOutboundProxy(optional("SIP_OUTBOUND_PROXY")),
      dnsServers: parseDnsServers(optional("SIP_DNS_SERVERS")),
      keepAliveS: int("SIP_KEEPALIVE_INTERVAL", 30, 0, 3600),
      register: parseRegister(optional("SIP_REGISTRAR"), optional("SIP_REGISTER_USER"), optional("SIP_REGISTER_PASSWORD"), int("SIP_REGISTER_EXPIRES", 3600, 60, 86_400)),
      tls: parseSipTls(parseTransports(str("SIP_TRANSPORTS", "udp,tcp")).includes("tls"), optional("SIP_TLS_CERT"), optional("SIP_TLS_KEY"), optional("SIP_TLS_CA"), bool("SIP_TLS_VERIFY", true)),
      auth: parseSipAuth(optional("SIP_AUTH_USER"), optional("SIP_AUTH_PASSWORD")),
      allowFrom: parseAllowList(optional("SIP_ALLOW_FROM")),
      psidHeader: parseHeaderName(optional("SIP_PSID_HEADER")),
      agentAuth: parseAgentAuth(
        optional("SIP_AGENT_AUTH_USER"),
        optional("SIP_AGENT_AUTH_PASSWORD"),
        str("SIP_AGENT_AUTH_REALM", "meta-sip-gateway"),
        parseAlgorithms(str("SIP_AGENT_AUTH_ALGORITHMS", CHALLENGE_ALGORITHMS.join(","))),
      ),
      ringTimeoutMs: int("RING_TIMEOUT_MS", 60_000, 1_000, 300_000),
      requestPermission: bool("CALL_PERMISSION_REQUEST", false),
      refer: {
        mode: oneOf("SIP_REFER", str("SIP_REFER", "accept"), ["accept", "reject"] as const),
        allow: (optional("SIP_REFER_ALLOW") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== ""),
      },
      srtp: oneOf("SIP_SRTP", str("SIP_SRTP", "offer"), ["off", "offer", "require"] as const),
    },
    media: {
      rtpPortMin,
      rtpPortMax,
      publicIp: ip("PUBLIC_IP"),
      bindIp: ip("MEDIA_BIND_IP"),
      stunUrls: parseStunUrls(optional("STUN_URLS")),
      ffmpegPath: parseFfmpegPath(optional("FFMPEG_PATH"), env.PATH ?? process.env.PATH),
      workers: parseWorkers(optional("MEDIA_WORKERS")),
    },
    calls: {
      acceptTimeoutMs: int("ACCEPT_TIMEOUT_MS", 55_000, 1_000, 60_000),
      acceptOn: oneOf("ACCEPT_ON", str("ACCEPT_ON", "answer"), ["answer", "early-media"] as const),
      mediaTimeoutMs: int("MEDIA_TIMEOUT_MS", 30_000, 1_000, 600_000),
      maxConcurrent: int("MAX_CONCURRENT_CALLS", 500, 1, 100_000),
      drainSeconds: int("DRAIN_SECONDS", 30, 0, 86_400),
      overload: {
        maxLoopDelayMs: int("OVERLOAD_LOOP_DELAY_MS", 0, 0, 1_000),
        minIdleCpuPercent: int("OVERLOAD_MIN_IDLE_CPU", 0, 0, 90),
      },
    },
    limits: readLimits(int),
    logLevel,
    cluster: readClusterConfig({
      optional,
      int,
      fail: (key, message) => {
        throw new ConfigError(key, message);
      },
    }),
  };
}

const MAX_MEDIA_WORKERS = 64;

/** MEDIA_WORKERS=auto: one per core the process may run on, at most 64. */
export function autoMediaWorkers(): number {
  return Math.min(MAX_MEDIA_WORKERS, availableParallelism());
}

/** MEDIA_WORKERS: `auto` (one per core, the default) or 1–64. */
export function parseWorkers(raw: string | undefined): number {
  if (raw === undefined || raw.toLowerCase() === "auto") return autoMediaWorkers();
  if (!/^\d+$/.test(raw)) throw new ConfigError("MEDIA_WORKERS", `must be auto or a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < 1 || n > MAX_MEDIA_WORKERS) throw new ConfigError("MEDIA_WORKERS", `must be between 1 and ${MAX_MEDIA_WORKERS}, got ${n}`);
  return n;
}

/**
 * SIP_BACKEND and the DRACHTIO_* settings. A setting that the chosen backend would ignore is an
 * error, so a configuration never looks like it does something it does not.
 */
function parseSipBackend(optional: (key: ConfigKey) => string | undefined): SipBackendChoice {
  const kind = (optional("SIP_BACKEND") ?? "embedded").toLowerCase();
  const drachtioKeys = ["DRACHTIO_HOST", "DRACHTIO_PORT", "DRACHTIO_SECRET"] as const;
  if (kind === "embedded") {
    for (const key of drachtioKeys) {
      if (optional(key) !== undefined) throw new ConfigError(key, "is only used with SIP_BACKEND=drachtio");
    }
    return { kind: "embedded" };
  }
  if (kind !== "drachtio") throw new ConfigError("SIP_BACKEND", `must be embedded or drachtio, got "${kind}"`);
  // drachtio-server owns the SIP listener (its --contact); the gateway binds no SIP socket.
  for (const key of ["SIP_LISTEN", "SIP_TRANSPORTS"] as const) {
    if (optional(key) !== undefined) throw new ConfigError(key, "is not used with SIP_BACKEND=drachtio: drachtio-server's own configuration (--contact) sets where SIP is received");
  }
  // Settings drachtio-server's own configuration covers: silently ignoring them would leave a
  // deployment believing it has set them. drachtio-server terminates TLS with its own certificate
  // (its <tls> and a transport=tls <contact>), resolves and keeps its connections alive itself.
  // SIP_REGISTRAR and SIP_OUTBOUND_PROXY work on both backends.
  for (const key of ["SIP_TLS_CERT", "SIP_TLS_KEY", "SIP_TLS_CA", "SIP_DNS_SERVERS", "SIP_KEEPALIVE_INTERVAL"] as const) {
    if (optional(key) !== undefined) throw new ConfigError(key, "is not used with SIP_BACKEND=drachtio: drachtio-server's own configuration sets it (see \"Running with drachtio-server\")");
  }
  const host = optional("DRACHTIO_HOST");
  if (host === undefined) throw new ConfigError("DRACHTIO_HOST", "is required with SIP_BACKEND=drachtio");
  if (isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) {
    throw new ConfigError("DRACHTIO_HOST", `must be a host name or IP address, got "${host}"`);
  }
  const rawPort = optional("DRACHTIO_PORT") ?? "9022";
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port < 1 || port > 65535) throw new ConfigError("DRACHTIO_PORT", `must be a port 1..65535, got "${rawPort}"`);
  const secret = optional("DRACHTIO_SECRET");
  if (secret === undefined) throw new ConfigError("DRACHTIO_SECRET", "is required with SIP_BACKEND=drachtio");
  // The control protocol separates fields with '|' and ends lines with CRLF.
  if (/[|\r\n]/.test(secret)) throw new ConfigError("DRACHTIO_SECRET", "may not contain '|' or line breaks");
  return { kind: "drachtio", host, port, secret };
}

/** A setting that takes one of a few words; anything else names the choices. */
function oneOf<T extends string>(key: string, value: string, choices: readonly T[]): T {
  const v = value.toLowerCase();
  const hit = choices.find((c) => c === v);
  if (hit === undefined) throw new ConfigError(key, `must be one of ${choices.join(", ")}, got "${value.slice(0, 40)}"`);
  return hit;
}

function parseSipTarget(raw: string): SipTarget {
  if (raw.toLowerCase() === "echo") return { kind: "echo" };
  if (!/^sips?:[^@\s]+@[^\s]+$|^sips?:[^\s@]+$/.test(raw)) {
    throw new ConfigError("SIP_TARGET", `must be "echo" or a SIP URI like sip:agents@pbx.example.com, got "${raw}"`);
  }
  return { kind: "uri", uri: raw };
}

function parseRegister(registrar: string | undefined, user: string | undefined, password: string | undefined, expiresS: number): GatewayConfig["sip"]["register"] {
  if (registrar === undefined) {
    if (user !== undefined) throw new ConfigError("SIP_REGISTER_USER", "is set but SIP_REGISTRAR is not");
    if (password !== undefined) throw new ConfigError("SIP_REGISTER_PASSWORD", "is set but SIP_REGISTRAR is not");
    return undefined;
  }
  if (!/^sips?:[^\s@<>"]+$/.test(registrar)) throw new ConfigError("SIP_REGISTRAR", `must be a SIP URI of the registrar like sip:pbx.example.com, got "${registrar}"`);
  if (user === undefined) throw new ConfigError("SIP_REGISTER_USER", "is required with SIP_REGISTRAR (the user part of the address registered)");
  if (!/^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$/.test(user)) throw new ConfigError("SIP_REGISTER_USER", "must be a SIP user part");
  return { registrar, user, password, expiresS };
}

function parseDnsServers(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const server of list) {
    const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(server);
    const host = m?.[1] ?? m?.[2];
    const port = m?.[3] === undefined ? 53 : Number(m[3]);
    if (!host || isIP(host) === 0 || port < 1 || port > 65535) throw new ConfigError("SIP_DNS_SERVERS", `"${server}" is not ip or ip:port`);
  }
  if (list.length === 0) throw new ConfigError("SIP_DNS_SERVERS", "needs at least one ip or ip:port");
  return list;
}

function parseOutboundProxy(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!/^sips?:[^\s@<>"]+$/.test(raw)) throw new ConfigError("SIP_OUTBOUND_PROXY", `must be a SIP URI of a host like sip:proxy.example.com:5060;lr, got "${raw}"`);
  return raw;
}

function parseHostPort(key: ConfigKey, raw: string, allowAnyPort = false): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(raw);
  if (!m) throw new ConfigError(key, `must be host:port, got "${raw}"`);
  const port = Number(m[2]);
  if (port < (allowAnyPort ? 0 : 1) || port > 65535) throw new ConfigError(key, `port must be 1..65535, got ${port}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

function parseTransports(raw: string): ("udp" | "tcp" | "tls")[] {
  const list = raw.toLowerCase().split(",").map((t) => t.trim()).filter(Boolean);
  for (const t of list) {
    if (t !== "udp" && t !== "tcp" && t !== "tls") throw new ConfigError("SIP_TRANSPORTS", `"${t}" is not udp, tcp or tls`);
  }
  if (list.length === 0) throw new ConfigError("SIP_TRANSPORTS", "needs at least one of udp, tcp, tls");
  return [...new Set(list)] as ("udp" | "tcp" | "tls")[];
}

/** Certificate files are read once at start: a missing or unreadable one stops the gateway, not a call. */
function parseSipTls(enabled: boolean, certFile: string | undefined, keyFile: string | undefined, caFile: string | undefined, verify: boolean): GatewayConfig["sip"]["tls"] {
  if (!enabled) {
    for (const [key, value] of [["SIP_TLS_CERT", certFile], ["SIP_TLS_KEY", keyFile], ["SIP_TLS_CA", caFile]] as const) {
      if (value !== undefined) throw new ConfigError(key, "is set but SIP_TRANSPORTS has no tls");
    }
    return undefined;
  }
  if (certFile === undefined) throw new ConfigError("SIP_TLS_CERT", "is required with tls in SIP_TRANSPORTS (a PEM certificate chain file)");
  if (keyFile === undefined) throw new ConfigError("SIP_TLS_KEY", "is required with tls in SIP_TRANSPORTS (a PEM private key file)");
  const cert = readPem("SIP_TLS_CERT", certFile, /-----BEGIN CERTIFICATE-----/);
  const key = readPem("SIP_TLS_KEY", keyFile, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  const ca = caFile === undefined ? undefined : readPem("SIP_TLS_CA", caFile, /-----BEGIN CERTIFICATE-----/);
  return { certFile, keyFile, caFile, cert, key, ca, verify };
}

function readPem(key: ConfigKey, path: string, marker: RegExp): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!marker.test(text)) throw new ConfigError(key, `${path} is not a PEM file of the expected kind`);
  return text;
}

function parseSipAuth(username: string | undefined, password: string | undefined): { username: string; password: string } | undefined {
  if (username === undefined && password === undefined) return undefined;
  if (username === undefined) throw new ConfigError("SIP_AUTH_USER", "is required when SIP_AUTH_PASSWORD is set");
  if (password === undefined) throw new ConfigError("SIP_AUTH_PASSWORD", "is required when SIP_AUTH_USER is set");
  return { username, password };
}

function parseAgentAuth(
  username: string | undefined,
  password: string | undefined,
  realm: string,
  algorithms: ChallengeAlgorithm[],
): { username: string; password: string; realm: string; algorithms: ChallengeAlgorithm[] } | undefined {
  if (username === undefined && password === undefined) return undefined;
  if (username === undefined) throw new ConfigError("SIP_AGENT_AUTH_USER", "is required when SIP_AGENT_AUTH_PASSWORD is set");
  if (password === undefined) throw new ConfigError("SIP_AGENT_AUTH_PASSWORD", "is required when SIP_AGENT_AUTH_USER is set");
  if (/["\\\r\n]/.test(realm)) throw new ConfigError("SIP_AGENT_AUTH_REALM", "may not contain quotes, backslashes or line breaks");
  return { username, password, realm, algorithms };
}

/** Digest algorithms in order of preference: the order of the challenges in a 401. */
function parseAlgorithms(raw: string): ChallengeAlgorithm[] {
  const out: ChallengeAlgorithm[] = [];
  for (const entry of raw.split(",").map((a) => a.trim()).filter(Boolean)) {
    const algorithm = CHALLENGE_ALGORITHMS.find((a) => a.toLowerCase() === entry.toLowerCase());
    if (!algorithm) throw new ConfigError("SIP_AGENT_AUTH_ALGORITHMS", `"${entry}" is not one of ${CHALLENGE_ALGORITHMS.join(", ")}`);
    if (!out.includes(algorithm)) out.push(algorithm);
  }
  if (out.length === 0) throw new ConfigError("SIP_AGENT_AUTH_ALGORITHMS", `needs at least one of ${CHALLENGE_ALGORITHMS.join(", ")}`);
  return out;
}

/**
 * FFMPEG_PATH is checked when the gateway starts, not when the first video call needs it: a path
 * must name an executable file, a bare name must be found on PATH.
 */
function parseFfmpegPath(raw: string | undefined, searchPath: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (raw.includes("\0")) throw new ConfigError("FFMPEG_PATH", "may not contain NUL");
  const candidates = raw.includes("/") ? [raw] : (searchPath ?? "").split(delimiter).filter((dir) => isAbsolute(dir)).map((dir) => join(dir, raw));
  for (const candidate of candidates) {
    if (isExecutableFile(candidate)) return raw;
  }
  throw new ConfigError("FFMPEG_PATH", raw.includes("/") ? `"${raw}" is not an executable file` : `"${raw}" is not an executable on PATH`);
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function parseAllowList(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const entries = raw.split(",").map((e) => e.trim()).filter(Boolean);
  for (const e of entries) {
    const [addr, bits, extra] = e.split("/");
    const family = isIP(addr ?? "");
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > max))) {
      throw new ConfigError("SIP_ALLOW_FROM", `"${e}" is not an IP address or CIDR`);
    }
  }
  return entries;
}

function parseHeaderName(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!/^[A-Za-z0-9-]+$/.test(raw)) throw new ConfigError("SIP_PSID_HEADER", `"${raw}" is not a header name`);
  return raw;
}

function parseStunUrls(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const urls = raw.split(",").map((u) => u.trim()).filter((u) => u.length > 0);
  for (const url of urls) {
    if (!/^stun:[^\s:]+(:\d+)?$/.test(url)) {
      throw new ConfigError("STUN_URLS", `"${url}" is not a stun:host[:port] URL`);
    }
  }
  return urls;
}

/** Shortest EVENTS_SECRET: an HMAC key guessable by brute force signs nothing. */
const MIN_EVENTS_SECRET = 16;

function parseEvents(url: string | undefined, secret: string | undefined, log: string | undefined): EventsConfig {
  if (url !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError("EVENTS_URL", `must be an http(s) URL, got "${url.slice(0, 80)}"`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new ConfigError("EVENTS_URL", `must be an http(s) URL, got "${url.slice(0, 80)}"`);
    // Unsigned deliveries could be forged by anyone who can reach the receiver.
    if (secret === undefined) throw new ConfigError("EVENTS_SECRET", "is required when EVENTS_URL is set");
  }
  if (secret !== undefined && secret.length < MIN_EVENTS_SECRET) throw new ConfigError("EVENTS_SECRET", `must be at least ${MIN_EVENTS_SECRET} characters`);
  if (secret !== undefined && url === undefined) throw new ConfigError("EVENTS_SECRET", "is only used with EVENTS_URL");
  const where = log ?? "log";
  const eventLog: EventsConfig["log"] =
    where === "log" ? { kind: "log" } : where === "off" ? { kind: "off" } : where.startsWith("/") ? { kind: "file", path: where } : invalidEventLog(where);
  return { log: eventLog, url, secret };
}

function invalidEventLog(value: string): never {
  throw new ConfigError("EVENTS_LOG", `must be log, off or an absolute file path, got "${value.slice(0, 80)}"`);
}

/** The configuration with secrets masked, for the start-up log line. */
/**
 * META_PAGE_ID: comma-separated Page ids, each optionally `=sip:uri` for the target its consumers'
 * calls ring; META_PAGE_ACCESS_TOKEN: one token per Page, comma-separated in the same order.
 */
function parsePages(ids: string | undefined, tokens: string | undefined): MessengerPageConfig[] {
  if (ids === undefined) {
    if (tokens !== undefined) throw new ConfigError("META_PAGE_ID", "is required with META_PAGE_ACCESS_TOKEN");
    return [];
  }
  const entries = parseIdRoutes("META_PAGE_ID", ids, "the numeric Page id");
  if (tokens === undefined) throw new ConfigError("META_PAGE_ACCESS_TOKEN", "is required");
  const tokenList = tokens.split(",").map((t) => t.trim());
  if (tokenList.length !== entries.length || tokenList.some((t) => t === "")) {
    throw new ConfigError("META_PAGE_ACCESS_TOKEN", `must hold one token per Page in META_PAGE_ID (${entries.length}), comma-separated, got ${tokenList.length}`);
  }
  return entries.map((e, i) => ({ pageId: e.id, accessToken: tokenList[i]!, sipTarget: e.sipTarget }));
}

/** `id` or `id=sip:uri` entries, comma-separated: ids numeric and unique, targets SIP URIs. */
function parseIdRoutes(setting: ConfigKey, raw: string, what: string): { id: string; sipTarget: string | undefined }[] {
  const seen = new Set<string>();
  return raw.split(",").map((entry) => {
    const [id, target] = entry.trim().split(/=(.*)/s, 2).map((p) => p.trim()) as [string, string | undefined];
    if (!/^\d{1,32}$/.test(id)) throw new ConfigError(setting, `must be ${what}: "${id.slice(0, 40)}" is not`);
    if (seen.has(id)) throw new ConfigError(setting, `${id} is listed twice`);
    seen.add(id);
    let sipTarget: string | undefined;
    if (target !== undefined && target !== "") {
      let parsed: SipTarget;
      try {
        parsed = parseSipTarget(target);
      } catch {
        throw new ConfigError(setting, `${id}: "${target.slice(0, 80)}" is not a SIP URI`);
      }
      if (parsed.kind !== "uri") throw new ConfigError(setting, `${id}: the target must be a SIP URI`);
      sipTarget = parsed.uri;
    }
    return { id, sipTarget };
  });
}

/**
 * WHATSAPP_PHONE_NUMBERS: comma-separated phone-number ids, each optionally `=sip:uri` for the
 * target its consumers' calls ring, e.g. `1234567890=sip:sales@pbx,2345678901`.
 */
function parseWhatsApp(numbers: string | undefined, token: string | undefined, wabaId: string | undefined, sdesNumbers: string | undefined): WhatsAppConfig | undefined {
  if (numbers === undefined) {
    if (token !== undefined || wabaId !== undefined || sdesNumbers !== undefined) {
      throw new ConfigError("WHATSAPP_PHONE_NUMBERS", "is required with WHATSAPP_ACCESS_TOKEN, WHATSAPP_WABA_ID or WHATSAPP_SDES_NUMBERS");
    }
    return undefined;
  }
  if (token === undefined) throw new ConfigError("WHATSAPP_ACCESS_TOKEN", "is required with WHATSAPP_PHONE_NUMBERS");
  if (wabaId !== undefined && !/^\d{1,32}$/.test(wabaId)) throw new ConfigError("WHATSAPP_WABA_ID", "must be the numeric WhatsApp Business Account id");
  const list = parseIdRoutes("WHATSAPP_PHONE_NUMBERS", numbers, "numeric phone-number ids").map((e) => ({
    phoneNumberId: e.id,
    sipTarget: e.sipTarget,
    keyExchange: "DTLS" as KeyExchange,
  }));
  for (const id of (sdesNumbers ?? "").split(",").map((n) => n.trim()).filter((n) => n !== "")) {
    const number = list.find((n) => n.phoneNumberId === id);
    if (!number) throw new ConfigError("WHATSAPP_SDES_NUMBERS", `${id.slice(0, 40)} is not one of WHATSAPP_PHONE_NUMBERS`);
    number.keyExchange = "SDES";
  }
  return { accessToken: token, wabaId, numbers: list };
}

export function redactConfig(config: GatewayConfig): unknown {
  return {
    ...config,
    meta: {
      ...config.meta,
      appSecret: "***",
      verifyToken: "***",
      pageAccessToken: config.meta.pageAccessToken === undefined ? undefined : "***",
      pages: config.meta.pages.map((p) => ({ ...p, accessToken: "***" })),
    },
    whatsApp: config.whatsApp && { ...config.whatsApp, accessToken: "***" },
    events: { ...config.events, secret: config.events.secret === undefined ? undefined : "***" },
    cluster: redactClusterConfig(config.cluster),
    sip: {
      ...config.sip,
      backend: config.sip.backend.kind === "drachtio" ? { ...config.sip.backend, secret: "***" } : config.sip.backend,
      auth: config.sip.auth ? { username: config.sip.auth.username, password: "***" } : undefined,
      agentAuth: config.sip.agentAuth ? { ...config.sip.agentAuth, password: "***" } : undefined,
      register: config.sip.register && { ...config.sip.register, password: config.sip.register.password === undefined ? undefined : "***" },
      tls: config.sip.tls && { certFile: config.sip.tls.certFile, keyFile: config.sip.tls.keyFile, caFile: config.sip.tls.caFile, verify: config.sip.tls.verify },
    },
  };
}
