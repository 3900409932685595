import sip from "sip";
import { describe, expect, it } from "vitest";
import { glareDelayMs } from "../../sip/session-timeouts.js";
import {
  checkExtraHeaders,
  checkSipUri,
  firstRouteUri,
  fromWire,
  isValidMessage,
  quoteDisplayName,
  readDisplayName,
  toWire,
} from "../../sip/embedded/message.js";
import { SipArgumentError } from "../../sip/errors.js";
import { failureKindForStatus } from "../../sip/signaling.js";

describe("wire encoding", () => {
  it("sends UTF-8 bytes through npm sip's latin1 strings and back", () => {
    const wire = toWire("Zoë");
    expect(wire.length).toBe(4); // Content-Length counts bytes
    expect(Buffer.from(wire, "latin1")).toEqual(Buffer.from("Zoë", "utf8"));
    expect(fromWire(wire)).toBe("Zoë");
  });

  it("quotes display names and reads them back", () => {
    expect(quoteDisplayName('Zoë "Z" \\ x\r\n')).toBe(`"${toWire('Zoë \\"Z\\" \\\\ x  ')}"`);
    expect(readDisplayName(quoteDisplayName('Zoë "Z"'))).toBe('Zoë "Z"');
    expect(readDisplayName("Bob")).toBe("Bob");
    expect(readDisplayName(undefined)).toBeUndefined();
  });
});

describe("input checks", () => {
  it("accepts SIP URIs and refuses others", () => {
    expect(checkSipUri("sip:100@pbx.example:5070;transport=tcp").port).toBe(5070);
    for (const bad of ["tel:+123", "sip:", "sip:a@b c", "<sip:a@b>", "sips:a@b"]) expect(() => checkSipUri(bad)).toThrow(SipArgumentError);
  });

  it("refuses header injection and core headers", () => {
    expect(checkExtraHeaders({ "X-Meta-PSID": "123", "X-Name": "Zoë" })).toEqual({ "X-Meta-PSID": "123", "X-Name": toWire("Zoë") });
    expect(() => checkExtraHeaders({ "X-A": "1\r\nVia: x" })).toThrow(SipArgumentError);
    expect(() => checkExtraHeaders({ "Bad Name": "1" })).toThrow(SipArgumentError);
    expect(() => checkExtraHeaders({ "call-id": "1" })).toThrow(/set by the stack/);
  });

  it("finds the first Route URI", () => {
    expect(firstRouteUri('"p" <sip:p1;lr>, <sip:p2;lr>')).toBe("sip:p1;lr");
    expect(firstRouteUri("garbage")).toBeUndefined();
  });
});

describe("message validation", () => {
  it("accepts complete messages and refuses ones missing what the layers rely on", () => {
    const good = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    expect(isValidMessage(sip.parse(good))).toBe(true);
    expect(isValidMessage(sip.parse(good.replace("Call-ID: c\r\n", "")))).toBe(false);
    expect(isValidMessage(sip.parse(good.replace("CSeq: 1 OPTIONS", "CSeq: x")))).toBe(false);
    expect(isValidMessage(sip.parse(good.replace("Via: SIP/2.0/UDP h;branch=z9hG4bK1", "Via: nonsense")))).toBe(false);
    expect(isValidMessage(sip.parse("SIP/2.0 999 Weird\r\n\r\n"))).toBe(false);
    expect(isValidMessage(sip.parse("garbage"))).toBe(false);
  });
});

describe("failure kinds and glare delay", () => {
  it("maps statuses to what they mean for the caller", () => {
    expect(failureKindForStatus(486)).toBe("busy");
    expect(failureKindForStatus(600)).toBe("busy");
    expect(failureKindForStatus(603)).toBe("declined");
    expect(failureKindForStatus(480)).toBe("no-answer");
    expect(failureKindForStatus(408)).toBe("no-answer");
    expect(failureKindForStatus(404)).toBe("unreachable");
    expect(failureKindForStatus(503)).toBe("unreachable");
    expect(failureKindForStatus(500)).toBe("failed");
    expect(failureKindForStatus(488)).toBe("failed");
  });

  it("backs off 2.1–4 s when we own the Call-ID, 0–2 s otherwise, in 10 ms steps", () => {
    for (let i = 0; i < 200; i++) {
      const own = glareDelayMs(true);
      const other = glareDelayMs(false);
      expect(own).toBeGreaterThanOrEqual(2100);
      expect(own).toBeLessThanOrEqual(4000);
      expect(other).toBeGreaterThanOrEqual(0);
      expect(other).toBeLessThanOrEqual(2000);
      expect(own % 10).toBe(0);
    }
  });
});
