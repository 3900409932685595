/**
 * Every key the cluster writes, in one place. All of a call's keys and its owner's set are plain
 * keys of one Redis (or a Sentinel-managed primary): the claim scripts touch several at once, which
 * a sharded Redis Cluster would refuse.
 */
export class ClusterKeys {
  constructor(private readonly prefix: string) {}

  /** The claim: the owner's instance id, expiring with the lease. */
  owner(callId: string): string {
    return `${this.prefix}own:${callId}`;
  }

  /** What is known of the call beyond its lease: live (with its owner and tag) or ended. */
  call(callId: string): string {
    return `${this.prefix}call:${callId}`;
  }

  /** The calls an instance owns, so survivors can find them once it is gone. */
  callsOf(instanceId: string): string {
    return `${this.prefix}calls:${instanceId}`;
  }

  /** An instance's published address, load and state, expiring with the lease: its liveness. */
  instance(instanceId: string): string {
    return `${this.prefix}inst:${instanceId}`;
  }

  /** Every instance that ever announced itself and has not been cleaned up after its death. */
  instances(): string {
    return `${this.prefix}instances`;
  }

  dedupe(hash: string): string {
    return `${this.prefix}seen:${hash}`;
  }
}
