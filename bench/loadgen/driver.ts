import type { BenchCall } from "./bench-call.js";

/** How a load generator sets calls up and down on one system under test. */
export interface CallDriver {
  /** Starts signalling; media comes up later (BenchCall.waitMediaUp). Rejects or fails the call on error. */
  place(call: BenchCall): Promise<void>;
  /** Ends the call from the consumer's side; resolves once both legs are released. */
  hangup(call: BenchCall): Promise<void>;
  close(): Promise<void>;
}
