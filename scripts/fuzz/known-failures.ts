import type { PacketSpec } from "./arbitraries.js";
import type { ParsedSip } from "./sip-wire.js";

/**
 * Failures the suite has found that are still open. The long form (`npm run fuzz`) checks every
 * property in full and reports these as failures; the short form inside `npm test` counts them
 * without failing, so the rest of each property keeps guarding every commit. An entry leaves this
 * list when the gateway is fixed: the long form then proves it, and the short form guards it again.
 */
export interface KnownFailure {
  id: string;
  property: string;
  summary: string;
  reproducer: string;
  /** Where the fault is believed to be. */
  suspect: string;
}

export const KNOWN_FAILURES = {
  sip513: {
    id: "sip-513-limits",
    property: "no SIP 5xx for malformed input",
    summary: "A SIP message over a size bound (a header field over SIP_MAX_HEADER_BYTES, a body past SIP_MAX_MESSAGE_BYTES) is answered 513 Header/Message Too Large: a 5xx, where issue #10 asks every limit refusal to be a 4xx",
    reproducer: "INVITE from an allowed agent with one extra header `X-Huge: ` + 'a'×8185 over UDP → `SIP/2.0 513 Header Too Large`",
    suspect: "sip/embedded/stack.ts:71-72 (REFUSALS: maxMessageBytes and maxHeaderBytes answer 513; 413 and 400, as maxHeaders already does, would be 4xx)",
  },
  sip501: {
    id: "sip-501-in-dialog",
    property: "no SIP 5xx for malformed input",
    summary:
      "An in-dialog request whose method the gateway does not handle (MESSAGE, SUBSCRIBE, PUBLISH, or a method it does not know) is answered 501 Not Implemented; outside a dialog the same request gets 405 with Allow",
    reproducer: "in a live consumer call, from the PBX: `MESSAGE <gateway contact> SIP/2.0` with the dialog's Call-ID, tags and a new CSeq, no body → `SIP/2.0 501 Not Implemented`",
    suspect: "sip/embedded/dialog-session.ts:223 (the default branch of the in-dialog method switch; 405 with Allow, as outside dialogs, would be a 4xx)",
  },
  weriftRtpExtension: {
    id: "werift-rtp-extension-freeze",
    property: "the process keeps serving (event loop never blocked)",
    summary:
      "One unauthenticated UDP datagram to a Meta leg's ICE/DTLS port, shaped as RTP with the X bit and a one-byte-header extension (0xBEDE) whose declared length runs past the datagram, blocks the gateway's event loop for 20 s (length 0x681e, 1.4 KB datagram) to 150 s (length 0xffff): every call's media, SIP and HTTP stop meanwhile",
    reproducer: "udp to the host candidate port of our accept offer: 90884c7d 00000000 00000000 bede681e followed by 1368 bytes of 0x8b",
    suspect:
      "werift RtpHeader.deSerialize (node_modules/werift/lib/rtp/src/rtp/rtp.js:161-179) loops to the declared extension end past the buffer and copies the extension array on every step (quadratic); reached before SRTP authentication through parseSrtpRtpHeader (rtp/src/srtp/packet.js:14) from RTCDtlsTransport's onData; a bound in patches/werift+0.25.2.patch (end = min(declared end, buffer length), push instead of spread) would fix it",
  },
  heldAfterVanishedPbx: {
    id: "call-held-after-unanswered-bye",
    property: "a faulted call is freed at once on both legs",
    summary:
      "When the PBX vanishes without a BYE, the gateway ends the call at Meta after MEDIA_TIMEOUT_MS but keeps it (registry, admission slot, RTP ports and 50 packets/s of RTP toward the dead PBX) until its own BYE times out, 32 s later (64·T1); RFC 3261 §15.1.1: media stops as soon as the BYE is handed to the transaction",
    reproducer: "consumer call answered by a PBX; the PBX closes its RTP socket and ignores SIP from then on → terminate at Meta ~2–4 s later, `call ended` (outcome media-timeout) and gateway_calls_active back to 0 only ~36 s after",
    suspect: "gateway/call/pbx-leg.ts / inbound-call.ts: the call's end waits for the BYE's final response instead of releasing media and the registry entry once the BYE is sent",
  },
  sipNulInHeader: {
    id: "sip-nul-in-header-reaches-meta",
    property: "no Graph request from malformed SIP",
    summary:
      "An agent's INVITE with a NUL byte inside a header field (here the Via transport) is taken as valid: the consumer's permission is checked at Meta, where a 400 was due (RFC 3261's grammar allows no NUL, nor any control character but HTAB, in a header)",
    reproducer: "a valid agent INVITE over UDP from an allowed source whose Via reads `SIP/2.0/\u0000UDP 127.0.0.1:55311;branch=…` → GET /{page-id}/messenger_call_permissions?psid=<PSID of the Request-URI>",
    suspect: "sip/embedded/message-limits.ts checkSipMessage (admits any byte in the header block) and stack.ts, which hands it to npm sip's lenient parser",
  },
} as const satisfies Record<string, KnownFailure>;

/** A 5xx the short form tolerates (and counts), with the entry it matches. */
export function knownSipFailure(answer: ParsedSip, inDialog: boolean): KnownFailure | undefined {
  if (answer.status === 513) return KNOWN_FAILURES.sip513;
  if (inDialog && answer.status === 501) return KNOWN_FAILURES.sip501;
  return undefined;
}

/** A Graph request after an INVITE whose header block holds a NUL byte, which the short form tolerates. */
export function knownSipGraphFailure(text: string): KnownFailure | undefined {
  const end = text.indexOf("\r\n\r\n");
  const nul = text.indexOf("\u0000");
  return nul >= 0 && (end < 0 || nul < end) ? KNOWN_FAILURES.sipNulInHeader : undefined;
}

/**
 * Whether a packet for the Meta leg is the shape that freezes werift's parser: the loop runs once
 * per byte of declared extension past the datagram, with a copy each time, so a few KB of overrun
 * cost milliseconds and tens of KB cost seconds.
 */
export function knownMetaPacketFailure(p: PacketSpec, rendered: Buffer): KnownFailure | undefined {
  if (p.kind !== "rtp" || !p.extension || p.version !== 2) return undefined;
  const headerEnd = 12 + p.csrcCount * 4 + 4;
  return headerEnd + p.extLength * 4 > rendered.length + 2048 ? KNOWN_FAILURES.weriftRtpExtension : undefined;
}
