import { describe, expect, it } from "vitest";
import { StreamFramer, StreamFramingError } from "../../sip/embedded/stream-framer.js";

const msg = (body = ""): string => `OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

describe("StreamFramer (SIP over TCP)", () => {
  it("splits back-to-back messages and waits for partial ones", () => {
    const f = new StreamFramer();
    const two = msg("v=0\r\n") + msg();
    expect(f.push(two.slice(0, 10))).toEqual([]);
    expect(f.push(two.slice(10, msg("v=0\r\n").length - 2))).toEqual([]);
    expect(f.push(two.slice(msg("v=0\r\n").length - 2))).toEqual([msg("v=0\r\n"), msg()]);
  });

  it("skips keep-alive CRLFs and reads the compact l: form", () => {
    const f = new StreamFramer();
    const compact = "BYE sip:a@b SIP/2.0\r\nl: 2\r\n\r\nhi";
    expect(f.push(`\r\n\r\n${compact}`)).toEqual([compact]);
  });

  it("throws on what cannot be framed", () => {
    expect(() => new StreamFramer().push("OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n")).toThrow(StreamFramingError);
    expect(() => new StreamFramer().push("OPTIONS sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n")).toThrow(/bad Content-Length/);
    expect(() => new StreamFramer(100).push("X".repeat(200))).toThrow(/too large/);
    expect(() => new StreamFramer(1000, 10).push("A\r\nContent-Length: 11\r\n\r\n")).toThrow(/body too large/);
  });

  it("refuses a declared body over the bound without waiting for it, keeping the header block and earlier messages", () => {
    const f = new StreamFramer(1000, 1000);
    const huge = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP x\r\nContent-Length: 1000000000\r\n\r\nv=0";
    let caught: unknown;
    try {
      f.push(msg("hi") + huge);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StreamFramingError);
    const err = caught as StreamFramingError;
    expect(err.message).toBe("body too large");
    expect(err.head).toBe("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP x\r\nContent-Length: 1000000000");
    expect(err.declaredBodyBytes).toBe(1e9);
    expect(err.framed).toEqual([msg("hi")]);
    // The stream is poisoned: nothing after it is framed or buffered.
    expect(() => f.push(msg())).toThrow(/already failed/);
  });
});
