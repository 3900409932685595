/**
 * What a burst of new calls asks of the machine, next to what the live calls leave free: the
 * arithmetic behind a burst window's figures. A burst whose set-up work is larger than the spare
 * CPU keeps every core busy for at least `asked / spare` seconds, and live packets then wait for a
 * core whatever the gateway does on its threads.
 */
export interface BurstDemand {
  calls: number;
  /** CPU time the burst's calls take, gateways and load generators (one churn call each). */
  askedCoreSeconds: number;
  /** Cores nobody used while the live calls ran alone. */
  spareCores: number;
  /** Shortest time the machine runs flat out to absorb the burst; null when nothing is spare. */
  saturatedS: number | null;
}

export interface LiveUse {
  /** The system under test's cores with the live calls alone. */
  cores: number;
  loadgenCores: number;
  otherCores: number;
}

export function burstDemand(calls: number, cpuMsPerCall: { gateway: number; loadgen: number }, live: LiveUse, machineCores: number): BurstDemand {
  const askedCoreSeconds = (calls * (cpuMsPerCall.gateway + cpuMsPerCall.loadgen)) / 1000;
  const spareCores = Math.max(0, machineCores - live.cores - live.loadgenCores - live.otherCores);
  return { calls, askedCoreSeconds, spareCores, saturatedS: spareCores > 0 ? askedCoreSeconds / spareCores : null };
}
