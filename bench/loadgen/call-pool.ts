import { randomBytes } from "node:crypto";
import type { AddCallsResult, ChurnResult, HangupResult, LoadgenApi, SetupSample } from "../ipc.js";
import { pool, split, waitFor, withTimeout } from "../util/async.js";
import { BenchCall, type CallEnvironment } from "./bench-call.js";
import type { CallDriver } from "./driver.js";

const MAX_ERRORS = 5;

/** The calls one load generator holds up, and the ways it adds and ends them. */
export class CallPool {
  readonly active = new Map<string, BenchCall>();

  constructor(
    private readonly env: CallEnvironment,
    private readonly driver: CallDriver,
  ) {}

  /** Places `count` calls, `concurrency` at a time, and waits until each has media both ways. */
  async add(a: LoadgenApi["addCalls"]["args"]): Promise<AddCallsResult> {
    const calls = Array.from({ length: a.count }, () => this.newCall());
    const result: AddCallsResult = { up: 0, failed: 0, errors: [], setup: [] };
    await pool(calls, a.concurrency, async (call) => {
      this.active.set(call.id, call);
      try {
        await this.driver.place(call);
        await call.waitMediaUp(a.timeoutMs);
        result.up++;
      } catch (err) {
        call.fail((err as Error).message);
        result.failed++;
        if (result.errors.length < MAX_ERRORS) result.errors.push((err as Error).message);
        this.active.delete(call.id);
        void this.driver.hangup(call);
      }
      result.setup.push(setupOf(call));
    });
    return result;
  }

  async hangupAll(a: LoadgenApi["hangupAll"]["args"]): Promise<HangupResult> {
    const calls = [...this.active.values()];
    this.active.clear();
    const result: HangupResult = { ended: 0, failed: 0, errors: [] };
    await pool(calls, a.concurrency, async (call) => {
      const wasFailed = call.state === "failed";
      await withTimeout(this.driver.hangup(call), a.timeoutMs).catch((err: unknown) => call.fail((err as Error).message));
      if (hasFailed(call) && !wasFailed) {
        result.failed++;
        if (result.errors.length < MAX_ERRORS) result.errors.push(call.failure ?? "failed");
      } else result.ended++;
    });
    return result;
  }

  /**
   * Calls arriving at a steady pace (or all at once) beside the live ones: each is set up, timed
   * (set-up samples), and hung up as soon as its media is up both ways. They never join `active`,
   * so measurement windows and hangupAll see only the live calls.
   */
  async arrivals(a: LoadgenApi["arrivals"]["args"]): Promise<AddCallsResult> {
    const result: AddCallsResult = { up: 0, failed: 0, errors: [], setup: [] };
    const started = performance.now();
    await Promise.all(
      Array.from({ length: a.count }, async (_, i) => {
        const due = started + i * a.intervalMs;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const call = this.newCall();
        try {
          await this.driver.place(call);
          await call.waitMediaUp(a.timeoutMs);
          result.up++;
        } catch (err) {
          call.fail((err as Error).message);
          result.failed++;
          if (result.errors.length < MAX_ERRORS) result.errors.push((err as Error).message);
        }
        result.setup.push(setupOf(call));
        await withTimeout(this.driver.hangup(call), a.timeoutMs).catch(() => undefined);
      }),
    );
    return result;
  }

  /** Short calls one after another in each lane: up, a few packets both ways, down. */
  async churn(a: LoadgenApi["churn"]["args"]): Promise<ChurnResult> {
    const started = performance.now();
    const result: ChurnResult = { completed: 0, failed: 0, errors: [], durationMs: 0 };
    await Promise.all(
      split(a.count, a.lanes).map(async (n) => {
        for (let i = 0; i < n; i++) {
          const call = this.newCall();
          try {
            await this.driver.place(call);
            await waitFor(() => call.packetsBothWays >= a.packets || call.state === "failed", a.timeoutMs);
            if (hasFailed(call)) throw new Error(call.failure ?? "failed");
            await withTimeout(this.driver.hangup(call), a.timeoutMs);
            if (hasFailed(call)) throw new Error(call.failure ?? "failed");
            result.completed++;
          } catch (err) {
            call.fail((err as Error).message);
            await this.driver.hangup(call).catch(() => undefined);
            result.failed++;
            if (result.errors.length < MAX_ERRORS) result.errors.push((err as Error).message);
          }
        }
      }),
    );
    result.durationMs = performance.now() - started;
    return result;
  }

  failAll(reason: string): void {
    for (const call of this.active.values()) call.fail(reason);
    this.active.clear();
  }

  private newCall(): BenchCall {
    const id = `c_bench_${randomBytes(9).toString("hex")}`;
    // A PSID-like number: 16 digits.
    const psid = String(10n ** 15n + BigInt(`0x${randomBytes(6).toString("hex")}`));
    return new BenchCall(id, psid, this.env);
  }
}

/** Read through a function so TypeScript does not narrow the state across awaits. */
function hasFailed(call: BenchCall): boolean {
  return call.state === "failed";
}

function setupOf(call: BenchCall): SetupSample {
  const t = call.times;
  return {
    inviteMs: t.inviteArrivedAt !== undefined && t.webhookSentAt !== undefined ? t.inviteArrivedAt - t.webhookSentAt : undefined,
    acceptMs: t.acceptArrivedAt !== undefined && t.okSentAt !== undefined ? t.acceptArrivedAt - t.okSentAt : undefined,
    mediaUpMs: t.mediaUpAt !== undefined ? t.mediaUpAt - call.startedAt : undefined,
  };
}
