import { describe, expect, it } from "vitest";
import { SipHeaderError } from "../../sip/errors.js";
import { parseOptionTags, unsupportedTags } from "../../sip/option-tags.js";
import { formatReplaces, parseReferTo, parseReplaces } from "../../sip/refer.js";
import { classifyRSeq, formatRAck, initialRSeq, parseRAck, parseRSeq } from "../../sip/reliable-provisional.js";
import { parseSipfragStatusLine, sipfragStatusLine } from "../../sip/sipfrag.js";

describe("option tags", () => {
  it("reads folded Supported/Require values case-insensitively", () => {
    expect([...parseOptionTags("timer, 100REL,replaces ,")]).toEqual(["timer", "100rel", "replaces"]);
    expect(parseOptionTags(undefined).size).toBe(0);
  });

  it("names only the required tags we lack", () => {
    expect(unsupportedTags("100rel, timer, replaces")).toEqual([]);
    expect(unsupportedTags("timer, precondition, sec-agree")).toEqual(["precondition", "sec-agree"]);
  });
});

describe("RSeq and RAck (RFC 3262 §7)", () => {
  it("reads and writes them", () => {
    expect(parseRSeq("988789")).toBe(988789);
    expect(parseRSeq(undefined)).toBeUndefined();
    expect(parseRAck("776656 1 INVITE")).toEqual({ rseq: 776656, cseq: 1, method: "INVITE" });
    expect(parseRAck(" 5   314159  invite ")).toEqual({ rseq: 5, cseq: 314159, method: "INVITE" });
    expect(formatRAck({ rseq: 7, cseq: 2, method: "INVITE" })).toBe("7 2 INVITE");
  });

  it("refuses unreadable values", () => {
    for (const bad of ["0", "x", "4294967296", "-1"]) expect(() => parseRSeq(bad), bad).toThrow(SipHeaderError);
    for (const bad of ["1 INVITE", "a 1 INVITE", "1 2 3 4"]) expect(() => parseRAck(bad), bad).toThrow(SipHeaderError);
  });

  it("classifies reliable provisionals: first and next are new, repeats are retransmissions, gaps wait", () => {
    expect(classifyRSeq(undefined, 4711)).toBe("new");
    expect(classifyRSeq(4711, 4712)).toBe("new");
    expect(classifyRSeq(4712, 4712)).toBe("retransmission");
    expect(classifyRSeq(4712, 4700)).toBe("retransmission");
    expect(classifyRSeq(4712, 4714)).toBe("out-of-order");
  });

  it("starts our RSeq low enough to count up from", () => {
    expect(initialRSeq(() => 0)).toBe(1);
    expect(initialRSeq(() => 0.999999999)).toBeLessThanOrEqual(2 ** 31);
  });
});

describe("Replaces (RFC 3891 §6.1)", () => {
  it("reads the Call-ID, both tags and early-only, in any order", () => {
    expect(parseReplaces("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only")).toEqual({
      callId: "98732@sip.example.com",
      toTag: "ff87ff",
      fromTag: "r33th4x0r",
      earlyOnly: true,
    });
    expect(parseReplaces("abc ; to-tag=1 ; from-tag=2 ; x-other=3")).toEqual({ callId: "abc", toTag: "1", fromTag: "2", earlyOnly: false });
  });

  it("needs exactly one of each tag and a Call-ID", () => {
    for (const bad of ["abc;to-tag=1", "abc;from-tag=2", ";to-tag=1;from-tag=2", "abc;to-tag=1;to-tag=3;from-tag=2", "a b;to-tag=1;from-tag=2"]) {
      expect(() => parseReplaces(bad), bad).toThrow(SipHeaderError);
    }
  });

  it("writes what it reads", () => {
    const r = { callId: "x@y", toTag: "t", fromTag: "f", earlyOnly: true };
    expect(parseReplaces(formatReplaces(r))).toEqual(r);
  });
});

describe("Refer-To (RFC 3515 §2.1)", () => {
  it("a blind transfer: the URI, no headers, no Replaces", () => {
    expect(parseReferTo("<sip:2000@pbx.example.com;transport=tcp>")).toEqual({
      uri: "sip:2000@pbx.example.com;transport=tcp",
      displayName: undefined,
      headers: {},
      replaces: undefined,
    });
    expect(parseReferTo("sip:2000@pbx.example.com;method=INVITE").uri).toBe("sip:2000@pbx.example.com");
  });

  it("an attended transfer: the escaped Replaces comes out parsed, the URI without its headers", () => {
    const t = parseReferTo('"Bob \\"B\\" Smith" <sip:bob@b.example?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994&Require=replaces>');
    expect(t.uri).toBe("sip:bob@b.example");
    expect(t.displayName).toBe('Bob "B" Smith');
    expect(t.headers).toEqual({ Replaces: "12345@192.168.118.3;to-tag=12345;from-tag=5FFE-3994", Require: "replaces" });
    expect(t.replaces).toEqual({ callId: "12345@192.168.118.3", toTag: "12345", fromTag: "5FFE-3994", earlyOnly: false });
  });

  it("refuses what is not a URI or has a broken Replaces", () => {
    for (const bad of ["", "<>", "bob", "<sip:bob@b?Replaces=abc>", "<sip:bob@b?Replaces=%zz>", "<sip:bob@b?=x>"]) {
      expect(() => parseReferTo(bad), bad).toThrow(SipHeaderError);
    }
  });
});

describe("sipfrag status lines (RFC 3420)", () => {
  it("writes the usual reason when none is given", () => {
    expect(sipfragStatusLine(100)).toBe("SIP/2.0 100 Trying");
    expect(sipfragStatusLine(180)).toBe("SIP/2.0 180 Ringing");
    expect(sipfragStatusLine(486, "Agent Busy")).toBe("SIP/2.0 486 Agent Busy");
    expect(sipfragStatusLine(299)).toBe("SIP/2.0 299 OK");
    expect(() => sipfragStatusLine(99)).toThrow(SipHeaderError);
  });

  it("reads the status line of a body", () => {
    expect(parseSipfragStatusLine("SIP/2.0 200 OK\r\n")).toEqual({ status: 200, reason: "OK" });
    expect(parseSipfragStatusLine("SIP/2.0 603 Declined\r\nVia: x\r\n")).toEqual({ status: 603, reason: "Declined" });
    for (const bad of ["HTTP/1.1 200 OK", "SIP/2.0 99 Low", "INVITE sip:a SIP/2.0", ""]) expect(() => parseSipfragStatusLine(bad), bad).toThrow(SipHeaderError);
  });
});
