import dgram from "node:dgram";
import { PhoneStream } from "./media.js";
import {
  cseqOf,
  header,
  headers,
  newBranch,
  newTag,
  parseSip,
  responseTo,
  sdpPorts,
  sipText,
  uriOf,
  type ParsedSip,
} from "./sip-wire.js";

/**
 * A SIP phone over UDP on 127.0.0.1, written for the fault and fuzz runs: it answers the gateway's
 * INVITEs like a PBX, places agent calls to the gateway, sends in-dialog requests on demand, and can
 * fall silent (stop RTP) or vanish (ignore every message, close its media) without a BYE.
 */

export type PhoneCallState = "calling" | "ringing" | "confirmed" | "ended";

export interface PhoneCall {
  sipCallId: string;
  role: "uas" | "uac";
  state: PhoneCallState;
  /** X-Meta-Call-Id / X-Meta-PSID of the gateway's INVITE (uas), or the PSID dialled (uac). */
  metaCallId: string | undefined;
  psid: string | undefined;
  /** Our From/To value with our tag, and theirs. */
  localId: string;
  remoteId: string;
  remoteTarget: string;
  peer: { address: string; port: number };
  cseq: number;
  audio: PhoneStream;
  video: PhoneStream | undefined;
  /** Gateway media ports from its latest SDP. */
  gatewayPorts: { audio?: number; video?: number };
  /** Final status of our INVITE (uac), or what we answered (uas). */
  finalStatus: number | undefined;
  /** Every response the gateway sent us on this call, in order. */
  responses: ParsedSip[];
  /** Requests the gateway sent us on this call, by method. */
  received: Map<string, number>;
  byeReceivedAt: number | undefined;
  endedAt: number | undefined;
  /** Ignores every message of this call: a phone that vanished without a BYE. */
  deaf: boolean;
  ended: Promise<void>;
}

export interface AnswerDecision {
  status: number;
  /** Wait before the final response (a phone ringing). */
  delayMs?: number;
}

export interface PhoneOptions {
  /** Tone the phone speaks once a call is up (0 = none). */
  toneHz?: number;
  /** How INVITEs from the gateway are answered; default 200 at once. */
  answer?: (invite: ParsedSip) => AnswerDecision;
}

interface Pending {
  resolve: (final: ParsedSip | undefined) => void;
  timer: NodeJS.Timeout;
  retransmit: NodeJS.Timeout | undefined;
  onProvisional?: (r: ParsedSip) => void;
}

export class FuzzPhone {
  readonly calls = new Map<string, PhoneCall>();
  /** Every datagram received, parsed or not, for the raw fuzz senders. */
  readonly onDatagram = new Set<(text: string, from: dgram.RemoteInfo) => void>();
  private readonly pending = new Map<string, Pending>();
  private readonly lastResponses = new Map<string, string>();
  private readonly okRetransmits = new Map<string, NodeJS.Timeout>();
  private readonly endCallbacks = new Map<string, () => void>();
  /** CSeq of the latest INVITE received per call: a retransmission is not a re-INVITE. */
  private readonly inviteSeqs = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
    private readonly options: PhoneOptions,
  ) {
    socket.on("message", (m, rinfo) => this.onMessage(m.toString("latin1"), rinfo));
    socket.on("error", () => undefined);
  }

  static async start(options: PhoneOptions = {}): Promise<FuzzPhone> {
    const socket = dgram.createSocket("udp4");
    const port = await new Promise<number>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => resolve(socket.address().port));
    });
    return new FuzzPhone(socket, port, options);
  }

  get uri(): string {
    return `sip:agents@127.0.0.1:${this.port}`;
  }

  /** Calls that have not ended. */
  live(): PhoneCall[] {
    return [...this.calls.values()].filter((c) => c.state !== "ended");
  }

  /** The phone's call for a Messenger call id (uas calls carry it in X-Meta-Call-Id). */
  byMetaCallId(id: string): PhoneCall | undefined {
    return [...this.calls.values()].find((c) => c.metaCallId === id);
  }

  byPsid(psid: string): PhoneCall | undefined {
    return [...this.calls.values()].find((c) => c.psid === psid);
  }

  sendRaw(data: string | Buffer, to: { address: string; port: number }): void {
    if (this.closed) return;
    this.socket.send(typeof data === "string" ? Buffer.from(data, "latin1") : data, to.port, to.address);
  }

  /** An agent's call to the gateway: resolves with the call once a final response arrived (or after `timeoutMs`). */
  async invite(
    gateway: { address: string; port: number },
    requestUri: string,
    o: { psid?: string; sdp?: string; headers?: Array<[string, string]>; timeoutMs?: number } = {},
  ): Promise<PhoneCall> {
    const audio = await PhoneStream.open();
    const sipCallId = `agent-${newTag()}@127.0.0.1`;
    const call = this.newCall({
      sipCallId,
      role: "uac",
      metaCallId: undefined,
      psid: o.psid,
      localId: `"Agent" <sip:agent@127.0.0.1:${this.port}>;tag=${newTag()}`,
      remoteId: `<${requestUri}>`,
      remoteTarget: requestUri,
      peer: gateway,
      audio,
    });
    call.state = "calling";
    const sdp = o.sdp ?? phoneSdp(audio.port, undefined, 1);
    const final = await this.request(call, "INVITE", { body: sdp, contentType: "application/sdp", headers: o.headers, timeoutMs: o.timeoutMs ?? 30_000 });
    if (!final) return call;
    call.finalStatus = final.status;
    if (final.status! >= 200 && final.status! < 300) {
      call.state = "confirmed";
      call.remoteId = header(final, "to") ?? call.remoteId;
      call.remoteTarget = uriOf(header(final, "contact")) ?? call.remoteTarget;
      call.gatewayPorts = sdpPorts(final.body);
      if (call.gatewayPorts.audio) call.audio.remote = { address: "127.0.0.1", port: call.gatewayPorts.audio };
      if (this.options.toneHz) call.audio.startTone(this.options.toneHz);
    } else {
      this.end(call);
    }
    return call;
  }

  /** A request inside the call's dialog; resolves with the final response (undefined on timeout). */
  request(
    call: PhoneCall,
    method: string,
    o: { body?: string; contentType?: string; headers?: Array<[string, string]>; timeoutMs?: number; onProvisional?: (r: ParsedSip) => void } = {},
  ): Promise<ParsedSip | undefined> {
    const seq = ++call.cseq;
    const branch = newBranch();
    const heads: Array<[string, string]> = [
      ["Via", `SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`],
      ["Max-Forwards", "70"],
      ["From", call.localId],
      ["To", call.remoteId],
      ["Call-ID", call.sipCallId],
      ["CSeq", `${seq} ${method}`],
      ["Contact", `<sip:agent@127.0.0.1:${this.port}>`],
      ["User-Agent", "fuzz-phone"],
      ...(o.contentType ? [["Content-Type", o.contentType] as [string, string]] : []),
      ...(o.headers ?? []),
    ];
    const text = sipText({ startLine: `${method} ${call.remoteTarget} SIP/2.0`, headers: heads, body: o.body ?? "" });
    const key = `${call.sipCallId} ${seq} ${method}`;
    return new Promise<ParsedSip | undefined>((resolve) => {
      const entry: Pending = {
        resolve,
        onProvisional: o.onProvisional,
        timer: setTimeout(() => {
          this.clearPending(key);
          resolve(undefined);
        }, o.timeoutMs ?? 8000),
        retransmit: undefined,
      };
      let interval = 500;
      const resend = (): void => {
        entry.retransmit = setTimeout(() => {
          this.sendRaw(text, call.peer);
          interval = Math.min(interval * 2, 4000);
          resend();
        }, interval);
      };
      resend();
      this.pending.set(key, entry);
      this.sendRaw(text, call.peer);
    });
  }

  bye(call: PhoneCall): Promise<ParsedSip | undefined> {
    if (call.state === "ended") return Promise.resolve(undefined);
    const done = this.request(call, "BYE", { timeoutMs: 4000 });
    this.end(call);
    return done;
  }

  /** Stops sending RTP and ignores every SIP message of this call: no BYE, no answers. */
  vanish(call: PhoneCall): void {
    call.deaf = true;
    call.audio.close();
    call.video?.close();
    this.stopOkRetransmit(call.sipCallId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const t of this.okRetransmits.values()) clearTimeout(t);
    for (const [key] of this.pending) this.clearPending(key, true);
    for (const call of this.calls.values()) {
      call.audio.close();
      call.video?.close();
      this.endCallbacks.get(call.sipCallId)?.();
    }
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private newCall(init: Pick<PhoneCall, "sipCallId" | "role" | "metaCallId" | "psid" | "localId" | "remoteId" | "remoteTarget" | "peer" | "audio">): PhoneCall {
    let markEnded: () => void = () => undefined;
    const ended = new Promise<void>((resolve) => (markEnded = resolve));
    const call: PhoneCall = {
      ...init,
      state: "ringing",
      cseq: Math.floor(Math.random() * 1000) + 1,
      video: undefined,
      gatewayPorts: {},
      finalStatus: undefined,
      responses: [],
      received: new Map(),
      byeReceivedAt: undefined,
      endedAt: undefined,
      deaf: false,
      ended,
    };
    this.endCallbacks.set(call.sipCallId, markEnded);
    this.calls.set(call.sipCallId, call);
    return call;
  }

  private end(call: PhoneCall): void {
    if (call.state === "ended") return;
    call.state = "ended";
    call.endedAt = performance.now();
    call.audio.close();
    call.video?.close();
    this.stopOkRetransmit(call.sipCallId);
    this.endCallbacks.get(call.sipCallId)?.();
  }

  private clearPending(key: string, resolveUndefined = false): void {
    const p = this.pending.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    if (p.retransmit) clearTimeout(p.retransmit);
    this.pending.delete(key);
    if (resolveUndefined) p.resolve(undefined);
  }

  private onMessage(text: string, rinfo: dgram.RemoteInfo): void {
    for (const l of this.onDatagram) l(text, rinfo);
    const m = parseSip(text);
    if (!m) return;
    const callId = header(m, "call-id") ?? "";
    const call = this.calls.get(callId);
    if (call?.deaf) return;
    if (m.request) this.onRequest(m, rinfo, call);
    else this.onResponse(m, call);
  }

  private onResponse(m: ParsedSip, call: PhoneCall | undefined): void {
    const cseq = cseqOf(m);
    if (!call || !cseq) return;
    call.responses.push(m);
    const key = `${call.sipCallId} ${cseq.seq} ${cseq.method}`;
    const p = this.pending.get(key);
    const status = m.status!;
    if (status < 200) {
      if (p?.retransmit) clearTimeout(p.retransmit);
      if (p) p.retransmit = undefined;
      if (status > 100) call.state = call.state === "calling" ? "ringing" : call.state;
      p?.onProvisional?.(m);
      return;
    }
    if (cseq.method === "INVITE") this.ackInvite(call, m, cseq.seq);
    if (!p) return;
    this.clearPending(key);
    p.resolve(m);
  }

  /** ACK for a final response to our INVITE: same branch for non-2xx (RFC 3261 §17.1.1.3), new one for 2xx. */
  private ackInvite(call: PhoneCall, final: ParsedSip, seq: number): void {
    const status = final.status!;
    const via = headers(final, "via")[0] ?? `SIP/2.0/UDP 127.0.0.1:${this.port};branch=${newBranch()}`;
    const success = status < 300;
    const target = success ? (uriOf(header(final, "contact")) ?? call.remoteTarget) : call.remoteTarget;
    const ack = sipText({
      startLine: `ACK ${target} SIP/2.0`,
      headers: [
        ["Via", success ? `SIP/2.0/UDP 127.0.0.1:${this.port};branch=${newBranch()};rport` : via],
        ["Max-Forwards", "70"],
        ["From", call.localId],
        ["To", header(final, "to") ?? call.remoteId],
        ["Call-ID", call.sipCallId],
        ["CSeq", `${seq} ACK`],
      ],
      body: "",
    });
    this.sendRaw(ack, call.peer);
  }

  private onRequest(m: ParsedSip, rinfo: dgram.RemoteInfo, call: PhoneCall | undefined): void {
    const method = m.method!.toUpperCase();
    const cseq = cseqOf(m);
    const txKey = `${header(m, "call-id")} ${cseq?.seq} ${cseq?.method} ${headers(m, "via")[0] ?? ""}`;
    const answered = this.lastResponses.get(txKey);
    if (answered && method !== "ACK") {
      this.sendRaw(answered, rinfo);
      return;
    }
    const reply = (status: number, reason: string, extra: Array<[string, string]> = [], body = "", toTag?: string): void => {
      const text = responseTo(m, status, reason, extra, body, toTag);
      if (status >= 200) this.remember(txKey, text);
      this.sendRaw(text, rinfo);
    };
    if (call) call.received.set(method, (call.received.get(method) ?? 0) + 1);
    switch (method) {
      case "INVITE":
        if (!call) {
          void this.onNewInvite(m, rinfo, reply);
        } else if ((cseq?.seq ?? 0) > (this.inviteSeqs.get(call.sipCallId) ?? 0)) {
          this.inviteSeqs.set(call.sipCallId, cseq?.seq ?? 0);
          void this.onReinvite(call, m);
        }
        return;
      case "ACK":
        if (call) {
          this.stopOkRetransmit(call.sipCallId);
          if (call.state === "ringing" && call.finalStatus !== undefined && call.finalStatus < 300) call.state = "confirmed";
        }
        return;
      case "BYE":
        reply(call ? 200 : 481, call ? "OK" : "Call Does Not Exist");
        if (call) {
          call.byeReceivedAt = performance.now();
          this.end(call);
        }
        return;
      case "CANCEL":
        reply(200, "OK");
        if (call && call.state !== "confirmed" && call.state !== "ended") {
          call.finalStatus = 487;
          this.end(call);
        }
        return;
      default:
        reply(200, "OK");
    }
  }

  private async onNewInvite(
    m: ParsedSip,
    rinfo: dgram.RemoteInfo,
    reply: (status: number, reason: string, extra?: Array<[string, string]>, body?: string, toTag?: string) => void,
  ): Promise<void> {
    const audio = await PhoneStream.open();
    const toTag = newTag();
    const call = this.newCall({
      sipCallId: header(m, "call-id") ?? "",
      role: "uas",
      metaCallId: header(m, "x-meta-call-id"),
      psid: header(m, "x-meta-psid"),
      localId: `${header(m, "to") ?? ""};tag=${toTag}`,
      remoteId: header(m, "from") ?? "",
      remoteTarget: uriOf(header(m, "contact")) ?? `sip:gateway@${rinfo.address}:${rinfo.port}`,
      peer: { address: rinfo.address, port: rinfo.port },
      audio,
    });
    call.received.set("INVITE", 1);
    this.inviteSeqs.set(call.sipCallId, cseqOf(m)?.seq ?? 0);
    call.gatewayPorts = sdpPorts(m.body);
    reply(100, "Trying");
    const decision = this.options.answer?.(m) ?? { status: 200 };
    if (decision.delayMs) {
      reply(180, "Ringing", [], "", toTag);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.timers.delete(t);
          resolve();
        }, decision.delayMs);
        this.timers.add(t);
      });
      if (call.state === "ended" || call.deaf || this.closed) return;
    }
    call.finalStatus = decision.status;
    if (decision.status >= 300) {
      reply(decision.status, "Refused", [], "", toTag);
      this.end(call);
      return;
    }
    if (call.gatewayPorts.audio) call.audio.remote = { address: "127.0.0.1", port: call.gatewayPorts.audio };
    const ok = responseTo(m, 200, "OK", [["Contact", `<sip:agents@127.0.0.1:${this.port}>`], ["Content-Type", "application/sdp"]], phoneSdp(audio.port, undefined, 1), toTag);
    this.sendReliableOk(call, ok, rinfo);
    if (this.options.toneHz) call.audio.startTone(this.options.toneHz);
  }

  private async onReinvite(call: PhoneCall, m: ParsedSip): Promise<void> {
    const offered = sdpPorts(m.body);
    call.gatewayPorts = offered;
    if (offered.audio) call.audio.remote = { address: "127.0.0.1", port: offered.audio };
    let videoPort: number | undefined;
    const h264 = /^a=rtpmap:(\d+) H264\/90000/im.exec(m.body)?.[1];
    if (offered.video && h264) {
      if (!call.video) call.video = await PhoneStream.open();
      call.video.remote = { address: "127.0.0.1", port: offered.video };
      videoPort = call.video.port;
    }
    const sdp = phoneSdp(call.audio.port, videoPort !== undefined ? { port: videoPort, pt: Number(h264) } : undefined, call.cseq + 1);
    const ok = responseTo(m, 200, "OK", [["Contact", `<sip:agents@127.0.0.1:${this.port}>`], ["Content-Type", "application/sdp"]], sdp);
    this.sendReliableOk(call, ok, call.peer);
  }

  /** A 2xx to an INVITE is retransmitted until the ACK comes (RFC 3261 §13.3.1.4). */
  private sendReliableOk(call: PhoneCall, text: string, to: { address: string; port: number }): void {
    this.stopOkRetransmit(call.sipCallId);
    let interval = 500;
    let total = 0;
    const send = (): void => {
      this.sendRaw(text, to);
      if (total > 16_000) return;
      const t = setTimeout(send, interval);
      total += interval;
      interval = Math.min(interval * 2, 4000);
      this.okRetransmits.set(call.sipCallId, t);
    };
    send();
  }

  private stopOkRetransmit(sipCallId: string): void {
    const t = this.okRetransmits.get(sipCallId);
    if (t) clearTimeout(t);
    this.okRetransmits.delete(sipCallId);
  }

  private remember(key: string, text: string): void {
    this.lastResponses.set(key, text);
    if (this.lastResponses.size > 2000) {
      const first = this.lastResponses.keys().next();
      if (!first.done) this.lastResponses.delete(first.value);
    }
  }
}

/** The phone's SDP: PCMU and telephone-event, and H.264 video when given. */
export function phoneSdp(audioPort: number, video: { port: number; pt: number; direction?: string } | undefined, version: number): string {
  const lines = [
    "v=0",
    `o=phone 1 ${version} IN IP4 127.0.0.1`,
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    `m=audio ${audioPort} RTP/AVP 0 101`,
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
  ];
  if (video) {
    lines.push(
      `m=video ${video.port} RTP/AVP ${video.pt}`,
      `a=rtpmap:${video.pt} H264/90000`,
      `a=fmtp:${video.pt} profile-level-id=42e01f;packetization-mode=1`,
      `a=${video.direction ?? "recvonly"}`,
    );
  }
  return `${lines.join("\r\n")}\r\n`;
}
