import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import fc from "fast-check";
import { signBody, SIGNATURE_256_HEADER, SIGNATURE_SHA1_HEADER, type SimCall } from "../../sim/index.js";
import {
  dialogInputArb,
  isGarbageSdp,
  packetSpecArb,
  renderPacket,
  renderSdp,
  renderSip,
  renderWebhook,
  sdpInputArb,
  sipInputArb,
  webhookInputArb,
  type DialogInput,
  type PacketSpec,
  type SdpInput,
  type SipDraft,
  type SipInput,
  type WebhookInput,
} from "./arbitraries.js";
import { FUZZ_META } from "./gateway-process.js";
import type { ProxiedRequest } from "./graph-proxy.js";
import { knownReofferFailure, knownSipFailure, type KnownFailure } from "./known-failures.js";
import { phoneSdp, type FuzzPhone, type PhoneCall } from "./phone.js";
import { countStatus, emptyReport, preview, PropertyViolation, type FailureRecord, type KindReport } from "./report.js";
import { PBX_TONE_HZ, sleep, type FuzzRig } from "./rig.js";
import { cseqOf, header, newBranch, newTag, parseSip, sipText, type ParsedSip } from "./sip-wire.js";

/**
 * The input campaigns: each sends one kind of input to the live gateway process, one fast-check
 * run at a time, and checks after every input what must hold whatever the input was.
 */

export const INPUT_KINDS = [
  "webhook-unsigned",
  "webhook-signed",
  "sip-udp",
  "sip-tcp",
  "sdp-agent-invite",
  "sip-dialog",
  "sdp-meta-reoffer",
  "sdp-meta-answer",
  "rtp-pbx-leg",
  "rtp-meta-leg",
] as const;
export type InputKind = (typeof INPUT_KINDS)[number];

export interface CampaignOptions {
  runs: number;
  seed: number;
  /** Stop generating (and shrinking) after this long; what ran is still reported. */
  timeLimitMs?: number;
  /** Largest webhook body the huge-string values may build (default 6 MB: past the 4 MB limit). */
  maxHugeWebhook?: number;
  /** Overrides the fuzzer's own setting for this run (a second pass past a known failure). */
  tolerateKnown?: boolean;
  /** Name in the report, when not the kind's own. */
  label?: string;
}

/** Bodies past this are refused unread (413): a missing answer there is the server hanging up early. */
const WEBHOOK_BODY_LIMIT = 4 * 1024 * 1024;
/** UDP cannot carry more; larger SIP inputs go over TCP only. */
const UDP_MAX = 65_507;

let runTag = "";
function tag(): string {
  if (!runTag) runTag = String(100000 + Math.floor(Math.random() * 899999));
  return runTag;
}
let serial = 0;
/** A PSID nobody else uses, so every Graph request naming it traces back to one input. */
function uniquePsid(): string {
  return `8${tag()}${String(++serial).padStart(8, "0")}`;
}
function uniqueCallId(): string {
  return `c_fz${tag()}${String(++serial).padStart(8, "0")}`;
}

export interface FuzzerOptions {
  /** Count the still-open failures of known-failures.ts instead of failing on them (the short form). */
  tolerateKnown: boolean;
  log?: (line: string) => void;
}

export class InputFuzzer {
  readonly reports: KindReport[] = [];
  /** A real Meta re-offer from a warm-up call: what the re-offer mutations start from. */
  private metaReoffer = "";
  private liveCall: LiveCall | undefined;
  /** The first input after which the process had died or hung, as generated (before shrinking). */
  private crashInput: string | undefined;
  private wedged = false;
  private readonly log: (line: string) => void;

  constructor(
    private readonly rig: FuzzRig,
    private readonly options: FuzzerOptions = { tolerateKnown: false },
  ) {
    this.log = options.log ?? (() => undefined);
  }

  /** Whether the run in progress counts known failures instead of failing on them. */
  private tolerating = false;

  private known(report: KindReport, failure: KnownFailure | undefined): boolean {
    if (!failure || !this.tolerating) return false;
    report.known[failure.id] = (report.known[failure.id] ?? 0) + 1;
    return true;
  }

  /** A gateway that died or hangs is replaced, so later inputs (and shrinking) run against a live one. */
  private async recover(report: KindReport): Promise<void> {
    this.log(`${report.kind}: restarting the gateway (${this.rig.gateway.alive ? "not answering" : `exited ${JSON.stringify(this.rig.gateway.exit)}`})`);
    this.liveCall = undefined;
    this.wedged = false;
    await this.rig.restartGateway();
  }

  /** Every failure of every kind run so far. */
  get failures(): FailureRecord[] {
    return this.reports.flatMap((r) => r.failures);
  }

  /** Captures a real SDP from Meta's side: the re-offer that comes with the accept answer. */
  learnFrom(requests: readonly ProxiedRequest[]): void {
    for (const r of requests) {
      if (r.action !== "accept" || !r.responseText) continue;
      try {
        const session = (JSON.parse(r.responseText) as { session?: Record<string, unknown> }).session ?? {};
        const sdpOf = (v: unknown): string | undefined => (typeof v === "string" ? v : (v as { sdp?: string } | undefined)?.sdp);
        this.metaReoffer = sdpOf(session.sdp_renegotiation) ?? this.metaReoffer;
      } catch {
        // not JSON: nothing to learn
      }
    }
  }

  async run(kind: InputKind, o: CampaignOptions): Promise<KindReport> {
    switch (kind) {
      case "webhook-unsigned":
        return this.webhooks(false, o);
      case "webhook-signed":
        return this.webhooks(true, o);
      case "sip-udp":
        return this.sip("udp", o);
      case "sip-tcp":
        return this.sip("tcp", o);
      case "sdp-agent-invite":
        return this.agentSdp(o);
      case "sip-dialog":
        return this.dialog(o);
      case "sdp-meta-reoffer":
        return this.metaReoffers(o);
      case "sdp-meta-answer":
        return this.metaAnswers(o);
      case "rtp-pbx-leg":
        return this.rtp("pbx", o);
      case "rtp-meta-leg":
        return this.rtp("meta", o);
    }
  }

  /** Ends the call the media campaigns share, on both legs. */
  async closeLiveCall(): Promise<void> {
    const live = this.liveCall;
    this.liveCall = undefined;
    if (!live) return;
    if (live.pbx.state !== "ended") await this.rig.pbx.bye(live.pbx);
    await live.sim.waitForState("ended", 5000).catch(() => undefined);
  }

  // ---- the common loop ------------------------------------------------------------------------

  private async campaign<T>(
    kind: InputKind,
    o: CampaignOptions,
    arb: fc.Arbitrary<T>,
    check: (input: T, report: KindReport) => Promise<void>,
  ): Promise<KindReport> {
    const report = emptyReport(o.label ?? kind);
    const started = performance.now();
    this.crashInput = undefined;
    this.tolerating = o.tolerateKnown ?? this.options.tolerateKnown;
    const restartsBefore = this.rig.restarts;
    this.log(`${report.kind}: ${o.runs} runs, seed ${o.seed}`);
    const details = await fc.check(
      fc.asyncProperty(arb, async (input) => {
        report.inputs++;
        if (!this.rig.gateway.alive || this.wedged) await this.recover(report);
        const gateway = this.rig.gateway;
        const uncaughtBefore = gateway.log.uncaught.length;
        let failed: unknown;
        try {
          await check(input, report);
        } catch (err) {
          failed = err;
        }
        // The process-level properties come first: they explain whatever the input's own check saw.
        if (!gateway.alive) {
          report.crashes++;
          this.crashInput ??= fc.stringify(input).slice(0, 4000);
          throw new PropertyViolation("the process never exits", `exit ${JSON.stringify(gateway.exit)}; stderr: ${gateway.stderrTail.slice(-1500)}`);
        }
        if (!(await gateway.healthy(1500))) {
          report.freezes++;
          this.wedged = true;
          this.crashInput ??= fc.stringify(input).slice(0, 4000);
          throw new PropertyViolation("the process keeps serving (event loop never blocked)", "/healthz did not answer within 1.5 s after the input");
        }
        if (gateway.log.uncaught.length > uncaughtBefore) {
          throw new PropertyViolation("no exception reaches the process-level handlers", gateway.log.uncaught[gateway.log.uncaught.length - 1]!.slice(0, 1500));
        }
        if (failed !== undefined) throw failed;
      }),
      { seed: o.seed, numRuns: o.runs, interruptAfterTimeLimit: o.timeLimitMs, markInterruptAsFailure: false },
    );
    if (!this.rig.gateway.alive || this.wedged) await this.recover(report);
    if (this.rig.restarts > restartsBefore) report.notes.push(`gateway restarted ${this.rig.restarts - restartsBefore} time(s) after a crash or hang (shrinking included)`);
    report.runs = details.numRuns;
    report.durationMs = performance.now() - started;
    if (details.failed) {
      const err = details.errorInstance;
      const violation = err instanceof PropertyViolation ? err : undefined;
      // Set inside the property; the compiler cannot see that across the awaits.
      const first = this.crashInput as string | undefined;
      report.failures.push({
        kind: report.kind,
        property: violation?.property ?? "the check itself ran",
        message: (err instanceof Error ? err.message : String(err)).slice(0, 3000),
        counterexample: `${details.counterexample ? fc.stringify(details.counterexample[0]).slice(0, 3000) : "?"}${first ? ` (first seen as ${first.slice(0, 1500)})` : ""}`,
        rendered: violation?.rendered ?? "",
        seed: details.seed,
        path: details.counterexamplePath ?? undefined,
      });
    }
    this.reports.push(report);
    this.log(`${report.kind}: ${report.inputs} inputs in ${(report.durationMs / 1000).toFixed(1)} s, ${report.failures.length} failure(s)`);
    return report;
  }

  private graphAbout(o: { psid?: string; callId?: string }, since = 0): ProxiedRequest[] {
    return this.rig.proxy.about(o).filter((r) => r.receivedAt >= since);
  }

  // ---- webhooks -------------------------------------------------------------------------------

  private webhooks(signed: boolean, o: CampaignOptions): Promise<KindReport> {
    const kind: InputKind = signed ? "webhook-signed" : "webhook-unsigned";
    const arb = webhookInputArb({ signed, maxHuge: o.maxHugeWebhook ?? 6_000_000, maxDepth: 20_000 });
    return this.campaign(kind, o, arb, async (input: WebhookInput, report) => {
      const c = { pageId: FUZZ_META.pageId, callId: uniqueCallId(), psid: uniquePsid(), sdp: this.metaReoffer || FALLBACK_META_SDP, nowMs: Date.now() };
      const body = renderWebhook(input, c);
      const requestsBefore = this.rig.proxy.requests.length;
      const sentAt = Date.now();
      const res = await postWebhook(this.rig.gateway.webhookUrl, body, signatureHeaders(input.signature, body), input.contentType);
      countStatus(report, res.status);
      const wire = preview(body);
      if (res.status >= 500) throw new PropertyViolation("no HTTP 5xx on the webhook endpoint", `answered ${res.status}`, wire);
      if (res.status === 0 && body.length <= WEBHOOK_BODY_LIMIT) throw new PropertyViolation("every delivery gets an answer", `no answer (${res.error})`, wire);
      if (!signed && res.status >= 200 && res.status < 300) {
        throw new PropertyViolation("an unsigned or wrongly signed delivery is refused", `answered ${res.status} to signature mode ${input.signature}`, wire);
      }
      if (!(await this.rig.gateway.healthy()) && this.rig.gateway.alive) throw new PropertyViolation("the process keeps serving", "/healthz stopped answering 200", wire);
      const refused = !signed || res.status >= 400;
      if (refused) {
        // Graph work starts right after the answer when it starts at all.
        await sleep(20);
        const traced = this.graphAbout(c, sentAt);
        const untraced = !signed ? this.rig.proxy.requests.length - requestsBefore : 0;
        if (traced.length > 0 || untraced > 0) {
          report.graphFromMalformed += Math.max(traced.length, untraced);
          throw new PropertyViolation(
            "no Graph request from an unsigned or refused webhook",
            `${traced.map((r) => `${r.method} ${r.path} ${r.action ?? ""}`).join(", ") || `${untraced} request(s)`} after a ${res.status}`,
            wire,
          );
        }
      }
    });
  }

  // ---- SIP outside dialogs --------------------------------------------------------------------

  /** An agent's message as a phone would send it, before mutation. */
  private sipDraft(template: SipInput["template"], psid: string, sipCallId: string, sdp: string): SipDraft {
    const gw = this.rig.gateway.sipPort;
    const uri = `sip:${psid}@127.0.0.1:${gw}`;
    const from = `"Agent 7" <sip:agent7@127.0.0.1:${this.rig.agent.port}>;tag=${newTag()}`;
    const common = (method: string): Array<[string, string]> => [
      ["Via", `SIP/2.0/UDP 127.0.0.1:${this.rig.agent.port};branch=${newBranch()};rport`],
      ["Max-Forwards", "70"],
      ["From", from],
      ["To", `<${uri}>`],
      ["Call-ID", sipCallId],
      ["CSeq", `1 ${method}`],
      ["Contact", `<sip:agent7@127.0.0.1:${this.rig.agent.port}>`],
      ["User-Agent", "fuzz-agent/1.0"],
    ];
    switch (template) {
      case "INVITE":
        return { startLine: `INVITE ${uri} SIP/2.0`, headers: [...common("INVITE"), ["Content-Type", "application/sdp"], ["Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"]], body: sdp };
      case "INFO":
        return { startLine: `INFO ${uri} SIP/2.0`, headers: [...common("INFO"), ["Content-Type", "application/dtmf-relay"]], body: "Signal=5\r\nDuration=160\r\n" };
      case "MESSAGE":
        return { startLine: `MESSAGE ${uri} SIP/2.0`, headers: [...common("MESSAGE"), ["Content-Type", "text/plain"]], body: "hello" };
      case "REGISTER":
        return { startLine: `REGISTER sip:127.0.0.1:${gw} SIP/2.0`, headers: [...common("REGISTER"), ["Expires", "3600"]], body: "" };
      case "response":
        return { startLine: "SIP/2.0 200 OK", headers: common("INVITE"), body: "" };
      default:
        return { startLine: `${template} ${uri} SIP/2.0`, headers: common(template), body: "" };
    }
  }

  private sip(transport: "udp" | "tcp", o: CampaignOptions): Promise<KindReport> {
    const kind: InputKind = transport === "udp" ? "sip-udp" : "sip-tcp";
    const arb = sipInputArb({ tcp: transport === "tcp", maxHuge: transport === "udp" ? 60_000 : 300_000 });
    return this.campaign(kind, o, arb, async (input, report) => {
      const psid = uniquePsid();
      const sipCallId = `fz-${tag()}-${++serial}@127.0.0.1`;
      const sdp = renderSdp(input.sdp, phoneSdp(this.rig.agent.port + 10, undefined, 1));
      const { text, chunks, breaks } = renderSip(this.sipDraft(input.template, psid, sipCallId, sdp), input.ops, input.framing);
      await this.sendSip(kind, transport, text, chunks, { psid, sipCallId, malformed: breaks, report, waitFinal: false });
    });
  }

  /** Garbage and mutated SDP in otherwise correct agent INVITEs: garbage must be a 4xx before anything reaches Meta. */
  private agentSdp(o: CampaignOptions): Promise<KindReport> {
    return this.campaign("sdp-agent-invite", o, sdpInputArb("pbx"), async (input: SdpInput, report) => {
      const psid = uniquePsid();
      const sipCallId = `fz-${tag()}-${++serial}@127.0.0.1`;
      const sdp = renderSdp(input, phoneSdp(this.rig.agent.port + 10, undefined, 1));
      const { text } = renderSip(this.sipDraft("INVITE", psid, sipCallId, sdp), [], { frame: "none" });
      const garbage = isGarbageSdp(input);
      const final = await this.sendSip("sdp-agent-invite", text.length > UDP_MAX ? "tcp" : "udp", text, undefined, { psid, sipCallId, malformed: garbage, report, waitFinal: true });
      // The 513 itself was counted as a known hit where it arrived.
      const knownFinal = final === 513 && this.tolerating;
      if (garbage && !knownFinal && (final === undefined || final < 400 || final >= 500)) {
        throw new PropertyViolation("an INVITE whose SDP is not SDP gets a 4xx", `final answer ${final ?? "none"}`, preview(text));
      }
      if (!garbage && this.graphAbout({ psid }).some((r) => r.action === "connect")) report.notes.push(`mutated SDP reached connect: ${preview(sdp, 120)}`);
    });
  }

  /**
   * Sends one SIP input and probes with an OPTIONS; checks the answers. `malformed`: nothing about
   * `psid` may reach the Graph API. Returns the final status to an INVITE, when one came.
   */
  private async sendSip(
    kind: string,
    transport: "udp" | "tcp",
    text: string,
    chunks: number[] | undefined,
    o: { psid: string; sipCallId: string; malformed: boolean; report: KindReport; waitFinal: boolean },
  ): Promise<number | undefined> {
    const sentAt = Date.now();
    const answers: ParsedSip[] = [];
    const wire = preview(text);
    const gw = this.rig.gateway.sipAddress;
    let tcp: net.Socket | undefined;
    const onDatagram = (t: string): void => {
      const m = parseSip(t);
      if (m && !m.request && belongsTo(m, o.sipCallId)) answers.push(m);
    };
    this.rig.agent.onDatagram.add(onDatagram);
    try {
      if (transport === "udp") {
        if (Buffer.byteLength(text, "latin1") <= UDP_MAX) this.rig.agent.sendRaw(text, gw);
      } else {
        tcp = await sendTcp(gw, text, chunks, (m) => answers.push(m));
      }
      if (o.waitFinal) {
        const until = Date.now() + 2000;
        while (!answers.some((a) => (a.status ?? 0) >= 200 && header(a, "call-id") === o.sipCallId) && Date.now() < until) await sleep(10);
      } else {
        await sleep(transport === "tcp" ? 30 : 2);
      }
      await this.probeSip(kind, wire);
      for (const a of answers) {
        countStatus(o.report, a.status);
        if (cseqOf(a)?.method === "INVITE" && (a.status ?? 0) >= 300) this.ackFinal(a, tcp);
      }
      if (answers.length === 0) countStatus(o.report, undefined);
      const bad = answers.filter((a) => (a.status ?? 0) >= 500 && !this.known(o.report, knownSipFailure(a, false)));
      if (bad.length > 0) throw new PropertyViolation("no SIP 5xx for malformed input", `answered ${bad.map((a) => `${a.status} ${a.reason ?? ""}`).join(", ")}`, wire);
      const final = answers.find((a) => (a.status ?? 0) >= 200 && header(a, "call-id") === o.sipCallId)?.status;
      if (o.malformed) {
        await sleep(20);
        const traced = this.graphAbout({ psid: o.psid }, sentAt);
        if (traced.length > 0) {
          o.report.graphFromMalformed += traced.length;
          throw new PropertyViolation("no Graph request from malformed SIP", `${traced.map((r) => r.action ?? r.path).join(", ")} for ${o.psid}`, wire);
        }
      }
      return final;
    } finally {
      this.rig.agent.onDatagram.delete(onDatagram);
      tcp?.destroy();
    }
  }

  /** The gateway still answers SIP: an OPTIONS gets a 200 (a 5xx or silence is a failure). */
  private async probeSip(kind: string, wire: string): Promise<void> {
    const callId = `probe-${tag()}-${++serial}`;
    const gw = this.rig.gateway.sipAddress;
    const probe = sipText({
      startLine: `OPTIONS sip:probe@127.0.0.1:${gw.port} SIP/2.0`,
      headers: [
        ["Via", `SIP/2.0/UDP 127.0.0.1:${this.rig.agent.port};branch=${newBranch()};rport`],
        ["Max-Forwards", "70"],
        ["From", `<sip:probe@127.0.0.1:${this.rig.agent.port}>;tag=${newTag()}`],
        ["To", "<sip:probe@127.0.0.1>"],
        ["Call-ID", callId],
        ["CSeq", "1 OPTIONS"],
      ],
      body: "",
    });
    let status: number | undefined;
    const listener = (t: string): void => {
      const m = parseSip(t);
      if (m && header(m, "call-id") === callId) status = m.status;
    };
    this.rig.agent.onDatagram.add(listener);
    try {
      for (let attempt = 0; attempt < 3 && status === undefined; attempt++) {
        this.rig.agent.sendRaw(probe, gw);
        const until = Date.now() + 1000;
        while (status === undefined && Date.now() < until) await sleep(2);
      }
    } finally {
      this.rig.agent.onDatagram.delete(listener);
    }
    if (status !== 200) throw new PropertyViolation("the SIP port keeps answering", `OPTIONS after the ${kind} input answered ${status ?? "nothing"}`, wire);
  }

  /** ACK for a final non-2xx response to a fuzzed INVITE, so the gateway stops retransmitting it. */
  private ackFinal(final: ParsedSip, tcp: net.Socket | undefined): void {
    const via = final.headers.get("via")?.[0];
    if (!via) return;
    const ack = sipText({
      startLine: `ACK sip:ack@127.0.0.1:${this.rig.gateway.sipPort} SIP/2.0`,
      headers: [
        ["Via", via],
        ["Max-Forwards", "70"],
        ["From", header(final, "from") ?? ""],
        ["To", header(final, "to") ?? ""],
        ["Call-ID", header(final, "call-id") ?? ""],
        ["CSeq", `${cseqOf(final)?.seq ?? 1} ACK`],
      ],
      body: "",
    });
    if (tcp && !tcp.destroyed) tcp.write(ack, "latin1");
    else this.rig.agent.sendRaw(ack, this.rig.gateway.sipAddress);
  }

  // ---- calls for the in-dialog and media campaigns --------------------------------------------

  /** The call in-dialog and media inputs go into; a new one when the last has ended. */
  private async live(): Promise<LiveCall> {
    const current = this.liveCall;
    if (current && current.sim.state !== "ended" && current.pbx.state !== "ended") return current;
    if (current) await this.closeLiveCall();
    await this.rig.idle(5000);
    const portsBefore = this.rig.gateway.sampleProc().udpPorts.length;
    const call = await this.rig.consumerCall();
    this.learnFrom(this.rig.proxy.requests.filter((r) => r.callId === call.sim.id));
    this.liveCall = { ...call, portsBefore, portsUp: this.rig.gateway.sampleProc().udpPorts.length };
    return this.liveCall;
  }

  /** A call has ended (on both legs): the gateway's UDP ports come back to `portsBefore` within 3 s. */
  private async socketsFreedAfterEnd(portsBefore: number, wire: string): Promise<void> {
    if (this.liveCall?.sim.state === "ended") this.liveCall = undefined;
    await this.rig.idle(5000);
    const deadline = Date.now() + 3000;
    let after = this.rig.gateway.sampleProc().udpPorts;
    while (after.length > portsBefore && Date.now() < deadline) {
      await sleep(100);
      after = this.rig.gateway.sampleProc().udpPorts;
    }
    if (after.length > portsBefore) {
      throw new PropertyViolation("every socket of a call is closed when it ends", `UDP ports: ${portsBefore} before the call, ${after.length} after it ended (${after.join(", ")})`, wire);
    }
  }

  /**
   * An input that made the live call open another UDP socket: the call is ended there and then,
   * and every socket it held must close (the gateway holds no more ports than before the call).
   */
  private async socketsFreed(wire: string, report?: KindReport, known?: KnownFailure): Promise<void> {
    const live = this.liveCall;
    if (!live) return;
    const during = this.rig.gateway.sampleProc().udpPorts;
    if (during.length <= live.portsUp) return;
    await this.closeLiveCall();
    await this.rig.idle(5000);
    const deadline = Date.now() + 3000;
    let after = this.rig.gateway.sampleProc().udpPorts;
    while (after.length > live.portsBefore && Date.now() < deadline) {
      await sleep(100);
      after = this.rig.gateway.sampleProc().udpPorts;
    }
    if (after.length > live.portsBefore && !(report && this.known(report, known))) {
      throw new PropertyViolation(
        "every socket of a call is closed when it ends",
        `UDP ports: ${live.portsBefore} without the call, ${live.portsUp} with it up, ${during.length} after the input, ${after.length} once it had ended (${after.join(", ")})`,
        wire,
      );
    }
  }

  /** Audio flows both ways: the consumer's tone at the PBX and the PBX's tone at the consumer, within `ms`. */
  private async mediaFlows(call: { sim: SimCall; pbx: PhoneCall }, ms: number): Promise<string | undefined> {
    const deadline = Date.now() + ms;
    let last = "";
    while (Date.now() < deadline) {
      const from = performance.now();
      await sleep(250);
      const atPbx = call.pbx.audio.packetsSince(from);
      const level = call.pbx.audio.recentLevel(8);
      const heard = call.sim.consumer.detectTone(0.2);
      const consumerOk = Math.abs(heard.hz - PBX_TONE_HZ) < 30 && heard.levelDbfs > -45;
      if (atPbx >= 8 && level > 1000 && consumerOk) return undefined;
      last = `PBX got ${atPbx} packets at level ${level.toFixed(0)}; consumer hears ${heard.hz.toFixed(0)} Hz at ${heard.levelDbfs.toFixed(1)} dBFS`;
    }
    return last;
  }

  private callGone(call: { sim: SimCall; pbx: PhoneCall }): boolean {
    return call.sim.state === "ended" || call.pbx.state === "ended";
  }

  /** A call that ends must end on both legs: BYE to the PBX and the call over at Meta. */
  private async endedOnBothLegs(call: { sim: SimCall; pbx: PhoneCall }, ms: number): Promise<string | undefined> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (call.sim.state === "ended" && call.pbx.state === "ended") return undefined;
      await sleep(50);
    }
    return `Meta side ${call.sim.state}, PBX side ${call.pbx.state}`;
  }

  // ---- SIP inside a dialog --------------------------------------------------------------------

  private dialog(o: CampaignOptions): Promise<KindReport> {
    return this.campaign("sip-dialog", o, dialogInputArb({ maxHuge: 60_000 }), async (input: DialogInput, report) => {
      const call = await this.live();
      const pbx = this.rig.pbx;
      const seq = (call.pbx.cseq += 1);
      const draft = dialogDraft(input, call.pbx, pbx, seq);
      const { text } = renderSip(draft, input.ops, input.framing);
      const wire = preview(text);
      const answers: ParsedSip[] = [];
      // Every response in the window is this input's: the PBX has nothing else outstanding, and a
      // mutated Call-ID or CSeq comes back as sent.
      const listener = (t: string): void => {
        const m = parseSip(t);
        if (m && !m.request) answers.push(m);
      };
      pbx.onDatagram.add(listener);
      try {
        if (Buffer.byteLength(text, "latin1") <= UDP_MAX) pbx.sendRaw(text, call.pbx.peer);
        const until = Date.now() + (input.template === "re-INVITE" ? 3000 : 600);
        while (!answers.some((a) => (a.status ?? 0) >= 200) && Date.now() < until) await sleep(10);
        await this.probeSip("sip-dialog", wire);
      } finally {
        pbx.onDatagram.delete(listener);
      }
      for (const a of answers) countStatus(report, a.status);
      if (answers.length === 0) countStatus(report, undefined);
      const bad = answers.filter((a) => (a.status ?? 0) >= 500 && !this.known(report, knownSipFailure(a, true)));
      if (bad.length > 0) throw new PropertyViolation("no SIP 5xx for malformed input", `answered ${bad.map((a) => `${a.status} ${a.reason ?? ""}`).join(", ")}`, wire);
      const final = answers.find((a) => (a.status ?? 0) >= 200)?.status;
      if (final !== undefined && final >= 200 && final < 300) {
        // Accepted: a BYE ends the call, a re-INVITE may have moved the media; start clean next time.
        if (input.template === "BYE" || input.template === "re-INVITE") await this.closeLiveCall();
        return;
      }
      const dialogEnding = final === 481 || final === 408;
      if (dialogEnding) {
        await this.closeLiveCall();
        return;
      }
      // Refused or ignored: the call goes on untouched.
      await sleep(100);
      if (this.callGone(call)) {
        throw new PropertyViolation("a refused in-dialog request leaves the call up", `after ${final ?? "no answer"} the call ended (Meta ${call.sim.state}, PBX ${call.pbx.state})`, wire);
      }
      const media = await this.mediaFlows(call, 2000);
      if (media) throw new PropertyViolation("a refused in-dialog request leaves the media flowing", `after ${final ?? "no answer"}: ${media}`, wire);
      await this.socketsFreed(wire);
    });
  }

  // ---- SDP from Meta's side -------------------------------------------------------------------

  /** Signed media_update webhooks whose re-offer is mutated: garbage is refused and the call goes on. */
  private metaReoffers(o: CampaignOptions): Promise<KindReport> {
    let version = 0;
    return this.campaign("sdp-meta-reoffer", o, sdpInputArb("meta"), async (input: SdpInput, report) => {
      const call = await this.live();
      version = Math.max(version, call.sim.mediaVersion) + 1;
      const sdp = renderSdp(input, this.metaReoffer || FALLBACK_META_SDP);
      const body = Buffer.from(
        JSON.stringify({
          object: "page",
          entry: [{ id: FUZZ_META.pageId, time: Date.now(), calls: [{ id: call.sim.id, event: "media_update", timestamp: Math.floor(Date.now() / 1000), session: { version, sdp_renegotiation: { sdp_type: "offer", sdp } } }] }],
        }),
      );
      const wire = preview(sdp);
      const res = await postWebhook(this.rig.gateway.webhookUrl, body, signatureHeaders("valid", body), "application/json");
      countStatus(report, res.status);
      if (res.status >= 500 || res.status === 0) throw new PropertyViolation("no HTTP 5xx on the webhook endpoint", `answered ${res.status || res.error}`, wire);
      await sleep(150);
      if (isGarbageSdp(input)) {
        if (this.callGone(call)) throw new PropertyViolation("a re-offer that is not SDP is refused and the call goes on", `the call ended (Meta ${call.sim.state}, PBX ${call.pbx.state})`, wire);
        const media = await this.mediaFlows(call, 2000);
        if (media) throw new PropertyViolation("a re-offer that is not SDP leaves the media flowing", media, wire);
        await this.socketsFreed(wire);
        return;
      }
      // A mutated but readable offer may be applied; the call then either works or ends on both legs.
      const media = await this.mediaFlows(call, 2500);
      if (media === undefined) {
        await this.socketsFreed(wire, report, knownReofferFailure(sdp));
        return;
      }
      const ended = await this.endedOnBothLegs(call, 9000);
      if (ended) throw new PropertyViolation("a call whose media broke ends on both legs", `${media}; ${ended}`, wire);
      await this.socketsFreedAfterEnd(call.portsBefore, wire);
    });
  }

  /** Meta answers accept with a mutated SDP (through the proxy): the call works or ends on both legs, never `reject` after success. */
  private metaAnswers(o: CampaignOptions): Promise<KindReport> {
    const arb = fc.record({ answer: sdpInputArb("meta"), reoffer: fc.oneof(fc.constant(undefined), sdpInputArb("meta")) });
    return this.campaign("sdp-meta-answer", o, arb, async (input: { answer: SdpInput; reoffer: SdpInput | undefined }, report) => {
      await this.closeLiveCall();
      await this.rig.idle(5000);
      const portsBefore = this.rig.gateway.sampleProc().udpPorts.length;
      const psid = uniquePsid();
      const rule = this.rig.proxy.addRule({
        match: (r) => r.action === "accept" && r.psid === psid,
        times: 1,
        fault: {
          kind: "mutate-sdp",
          mutate: (sdp, field) => (field === "sdp_response" ? renderSdp(input.answer, sdp) : input.reoffer ? renderSdp(input.reoffer, sdp) : sdp),
        },
      });
      const wire = preview(`${isGarbageSdp(input.answer) ? "garbage answer" : "mutated answer"}${input.reoffer ? " + mutated re-offer" : ""}`);
      try {
        const sim = await this.rig.sim.placeCall({ psid });
        countStatus(report, sim.connectWebhookStatus);
        const pbx = await waitFor(() => this.rig.pbx.byMetaCallId(sim.id), 5000);
        if (!pbx) throw new PropertyViolation("a consumer call rings the PBX", "no INVITE reached the PBX", wire);
        const accepted = await waitFor(() => rule.hits!.length > 0 || undefined, 5000);
        if (!accepted) throw new PropertyViolation("a consumer call rings the PBX", "no accept was sent", wire);
        const call = { sim, pbx };
        const media = await this.mediaFlows(call, 2500);
        if (media === undefined) {
          await this.rig.pbx.bye(pbx);
        }
        const ended = await this.endedOnBothLegs(call, media === undefined ? 5000 : 20_000);
        const rejects = this.rig.proxy.requests.filter((r) => r.callId === sim.id && r.action === "reject");
        if (rejects.length > 0) throw new PropertyViolation("after a successful accept the call is ended with terminate, not reject", `sent reject (${media ?? "media flowed"})`, wire);
        if (ended) throw new PropertyViolation("a call whose accept answer is unusable ends on both legs", `${media ?? "media flowed"}; ${ended}`, wire);
        await this.socketsFreedAfterEnd(portsBefore, wire);
      } finally {
        this.rig.proxy.removeRule(rule);
      }
    });
  }

  // ---- RTP and RTCP ---------------------------------------------------------------------------

  private rtp(leg: "pbx" | "meta", o: CampaignOptions): Promise<KindReport> {
    const kind: InputKind = leg === "pbx" ? "rtp-pbx-leg" : "rtp-meta-leg";
    // Short batches: a batch that breaks the gateway shrinks one restart per step.
    const arb = fc.array(packetSpecArb({ garbageWeight: leg === "pbx" ? 1 : 3, webrtcWeight: leg === "pbx" ? 0 : 4 }), { minLength: 1, maxLength: 12 });
    let foreign: dgram.Socket | undefined;
    return this.campaign(kind, o, arb, async (packets: PacketSpec[], report) => {
      const call = await this.live();
      const datagrams = packets.map((p) => renderPacket(p, leg === "pbx" ? call.pbx.audio.ssrc : 0x12345678));
      const wire = datagrams.slice(0, 3).map((d) => d.toString("hex").slice(0, 80)).join(" | ");
      if (leg === "pbx") {
        // From the PBX's own RTP/RTCP sockets: the gateway latches onto this source.
        packets.forEach((p, i) => call.pbx.audio.send(datagrams[i]!, p.kind === "rtcp"));
      } else {
        const port = this.metaLegPort(call.sim.id);
        if (port === undefined) throw new PropertyViolation("the Meta leg's port is known", "no candidate in our accept", wire);
        foreign ??= await openUdp();
        for (const d of datagrams) foreign.send(d, port, "127.0.0.1");
      }
      countStatus(report, undefined);
      const media = await this.mediaFlows(call, 2000);
      if (this.callGone(call)) throw new PropertyViolation("malformed media packets never end the call", `ended (Meta ${call.sim.state}, PBX ${call.pbx.state})`, wire);
      if (media) throw new PropertyViolation("malformed media packets leave the audio flowing", media, wire);
      await this.socketsFreed(wire);
    }).finally(() => foreign?.close());
  }

  /** The gateway's ICE/DTLS port toward Meta for a call: the host candidate of its accept offer. */
  private metaLegPort(callId: string): number | undefined {
    const accept = this.rig.proxy.requests.find((r) => r.callId === callId && r.action === "accept");
    const m = accept ? /a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host/.exec(accept.rawBody.replace(/\\r\\n/g, "\n")) : null;
    return m ? Number(m[1]) : undefined;
  }
}

/** The call the in-dialog and media inputs share, with the gateway's UDP port count before it and with it up. */
interface LiveCall {
  sim: SimCall;
  pbx: PhoneCall;
  portsBefore: number;
  portsUp: number;
}

/** Whether a response belongs to the input sent with `sipCallId` (a mutated Call-ID comes back mutated). */
function belongsTo(m: ParsedSip, sipCallId: string): boolean {
  const id = header(m, "call-id") ?? "";
  if (id === sipCallId) return true;
  return !/^(fz-\d+-\d+@127\.0\.0\.1|probe-\d+-\d+)$/.test(id);
}

function dialogDraft(input: DialogInput, call: PhoneCall, pbx: FuzzPhone, seq: number): SipDraft {
  const method = input.template === "re-INVITE" ? "INVITE" : input.template.startsWith("INFO") ? "INFO" : input.template;
  const headers: Array<[string, string]> = [
    ["Via", `SIP/2.0/UDP 127.0.0.1:${pbx.port};branch=${newBranch()};rport`],
    ["Max-Forwards", "70"],
    ["From", call.localId],
    ["To", call.remoteId],
    ["Call-ID", call.sipCallId],
    ["CSeq", `${seq} ${method}`],
    ["Contact", `<sip:agents@127.0.0.1:${pbx.port}>`],
  ];
  let body = "";
  if (input.template === "re-INVITE") {
    headers.push(["Content-Type", "application/sdp"]);
    body = renderSdp(input.sdp, phoneSdp(call.audio.port, undefined, seq));
  } else if (input.template === "INFO-dtmf") {
    headers.push(["Content-Type", "application/dtmf-relay"]);
    body = "Signal=7\r\nDuration=160\r\n";
  } else if (input.template === "INFO-fast-update") {
    headers.push(["Content-Type", "application/media_control+xml"]);
    body = '<?xml version="1.0" encoding="utf-8" ?><media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>';
  }
  return { startLine: `${method} ${call.remoteTarget} SIP/2.0`, headers, body };
}

// ---- transports -----------------------------------------------------------------------------------

function signatureHeaders(mode: WebhookInput["signature"], body: Buffer): Record<string, string> {
  const valid = signBody(body, FUZZ_META.appSecret, "sha256");
  switch (mode) {
    case "valid":
      return { [SIGNATURE_256_HEADER]: valid, [SIGNATURE_SHA1_HEADER]: signBody(body, FUZZ_META.appSecret, "sha1") };
    case "missing":
      return {};
    case "wrong-secret":
      return { [SIGNATURE_256_HEADER]: signBody(body, `${FUZZ_META.appSecret}-not`, "sha256") };
    case "other-body":
      return { [SIGNATURE_256_HEADER]: signBody(Buffer.concat([body, Buffer.from(" ")]), FUZZ_META.appSecret, "sha256") };
    case "garbage":
      return { [SIGNATURE_256_HEADER]: "sha256=zz\u00ff" };
    case "sha1-only":
      return { [SIGNATURE_SHA1_HEADER]: signBody(body, FUZZ_META.appSecret, "sha1") };
    case "empty":
      return { [SIGNATURE_256_HEADER]: "" };
    case "truncated":
      return { [SIGNATURE_256_HEADER]: valid.slice(0, -2) };
  }
}

const agent = new http.Agent({ keepAlive: false });

/** One POST with exact bytes; status 0 when no answer came (reset, timeout). */
export function postWebhook(url: string, body: Buffer, headers: Record<string, string>, contentType: string): Promise<{ status: number; error?: string }> {
  return new Promise((resolve) => {
    let status = 0;
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      resolve({ status, ...(error ? { error } : {}) });
    };
    const req = http.request(
      url,
      {
        method: "POST",
        agent,
        headers: { ...(contentType ? { "content-type": contentType } : {}), "content-length": body.length, "user-agent": "facebookexternalua", ...headers },
      },
      (res) => {
        status = res.statusCode ?? 0;
        res.resume();
        res.on("end", () => finish());
        res.on("error", () => finish());
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", (err) => finish(err.message));
    req.end(body);
  });
}

/** Opens a TCP connection to the gateway's SIP port and writes `text` (in chunks when given). */
async function sendTcp(to: { address: string; port: number }, text: string, chunks: number[] | undefined, onAnswer: (m: ParsedSip) => void): Promise<net.Socket> {
  const socket = net.connect(to.port, to.address);
  socket.on("error", () => undefined);
  let buffered = "";
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => {
    buffered += d;
    for (;;) {
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) break;
      const length = Number(/\r\n(?:content-length|l)\s*:\s*(\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
      if (buffered.length < end + 4 + length) break;
      const m = parseSip(buffered.slice(0, end + 4 + length));
      buffered = buffered.slice(end + 4 + length);
      if (m) onAnswer(m);
    }
  });
  await new Promise<void>((resolve) => {
    socket.once("connect", () => resolve());
    socket.once("error", () => resolve());
  });
  const bytes = Buffer.from(text, "latin1");
  if (!chunks) {
    socket.write(bytes);
    return socket;
  }
  let off = 0;
  for (const size of chunks) {
    if (off >= bytes.length || socket.destroyed) break;
    socket.write(bytes.subarray(off, off + size));
    off += size;
    await sleep(2);
  }
  if (off < bytes.length && !socket.destroyed) socket.write(bytes.subarray(off));
  return socket;
}

function openUdp(): Promise<dgram.Socket> {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    s.on("error", () => undefined);
    s.bind(0, "127.0.0.1", () => resolve(s));
  });
}

async function waitFor<T>(get: () => T | undefined, ms: number): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(20);
  }
}

/** Meta's re-offer shape, used only until a live call has shown a real one. */
const FALLBACK_META_SDP = [
  "v=0",
  "o=- 4215775240449105457 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=ice-lite",
  "a=group:BUNDLE 0 1",
  "a=msid-semantic: WMS",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "c=IN IP4 127.0.0.1",
  "a=rtcp:9 IN IP4 0.0.0.0",
  "a=ice-ufrag:fuzz",
  "a=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz",
  "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
  "a=setup:actpass",
  "a=mid:0",
  "a=recvonly",
  "a=rtcp-mux",
  "a=rtpmap:111 opus/48000/2",
  "a=fmtp:111 minptime=10;useinbandfec=1",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "c=IN IP4 127.0.0.1",
  "a=mid:1",
  "a=sendonly",
  "a=rtcp-mux",
  "a=rtpmap:111 opus/48000/2",
  "a=ssrc:1234 cname:fuzz",
  "",
].join("\r\n");
