/**
 * The cluster's settings. REDIS_URL unset means one instance on its own, exactly as without this
 * module; every other key here is then an error, so a configuration never looks clustered when it
 * is not.
 */
export interface ClusterConfig {
  /** redis:// or rediss:// URL of the shared Redis (or any Redis-compatible service). */
  redisUrl: string;
  /** Signs webhooks forwarded between instances (HMAC-SHA256); the same on every instance. */
  secret: string;
  /** Where the other instances reach this one's HTTP port; undefined = from the bound address at start. */
  advertiseUrl: string | undefined;
  /** This instance's name in Redis; undefined = host name, process id and a random suffix. */
  instanceId: string | undefined;
  /** How long a claim on a call (and an instance's liveness) lasts without renewal. */
  leaseMs: number;
  /** Prefix of every key the gateway writes, so several deployments can share one Redis. */
  keyPrefix: string;
}

export const CLUSTER_KEYS = ["REDIS_URL", "CLUSTER_SECRET", "CLUSTER_ADVERTISE_URL", "CLUSTER_INSTANCE_ID", "CLUSTER_LEASE_MS", "REDIS_KEY_PREFIX"] as const;
export type ClusterKey = (typeof CLUSTER_KEYS)[number];

export interface ClusterConfigReader {
  optional(key: ClusterKey): string | undefined;
  int(key: ClusterKey, fallback: number, min: number, max: number): number;
  fail(key: ClusterKey, message: string): never;
}

export const DEFAULT_LEASE_MS = 15_000;
const MIN_SECRET_LENGTH = 16;
const INSTANCE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const KEY_PREFIX = /^[A-Za-z0-9:._-]{0,64}$/;

export function readClusterConfig(r: ClusterConfigReader): ClusterConfig | undefined {
  const redisUrl = r.optional("REDIS_URL");
  if (redisUrl === undefined) {
    for (const key of CLUSTER_KEYS) {
      if (r.optional(key) !== undefined) r.fail(key, "only applies with REDIS_URL (several instances)");
    }
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(redisUrl);
  } catch {
    return r.fail("REDIS_URL", "must be a redis:// or rediss:// URL");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") r.fail("REDIS_URL", `must be a redis:// or rediss:// URL, got ${url.protocol}`);
  const secret = r.optional("CLUSTER_SECRET");
  if (secret === undefined) r.fail("CLUSTER_SECRET", "is required with REDIS_URL (instances sign the webhooks they forward)");
  if (secret.length < MIN_SECRET_LENGTH) r.fail("CLUSTER_SECRET", `must be at least ${MIN_SECRET_LENGTH} characters`);
  const advertiseUrl = r.optional("CLUSTER_ADVERTISE_URL")?.replace(/\/+$/, "");
  if (advertiseUrl !== undefined && !/^https?:\/\/[^/\s]+$/.test(advertiseUrl)) {
    r.fail("CLUSTER_ADVERTISE_URL", `must be http(s)://host:port, got "${advertiseUrl.slice(0, 80)}"`);
  }
  const instanceId = r.optional("CLUSTER_INSTANCE_ID");
  if (instanceId !== undefined && !INSTANCE_ID.test(instanceId)) r.fail("CLUSTER_INSTANCE_ID", "must be 1-64 letters, digits, dots, dashes or underscores");
  const keyPrefix = r.optional("REDIS_KEY_PREFIX") ?? "msgw:";
  if (!KEY_PREFIX.test(keyPrefix)) r.fail("REDIS_KEY_PREFIX", "must be up to 64 letters, digits, colons, dots, dashes or underscores");
  return {
    redisUrl,
    secret,
    advertiseUrl,
    instanceId,
    leaseMs: r.int("CLUSTER_LEASE_MS", DEFAULT_LEASE_MS, 1_000, 300_000),
    keyPrefix,
  };
}

/** The cluster settings as the start-up log line shows them: no secret, no Redis password. */
export function redactClusterConfig(c: ClusterConfig | undefined): unknown {
  if (!c) return undefined;
  const url = new URL(c.redisUrl);
  if (url.password) url.password = "***";
  return { ...c, redisUrl: url.toString(), secret: "***" };
}
