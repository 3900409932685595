import { describe, expect, it } from "vitest";
import { checkSipMessage, DEFAULT_SIP_MESSAGE_LIMITS, type SipMessageLimits } from "../../sip/embedded/message-limits.js";

const LIMITS: SipMessageLimits = { maxMessageBytes: 4096, maxHeaders: 10, maxHeaderBytes: 256 };

const options = (extra: string[] = [], body = ""): string =>
  [
    "OPTIONS sip:gw@127.0.0.1 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1",
    "From: <sip:a@127.0.0.1>;tag=1",
    "To: <sip:gw@127.0.0.1>",
    "Call-ID: x@test",
    "CSeq: 1 OPTIONS",
    ...extra,
    `Content-Length: ${body.length}`,
    "",
    body,
  ].join("\r\n");

describe("checkSipMessage", () => {
  it("admits an ordinary message and strips keep-alive CRLFs before it", () => {
    const m = options();
    expect(checkSipMessage(`\r\n\r\n${m}`, LIMITS)).toEqual({ ok: true, text: m });
    expect(checkSipMessage("\r\n\r\n", LIMITS)).toEqual({ ok: true, text: "" });
  });

  it("refuses control characters in the headers (a NUL in a value), keeps HTAB, and leaves the body alone", () => {
    expect(checkSipMessage(options(["X-A: a\u0000b"]), LIMITS)).toMatchObject({ ok: false, kind: "malformed" });
    expect(checkSipMessage(options(["X-A: a\u001fb"]), LIMITS)).toMatchObject({ ok: false, kind: "malformed" });
    expect(checkSipMessage(options(["X-A: a\u007fb"]), LIMITS)).toMatchObject({ ok: false, kind: "malformed" });
    expect(checkSipMessage(options(["X-A: a\tb"]), LIMITS).ok).toBe(true);
    expect(checkSipMessage(options([], "binary\u0000body"), LIMITS).ok).toBe(true);
  });

  it("refuses a message over maxMessageBytes and keeps its header block for the answer", () => {
    const r = checkSipMessage(options([], "x".repeat(5000)), LIMITS);
    expect(r).toMatchObject({ ok: false, kind: "limit", limit: "maxMessageBytes" });
    expect(r.ok === false && r.kind === "limit" ? r.head : undefined).toMatch(/^OPTIONS sip:gw@127\.0\.0\.1 SIP\/2\.0\r\n.*Content-Length: 5000$/s);
  });

  it("counts header fields, a folded field once, and refuses past maxHeaders", () => {
    const three = Array.from({ length: 3 }, (_, i) => `X-${i}: a`);
    expect(checkSipMessage(options(three), LIMITS).ok).toBe(true);
    expect(checkSipMessage(options([...three, "X-Folded: a", " b", "\tc"]), LIMITS).ok).toBe(true);
    expect(checkSipMessage(options([...three, "X-3: a", "X-4: b"]), LIMITS)).toMatchObject({ ok: false, limit: "maxHeaders" });
  });

  it("refuses a header field or a start line over maxHeaderBytes, folded lines included", () => {
    expect(checkSipMessage(options([`X-Long: ${"a".repeat(300)}`]), LIMITS)).toMatchObject({ ok: false, limit: "maxHeaderBytes" });
    expect(checkSipMessage(options(["X-Folded: a", ...Array.from({ length: 30 }, () => ` ${"b".repeat(10)}`)]), LIMITS)).toMatchObject({
      ok: false,
      limit: "maxHeaderBytes",
    });
    const longUri = options().replace("sip:gw@127.0.0.1 SIP", `sip:${"1".repeat(300)}@127.0.0.1 SIP`);
    expect(checkSipMessage(longUri, LIMITS)).toMatchObject({ ok: false, limit: "maxHeaderBytes", reason: expect.stringContaining("start line") });
  });

  it("calls a message with no blank line malformed, not a limit", () => {
    expect(checkSipMessage("INVITE sip:a@b SIP/2.0\r\nVia: x", LIMITS)).toMatchObject({ ok: false, kind: "malformed" });
  });

  it("stays linear on input that makes npm sip's parser backtrack", () => {
    const started = performance.now();
    for (const raw of [" ".repeat(65_000), ` \r\n`.repeat(21_000), `INVITE ${"a".repeat(65_000)}`]) {
      checkSipMessage(raw, DEFAULT_SIP_MESSAGE_LIMITS);
    }
    expect(performance.now() - started).toBeLessThan(50);
  });
});
