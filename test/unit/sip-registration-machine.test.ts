import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../sip/logger.js";
import {
  RegistrationMachine,
  refreshDelayS,
  retryDelayMs,
  type RegisterOutcome,
  type RegistrationState,
  type RegistrationTransport,
} from "../../sip/registration-machine.js";

/** A transport that records each REGISTER and lets the test answer it. */
class ScriptedTransport implements RegistrationTransport {
  readonly sent: { expiresS: number; answer: (rs: Partial<RegisterOutcome> & { status: number }) => void; abandoned: boolean }[] = [];
  /** Challenges the machine has taken (acceptChallenge answered true). */
  accepted = 0;
  /** Whether acceptChallenge says yes (false: a wrong password's same nonce again). */
  challengeUsable = true;

  send(expiresS: number, onFinal: (rs: RegisterOutcome) => void): { abandon(): void } {
    const entry = {
      expiresS,
      abandoned: false,
      answer: (rs: Partial<RegisterOutcome> & { status: number }) => {
        if (entry.abandoned) return;
        onFinal({
          reason: "",
          minExpiresS: undefined,
          grantedExpiresS: undefined,
          acceptChallenge: () => {
            if (this.challengeUsable) this.accepted++;
            return this.challengeUsable;
          },
          ...rs,
        });
      },
    };
    this.sent.push(entry);
    return { abandon: () => (entry.abandoned = true) };
  }

  last(): ScriptedTransport["sent"][number] {
    return this.sent[this.sent.length - 1]!;
  }
}

describe("registration state machine", () => {
  let transport: ScriptedTransport;
  let machine: RegistrationMachine;
  let states: RegistrationState[];

  beforeEach(() => {
    vi.useFakeTimers();
    transport = new ScriptedTransport();
    machine = new RegistrationMachine(transport, { registrar: "sip:pbx", aor: "sip:gw@pbx", expiresS: 120 }, silentLogger);
    states = [];
    machine.on("state", (s) => states.push(s));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("answers a challenge, binds, and refreshes the granted interval less the margin", () => {
    machine.start();
    transport.last().answer({ status: 401 });
    expect(transport.sent.map((s) => s.expiresS)).toEqual([120, 120]);
    transport.last().answer({ status: 200, grantedExpiresS: 100 });
    expect(machine.state).toBe("registered");
    expect(states).toEqual(["registered"]);
    vi.advanceTimersByTime(69_999);
    expect(transport.sent).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(transport.sent).toHaveLength(3);
    // A refresh answered again keeps the state as it is: no event.
    transport.last().answer({ status: 200 });
    expect(states).toEqual(["registered"]);
  });

  it("follows a 423's Min-Expires for the binding's later REGISTERs, but not past a day", () => {
    machine.start();
    transport.last().answer({ status: 423, minExpiresS: 600 });
    transport.last().answer({ status: 200, grantedExpiresS: 4 });
    vi.advanceTimersByTime(2_000);
    expect(transport.sent.map((s) => s.expiresS)).toEqual([120, 600, 600]);
    transport.last().answer({ status: 423, minExpiresS: 90_000 });
    expect(machine.state).toBe("failed");
  });

  it("stops answering challenges after two rounds in a row, and when one cannot be answered", () => {
    machine.start();
    transport.last().answer({ status: 401 });
    transport.last().answer({ status: 407 });
    transport.last().answer({ status: 401 });
    expect(transport.sent).toHaveLength(3);
    expect(machine.state).toBe("failed");
    transport.challengeUsable = false;
    vi.advanceTimersByTime(5_000);
    transport.last().answer({ status: 401 });
    expect(transport.sent).toHaveLength(4);
    expect(machine.state).toBe("failed");
  });

  it("backs off 5 s, 10 s, 20 s… up to the ceiling, and starts over once bound", () => {
    expect([0, 1, 2, 6, 7, 20].map((n) => retryDelayMs(n))).toEqual([5_000, 10_000, 20_000, 300_000, 300_000, 300_000]);
    machine.start();
    transport.last().answer({ status: 503 });
    vi.advanceTimersByTime(4_999);
    expect(transport.sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    transport.last().answer({ status: 408 });
    vi.advanceTimersByTime(9_999);
    expect(transport.sent).toHaveLength(2);
    vi.advanceTimersByTime(1);
    transport.last().answer({ status: 200, grantedExpiresS: 3600 });
    expect(states).toEqual(["failed", "registered"]);
    vi.advanceTimersByTime(3_570_000);
    transport.last().answer({ status: 500 });
    vi.advanceTimersByTime(5_000);
    expect(transport.sent).toHaveLength(5);
  });

  it("refreshes short bindings at half their interval, never sooner than a second, and at least daily", () => {
    expect([3600, 60, 40, 2, 1, 999_999_999].map(refreshDelayS)).toEqual([3570, 30, 20, 1, 1, 86_400]);
  });

  it("refreshNow drops the REGISTER still waiting and sends a new one at once", () => {
    machine.start();
    const first = transport.last();
    machine.refreshNow();
    expect(first.abandoned).toBe(true);
    expect(transport.sent).toHaveLength(2);
    first.answer({ status: 403 });
    expect(machine.state).toBe("registering");
    transport.last().answer({ status: 200 });
    expect(machine.state).toBe("registered");
  });

  it("makes the binding again at once when the connection it stands on closes", () => {
    let lost: (() => void) | undefined;
    let released = 0;
    machine.start();
    transport.last().answer({
      status: 200,
      holdConnection: (onLost) => {
        lost = onLost;
        return () => released++;
      },
    });
    lost!();
    vi.advanceTimersByTime(0);
    expect(transport.sent).toHaveLength(2);
    // The replaced connection's late loss does nothing.
    transport.last().answer({ status: 200 });
    expect(released).toBe(0);
    lost!();
    vi.advanceTimersByTime(0);
    expect(transport.sent).toHaveLength(2);
  });

  it("removes the binding at stop, answering a fresh challenge once, and waits no longer than 2 s", async () => {
    machine.start();
    transport.last().answer({ status: 200, grantedExpiresS: 60, holdConnection: () => () => undefined });
    const stopped = machine.stop();
    expect(transport.last().expiresS).toBe(0);
    transport.last().answer({ status: 401 });
    expect(transport.sent.map((s) => s.expiresS)).toEqual([120, 0, 0]);
    transport.last().answer({ status: 200 });
    await stopped;
    expect(states).toEqual(["registered", "stopped"]);
    vi.advanceTimersByTime(600_000);
    expect(transport.sent).toHaveLength(3);

    const other = new RegistrationMachine(transport, { registrar: "sip:pbx", aor: "sip:gw@pbx", expiresS: 120 }, silentLogger);
    other.start();
    transport.last().answer({ status: 200 });
    const silent = other.stop();
    await vi.advanceTimersByTimeAsync(2_000);
    await silent;
    expect(other.state).toBe("stopped");
  });

  it("stopping before any binding sends nothing and ignores the pending answer", async () => {
    machine.start();
    const pending = transport.last();
    await machine.stop();
    expect(pending.abandoned).toBe(true);
    expect(transport.sent).toHaveLength(1);
    expect(machine.state).toBe("stopped");
  });
});
