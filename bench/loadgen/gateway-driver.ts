import { EmbeddedSipSignaling } from "../../sip/embedded/embedded-signaling.js";
import type { IncomingSipCall } from "../../sip/signaling.js";
import { buildAnswer, readRemoteMedia } from "../../sip/sdp.js";
import { graphErrors } from "../../sim/graph-errors.js";
import type { CallsRequest } from "../../sim/graph-request.js";
import { GraphServer, type CallsSuccess, type GraphBackend } from "../../sim/graph-server.js";
import { shapeMetaAnswer, shapeMetaReoffer } from "../../sim/sdp-meta-style.js";
import { connectEvent, terminateEvent } from "../../sim/webhook-events.js";
import { WebhookSender } from "../../sim/webhook-sender.js";
import type { BenchCall } from "./bench-call.js";
import type { CallDriver } from "./driver.js";
import { GraphFront } from "./graph-front.js";

export interface GatewayDriverOptions {
  pageId: string;
  appSecret: string;
  pageAccessToken: string;
  graphVersion: string;
}

/** Ringing the PBX leg longer than this means the gateway lost the call. */
const BYE_WAIT_MS = 10_000;

/**
 * Plays Meta and the PBX around one gateway process: Meta's Graph API (accept answers with the
 * consumer's SDP and Meta's split re-offer), signed connect/terminate webhooks, and a SIP UAS that
 * answers every INVITE at once with a PCMU phone. The gateway's INVITE names the Messenger call
 * (X-Meta-Call-Id), which ties both legs of a call together in this process.
 */
export class GatewayDriver implements CallDriver {
  private readonly calls = new Map<string, BenchCall>();
  private graph: GraphServer | undefined;
  private front: GraphFront | undefined;
  private sip: EmbeddedSipSignaling | undefined;
  private webhooks: WebhookSender | undefined;
  private readonly pbxLegs = new Map<string, IncomingSipCall>();

  constructor(private readonly o: GatewayDriverOptions) {}

  async start(): Promise<{ graphUrl: string; sipPort: number }> {
    const backend: GraphBackend = {
      handleCalls: (request) => this.onGraph(request),
      callPermissions: () => ({ permission: { status: "has_permission" }, actions: [] }),
      sendMessage: () => {
        throw graphErrors.invalidParameter("the bench sends no messages");
      },
      // Each call's quality report is part of the gateway's real work per call: taken, not checked.
      callMetrics: () => ({ success: true }),
    };
    this.graph = await GraphServer.start({ host: "127.0.0.1", port: 0, pageId: this.o.pageId, pageAccessToken: this.o.pageAccessToken }, backend);
    this.front = await GraphFront.start(this.graph.url, ["accept"]);
    this.sip = new EmbeddedSipSignaling({ address: "127.0.0.1", port: 0, transports: ["udp"], host: "127.0.0.1", userAgent: "bench-pbx" });
    this.sip.on("incoming", (call) => void this.onInvite(call));
    await this.sip.start();
    return { graphUrl: this.front.url, sipPort: this.sip.port };
  }

  setWebhookUrl(url: string): void {
    void this.webhooks?.close();
    this.webhooks = new WebhookSender({
      url,
      appSecret: this.o.appSecret,
      pageId: this.o.pageId,
      graphVersion: this.o.graphVersion,
      timeoutMs: 10_000,
      retries: 0,
    });
  }

  async place(call: BenchCall): Promise<void> {
    const webhooks = this.webhooks;
    if (!webhooks) throw new Error("no webhook URL yet");
    this.calls.set(call.id, call);
    call.times.webhookSentAt = performance.now();
    const status = await webhooks.sendEvent(
      connectEvent({ callId: call.id, pageId: this.o.pageId, psid: call.psid, direction: "user_initiated" }),
    );
    // The simulator keeps every delivery for inspection; a long run must not.
    webhooks.deliveries.length = 0;
    if (status !== 200) {
      call.fail(`connect webhook answered ${status}`);
      this.calls.delete(call.id);
    }
  }

  /**
   * The consumer hangs up: terminate webhook, then the gateway's BYE ends the PBX leg. A call that
   * failed is torn down the same way, so the gateway never keeps what the bench gave up on.
   */
  async hangup(call: BenchCall): Promise<void> {
    const leg = this.pbxLegs.get(call.id);
    try {
      if (call.state !== "failed" && call.state !== "ended") call.state = "ending";
      call.closeConsumer();
      if (this.calls.has(call.id)) {
        const now = Date.now();
        const status = await this.webhooks
          ?.sendEvent(terminateEvent({ callId: call.id, status: "Completed", startedAt: now - 1000, endedAt: now }))
          .catch(() => 0);
        this.webhooks?.deliveries.splice(0);
        if (status !== 200) call.fail(`terminate webhook answered ${status}`);
      }
      if (!leg) {
        call.closePhone();
        return;
      }
      await call.waitEnded(BYE_WAIT_MS).catch((err: unknown) => call.fail((err as Error).message));
      // No BYE came (or the call had failed before): end the PBX leg from the PBX side.
      if (leg.state !== "terminated") {
        call.closePhone();
        await leg.hangup().catch(() => undefined);
      }
    } finally {
      this.calls.delete(call.id);
      this.pbxLegs.delete(call.id);
    }
  }

  async close(): Promise<void> {
    await this.webhooks?.close();
    await this.sip?.stop();
    await this.front?.close();
    await this.graph?.close();
  }

  private async onGraph(request: CallsRequest): Promise<CallsSuccess> {
    if (this.graph) this.graph.requests.length = 0;
    if (request.action !== "accept" && request.action !== "terminate" && request.action !== "reject") {
      throw graphErrors.invalidParameter(`the bench plays consumer-initiated calls only (got ${request.action})`);
    }
    const call = this.calls.get(request.callId);
    if (!call) throw graphErrors.invalidCallId(request.callId);
    if (request.action !== "accept") {
      // The gateway ended the call on its own: nothing in the bench asks it to.
      call.fail(`gateway sent ${request.action}`);
      return { success: true };
    }
    call.times.acceptArrivedAt = this.front?.takeArrival("accept", request.callId) ?? performance.now();
    const consumer = call.createConsumer("server");
    const answer = shapeMetaAnswer(await consumer.answerOffer(request.session.sdp));
    const reoffer = shapeMetaReoffer(await consumer.createSplitReoffer());
    return {
      success: true,
      session: { sdp_response: { sdp_type: "answer", sdp: answer }, sdp_renegotiation: { sdp_type: "offer", sdp: reoffer } },
    };
  }

  private async onInvite(incoming: IncomingSipCall): Promise<void> {
    const arrived = performance.now();
    const callId = incoming.header("X-Meta-Call-Id");
    const call = callId ? this.calls.get(callId) : undefined;
    if (!call || call.state !== "placing") {
      incoming.reject(404, "Not Found");
      return;
    }
    call.times.inviteArrivedAt = arrived;
    this.pbxLegs.set(call.id, incoming);
    incoming.on("ended", () => call.closePhone());
    incoming.on("cancel", () => call.fail("gateway cancelled the INVITE"));
    try {
      const offer = incoming.remoteSdp ?? "";
      const remote = readRemoteMedia(offer);
      const phone = await call.createPhone();
      phone.setRemote(remote.audio.address, remote.audio.port);
      const sdp = buildAnswer(offer, {
        mediaAddress: "127.0.0.1",
        audioPort: phone.port,
        rtcpPort: phone.port,
        audioCodecs: ["PCMU"],
        telephoneEventPayloadType: false,
      });
      call.times.okSentAt = performance.now();
      void incoming.accept(sdp);
      call.startPhone();
    } catch (err) {
      incoming.reject(488, "Not Acceptable Here");
      call.fail(`PBX could not answer: ${(err as Error).message}`);
    }
  }
}
