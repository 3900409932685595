import sip from "sip";
import { describe, expect, it } from "vitest";
import {
  acceptRemoteCSeq,
  dialogFromUacResponse,
  dialogFromUasRequest,
  dialogKey,
  dialogKeyOfRequest,
  inDialogRequest,
  isLooseRoute,
  refreshTarget,
  requestTargeting,
} from "../../sip/embedded/dialog.js";
import { isValidMessage, type SipRequest, type SipResponse } from "../../sip/embedded/message.js";

function parse<T extends SipRequest | SipResponse>(lines: string[]): T {
  const m = sip.parse(`${lines.join("\r\n")}\r\n\r\n`);
  if (!isValidMessage(m)) throw new Error("test message invalid");
  return m as T;
}

const ok200 = parse<SipResponse>([
  "SIP/2.0 200 OK",
  "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc",
  'From: "Zoë" <sip:gw@192.0.2.1>;tag=ours',
  "To: <sip:agent@pbx.example>;tag=theirs",
  "Call-ID: call-1@192.0.2.1",
  "CSeq: 5 INVITE",
  "Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr;ftag=x>",
  "Contact: <sip:agent@10.0.0.7:5062;transport=tcp>",
]);

const invite = parse<SipRequest>([
  "INVITE sip:gw@192.0.2.1 SIP/2.0",
  "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKinv",
  'From: "Agent" <sip:agent@pbx.example>;tag=theirs',
  "To: <sip:gw@192.0.2.1>",
  "Call-ID: call-2@pbx",
  "CSeq: 17 INVITE",
  "Record-Route: <sip:p1.example;lr>",
  "Record-Route: <sip:p2.example;lr>",
  "Contact: <sip:agent@10.0.0.7>",
]);

describe("dialog creation (RFC 3261 §12.1)", () => {
  it("UAC: remote tag from To, target from Contact, route set = Record-Route reversed", () => {
    const d = dialogFromUacResponse({ callId: "call-1@192.0.2.1", localTag: "ours", localAddr: '"Zoë" <sip:gw@192.0.2.1>', remoteAddr: "<sip:agent@pbx.example>", cseq: 5, uri: "sip:agent@pbx.example" }, ok200);
    expect(d).toMatchObject({
      remoteTag: "theirs",
      remoteTarget: "sip:agent@10.0.0.7:5062;transport=tcp",
      routeSet: ["<sip:p1.example;lr;ftag=x>", "<sip:p2.example;lr>"],
      localCSeq: 5,
      remoteCSeq: undefined,
    });
  });

  it("UAC: a 2xx without Contact falls back to the Request-URI so it can still be ACKed", () => {
    const noContact = { ...ok200, headers: { ...ok200.headers, contact: undefined } } as SipResponse;
    expect(dialogFromUacResponse({ callId: "c", localTag: "l", localAddr: "<sip:a@b>", remoteAddr: "<sip:c@d>", cseq: 1, uri: "sip:c@d" }, noContact).remoteTarget).toBe("sip:c@d");
  });

  it("UAS: route set = Record-Route in order, remote CSeq from the INVITE, our tag local", () => {
    const d = dialogFromUasRequest(invite, "mine", 100);
    expect(d).toMatchObject({
      callId: "call-2@pbx",
      localTag: "mine",
      remoteTag: "theirs",
      localAddr: "<sip:gw@192.0.2.1>",
      remoteAddr: '"Agent" <sip:agent@pbx.example>',
      remoteCSeq: 17,
      localCSeq: 100,
      remoteTarget: "sip:agent@10.0.0.7",
      routeSet: ["<sip:p1.example;lr>", "<sip:p2.example;lr>"],
    });
    expect(dialogKeyOfRequest(parse<SipRequest>(["BYE sip:gw@192.0.2.1 SIP/2.0", "Via: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKb", "From: <sip:agent@pbx.example>;tag=theirs", "To: <sip:gw@192.0.2.1>;tag=mine", "Call-ID: call-2@pbx", "CSeq: 18 BYE"]))).toBe(dialogKey("call-2@pbx", "mine", "theirs"));
  });
});

describe("in-dialog requests (§12.2.1.1)", () => {
  const base = () => dialogFromUacResponse({ callId: "call-1@192.0.2.1", localTag: "ours", localAddr: "<sip:gw@192.0.2.1>", remoteAddr: "<sip:agent@pbx.example>", cseq: 5, uri: "sip:agent@pbx.example" }, ok200);

  it("loose routing: Request-URI is the remote target, Route is the route set", () => {
    const d = base();
    const bye = inDialogRequest(d, "BYE");
    expect(bye.uri).toBe("sip:agent@10.0.0.7:5062;transport=tcp");
    expect(bye.headers.route).toBe("<sip:p1.example;lr;ftag=x>, <sip:p2.example;lr>");
    expect(bye.headers.from).toBe("<sip:gw@192.0.2.1>;tag=ours");
    expect(bye.headers.to).toBe("<sip:agent@pbx.example>;tag=theirs");
    expect(bye.headers.cseq).toEqual({ seq: 6, method: "BYE" });
    expect(inDialogRequest(d, "INFO").headers.cseq.seq).toBe(7);
  });

  it("ACK reuses the INVITE's CSeq number", () => {
    const d = base();
    expect(inDialogRequest(d, "ACK", 5).headers.cseq).toEqual({ seq: 5, method: "ACK" });
    expect(d.localCSeq).toBe(5);
  });

  it("strict routing: the first route becomes the Request-URI and the target goes last", () => {
    expect(isLooseRoute("<sip:p1.example;lr>")).toBe(true);
    expect(isLooseRoute("<sip:p1.example>")).toBe(false);
    expect(requestTargeting({ remoteTarget: "sip:a@10.0.0.7", routeSet: ["<sip:strict.example>", "<sip:p2.example;lr>"] })).toEqual({
      uri: "sip:strict.example",
      route: "<sip:p2.example;lr>, <sip:a@10.0.0.7>",
    });
    expect(requestTargeting({ remoteTarget: "sip:a@10.0.0.7", routeSet: [] })).toEqual({ uri: "sip:a@10.0.0.7", route: undefined });
  });

  it("a re-INVITE or its 2xx refreshes the remote target", () => {
    const d = base();
    refreshTarget(d, parse<SipResponse>(["SIP/2.0 200 OK", "Via: SIP/2.0/UDP x;branch=z9hG4bK1", "From: <sip:a@b>;tag=1", "To: <sip:c@d>;tag=2", "Call-ID: c", "CSeq: 6 INVITE", "Contact: <sip:agent@10.0.0.99:5070>"]));
    expect(d.remoteTarget).toBe("sip:agent@10.0.0.99:5070");
  });

  it("rejects out-of-order remote CSeq, except for ACK and CANCEL", () => {
    const d = dialogFromUasRequest(invite, "mine", 1);
    if (!d) throw new Error("no dialog");
    const mk = (method: string, seq: number): SipRequest =>
      parse<SipRequest>([`${method} sip:gw@192.0.2.1 SIP/2.0`, "Via: SIP/2.0/UDP x;branch=z9hG4bK2", "From: <sip:a@b>;tag=theirs", "To: <sip:gw@x>;tag=mine", "Call-ID: call-2@pbx", `CSeq: ${seq} ${method}`]);
    expect(acceptRemoteCSeq(d, mk("INFO", 18))).toBe(true);
    expect(acceptRemoteCSeq(d, mk("INFO", 18))).toBe(false);
    expect(acceptRemoteCSeq(d, mk("BYE", 3))).toBe(false);
    expect(acceptRemoteCSeq(d, mk("ACK", 17))).toBe(true);
    expect(acceptRemoteCSeq(d, mk("BYE", 19))).toBe(true);
  });
});
