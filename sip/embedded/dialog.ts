import sip from "sip";
import { contactUri, recordRoutes, stringifyNameAddr, tagOf, type SipRequest, type SipResponse } from "./message.js";
import type { OutgoingRequest } from "./stack.js";

/**
 * Dialog state (RFC 3261 §12) and the pure rules built on it: the route set and remote target
 * learnt at dialog creation, CSeq numbering, target refresh, and how an in-dialog request's
 * Request-URI and Route headers are formed (loose or strict routing).
 */
export interface Dialog {
  callId: string;
  localTag: string;
  remoteTag: string;
  /** Our name-addr without tag (From of our requests), wire text. */
  localAddr: string;
  /** The peer's name-addr without tag (To of our requests), wire text. */
  remoteAddr: string;
  localCSeq: number;
  /** Highest CSeq seen from the peer; undefined until it sends a request. */
  remoteCSeq: number | undefined;
  remoteTarget: string;
  /** Route set as `<uri;params>` entries, in the order they are to be visited. */
  routeSet: string[];
}

export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\n${localTag}\n${remoteTag}`;
}

/** The key of the dialog an incoming request belongs to (our tag is in its To). */
export function dialogKeyOfRequest(rq: SipRequest): string | undefined {
  const local = tagOf(rq.headers.to);
  const remote = tagOf(rq.headers.from);
  return local && remote ? dialogKey(rq.headers["call-id"], local, remote) : undefined;
}

/**
 * The dialog a 2xx (or tagged 1xx) to our INVITE creates: the route set is the response's
 * Record-Route in reverse, the remote target its Contact (§12.1.2). A broken 2xx without Contact
 * or To tag still gets a dialog (target: the Request-URI) so that it can be ACKed and ended.
 */
export function dialogFromUacResponse(
  invite: { callId: string; localTag: string; localAddr: string; remoteAddr: string; cseq: number; uri: string },
  response: SipResponse,
): Dialog {
  return {
    callId: invite.callId,
    localTag: invite.localTag,
    remoteTag: tagOf(response.headers.to) ?? "",
    localAddr: invite.localAddr,
    remoteAddr: invite.remoteAddr,
    localCSeq: invite.cseq,
    remoteCSeq: undefined,
    remoteTarget: contactUri(response) ?? invite.uri,
    routeSet: recordRoutes(response).reverse(),
  };
}

/** The dialog our 2xx to an INVITE creates: Record-Route in order, Contact as target (§12.1.1). */
export function dialogFromUasRequest(invite: SipRequest, localTag: string, localCSeq: number): Dialog | undefined {
  const remoteTag = tagOf(invite.headers.from);
  const target = contactUri(invite);
  if (!remoteTag || !target) return undefined;
  return {
    callId: invite.headers["call-id"],
    localTag,
    remoteTag,
    localAddr: addrWithoutTag(invite.headers.to),
    remoteAddr: addrWithoutTag(invite.headers.from),
    localCSeq,
    remoteCSeq: invite.headers.cseq.seq,
    remoteTarget: target,
    routeSet: recordRoutes(invite),
  };
}

function addrWithoutTag(a: sip.NameAddr): string {
  const { tag: _tag, ...params } = a.params;
  return stringifyNameAddr({ name: a.name, uri: a.uri, params });
}

/** A target refresh request or its 2xx (re-INVITE, §12.2) may move the remote target. */
export function refreshTarget(d: Dialog, m: SipRequest | SipResponse): void {
  const target = contactUri(m);
  if (target) d.remoteTarget = target;
}

/** Whether a route entry names a loose router (`;lr`). */
export function isLooseRoute(entry: string): boolean {
  const inner = /<([^>]+)>/.exec(entry)?.[1] ?? entry;
  const uri = sip.parseUri(inner);
  return !!uri && Object.prototype.hasOwnProperty.call(uri.params, "lr");
}

/** Request-URI and Route header for an in-dialog request (§12.2.1.1). */
export function requestTargeting(d: Pick<Dialog, "remoteTarget" | "routeSet">): { uri: string; route: string | undefined } {
  const first = d.routeSet[0];
  if (first === undefined) return { uri: d.remoteTarget, route: undefined };
  if (isLooseRoute(first)) return { uri: d.remoteTarget, route: d.routeSet.join(", ") };
  // Strict router: it becomes the Request-URI, and the remote target goes last in Route.
  const strictUri = /<([^>]+)>/.exec(first)?.[1] ?? first;
  return { uri: strictUri, route: [...d.routeSet.slice(1), `<${d.remoteTarget}>`].join(", ") };
}

/**
 * An in-dialog request. `cseq` is taken as given (ACK and CANCEL reuse the INVITE's); otherwise
 * the dialog's local CSeq is incremented first.
 */
export function inDialogRequest(d: Dialog, method: string, cseq?: number): OutgoingRequest {
  const seq = cseq ?? ++d.localCSeq;
  const { uri, route } = requestTargeting(d);
  const rq: OutgoingRequest = {
    method,
    uri,
    headers: {
      from: `${d.localAddr};tag=${d.localTag}`,
      to: `${d.remoteAddr};tag=${d.remoteTag}`,
      "call-id": d.callId,
      cseq: { seq, method },
    },
  };
  if (route !== undefined) rq.headers.route = route;
  return rq;
}

/**
 * Checks an incoming in-dialog request's CSeq (§12.2.2): lower than one already seen is out of
 * order (answered 500). ACK and CANCEL carry the INVITE's number and are not checked.
 */
export function acceptRemoteCSeq(d: Dialog, rq: SipRequest): boolean {
  if (rq.method === "ACK" || rq.method === "CANCEL") return true;
  const seq = rq.headers.cseq.seq;
  if (d.remoteCSeq !== undefined && seq <= d.remoteCSeq) return false;
  d.remoteCSeq = seq;
  return true;
}
