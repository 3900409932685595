import { describe, expect, it } from "vitest";
import { StreamFramer, readKeepAlives, type KeepAliveSignal } from "../../sip/embedded/stream-framer.js";
import { nextPingDelayMs, pongTimeoutMs } from "../../sip/embedded/transport.js";

describe("RFC 5626 keep-alives in a SIP stream", () => {
  it("reads CRLFCRLF as a ping and a CRLF left over as a pong", () => {
    expect(readKeepAlives("\r\n\r\nINVITE", false)).toEqual({ consumed: 4, pings: 1, pong: false, held: false });
    expect(readKeepAlives("\r\nINVITE", false)).toEqual({ consumed: 2, pings: 0, pong: true, held: false });
    expect(readKeepAlives("\r\n\r\n\r\n\r\n", false)).toEqual({ consumed: 8, pings: 2, pong: false, held: false });
    expect(readKeepAlives("INVITE", false)).toEqual({ consumed: 0, pings: 0, pong: false, held: false });
  });

  it("holds a lone CRLF at the end (half a ping) unless a pong is awaited", () => {
    expect(readKeepAlives("\r\n", false)).toEqual({ consumed: 0, pings: 0, pong: false, held: true });
    expect(readKeepAlives("\r\n\r\n\r\n", false)).toEqual({ consumed: 4, pings: 1, pong: false, held: true });
    expect(readKeepAlives("\r\n", true)).toEqual({ consumed: 2, pings: 0, pong: true, held: false });
  });

  it("reports them from the framer between messages, a ping split in two included", () => {
    const signals: KeepAliveSignal[] = [];
    const framer = new StreamFramer(1000, 1000, (s) => signals.push(s));
    const bye = "BYE sip:a@b SIP/2.0\r\nl: 0\r\n\r\n";
    expect(framer.push("\r\n")).toEqual([]);
    expect(framer.push("\r\n")).toEqual([]);
    expect(framer.push(`${bye}\r\n\r\n${bye}`)).toEqual([bye, bye]);
    expect(signals).toEqual(["ping", "ping"]);
    let awaiting = true;
    const pongs: KeepAliveSignal[] = [];
    const waiting = new StreamFramer(1000, 1000, (s) => pongs.push(s), () => awaiting);
    waiting.push("\r\n");
    awaiting = false;
    expect(pongs).toEqual(["pong"]);
  });

  it("jitters pings between 80 and 100 % of the interval, and waits at most 10 s for a pong", () => {
    expect(nextPingDelayMs(30_000, () => 0)).toBe(24_000);
    expect(nextPingDelayMs(30_000, () => 0.999_999)).toBe(30_000);
    expect(pongTimeoutMs(30_000)).toBe(10_000);
    expect(pongTimeoutMs(1_000)).toBe(1_000);
  });
});
