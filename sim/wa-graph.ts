import { GraphApiError, graphErrors } from "./graph-errors.js";
import { accessTokenOf } from "./graph-request.js";
import {
  parseGraphBody,
  type GraphExtension,
  type GraphExtensionRequest,
  type GraphFailure,
  type GraphFailureKey,
} from "./graph-server.js";
import { waErrors } from "./wa-errors.js";
import {
  parsePermissionRequestMessage,
  parsePermissionsQuery,
  parseWhatsAppCallsBody,
  whatsAppActionOf,
  type PermissionRequestMessage,
  type WaUserRef,
  type WhatsAppCallsRequest,
} from "./wa-request.js";

/** A business number as the Graph layer needs it. */
export interface WaGraphNumber {
  phoneNumberId: string;
  accessToken: string;
  /** `calling.sip.status: ENABLED`: the Graph calling endpoints answer 131055. */
  sipEnabled: boolean;
}

/** What the WhatsApp Graph layer delegates to once a request is authenticated and structurally valid. */
export interface WaGraphBackend {
  number(phoneNumberId: string): WaGraphNumber | undefined;
  handleCalls(phoneNumberId: string, request: WhatsAppCallsRequest): Promise<unknown>;
  callPermissions(phoneNumberId: string, user: WaUserRef): unknown;
  sendPermissionRequest(phoneNumberId: string, message: PermissionRequestMessage): unknown;
  /** `GET /{phone-number-id}/settings`: the calling settings. */
  settings(phoneNumberId: string): unknown;
  /** `POST /{phone-number-id}/settings` with `calling{…}`: SIP status and SRTP key exchange take effect for new calls. */
  updateSettings(phoneNumberId: string, body: unknown): unknown;
}

/** Any injected failure for a WhatsApp request travels in the WhatsApp envelope (with error_data). */
function waFailure(failure: Exclude<GraphFailure, "timeout">): GraphApiError {
  return new GraphApiError({ ...failure, errorData: failure.errorData ?? { messaging_product: "whatsapp", details: failure.message } });
}

/**
 * The Graph API of WhatsApp business numbers: `/{phone-number-id}/calls`, `/call_permissions` and `/messages`,
 * with the number's token, 131055 when the number is set to SIP, 613/429 past the permissions API rate, and
 * the WhatsApp error envelope. Served by GraphServer for the ids it owns.
 */
export class WhatsAppGraph implements GraphExtension {
  private readonly permissionLookups = new Map<string, number[]>();

  constructor(
    private readonly backend: WaGraphBackend,
    private readonly takeFailure: (key: GraphFailureKey) => GraphFailure | undefined,
    private readonly permissionsRatePerSecond: () => number,
  ) {}

  owns(objectId: string): boolean {
    return this.backend.number(objectId) !== undefined;
  }

  async handle(request: GraphExtensionRequest): Promise<{ status: number; body: unknown } | "hold"> {
    try {
      return await this.route(request);
    } catch (error) {
      if (error instanceof GraphApiError) return { status: error.httpStatus, body: error.toEnvelope() };
      throw error;
    }
  }

  private async route(request: GraphExtensionRequest): Promise<{ status: number; body: unknown } | "hold"> {
    const number = this.backend.number(request.objectId);
    if (!number) throw graphErrors.unsupportedRequest(request.method, request.objectId);
    const token = accessTokenOf(request.headers.authorization, request.query);
    if (token === undefined) throw graphErrors.missingToken();
    if (token !== number.accessToken) throw graphErrors.invalidToken();
    if (request.rest.length > 0) throw graphErrors.unsupportedRequest(request.method, request.objectId);

    switch (request.edge) {
      case "calls": {
        if (request.method !== "POST") throw graphErrors.unsupportedRequest(request.method, request.objectId);
        const body = this.body(request);
        const action = whatsAppActionOf(body);
        request.record.action = action;
        const injected = action ? this.takeFailure(action) : undefined;
        if (injected === "timeout") return "hold";
        if (injected) throw waFailure(injected);
        if (number.sipEnabled) throw waErrors.sipEnabled();
        const parsed = parseWhatsAppCallsBody(body);
        return { status: 200, body: await this.backend.handleCalls(number.phoneNumberId, parsed) };
      }
      case "call_permissions": {
        if (request.method !== "GET") throw graphErrors.unsupportedRequest(request.method, request.objectId);
        const injected = this.takeFailure("call_permissions");
        if (injected === "timeout") return "hold";
        if (injected) throw waFailure(injected);
        if (number.sipEnabled) throw waErrors.sipEnabled();
        this.checkPermissionsRate(number.phoneNumberId);
        return { status: 200, body: this.backend.callPermissions(number.phoneNumberId, parsePermissionsQuery(request.query)) };
      }
      case "messages": {
        if (request.method !== "POST") throw graphErrors.unsupportedRequest(request.method, request.objectId);
        const body = this.body(request);
        const injected = this.takeFailure("messages");
        if (injected === "timeout") return "hold";
        if (injected) throw waFailure(injected);
        return { status: 200, body: this.backend.sendPermissionRequest(number.phoneNumberId, parsePermissionRequestMessage(body)) };
      }
      case "settings": {
        if (request.method === "GET") return { status: 200, body: this.backend.settings(number.phoneNumberId) };
        if (request.method !== "POST") throw graphErrors.unsupportedRequest(request.method, request.objectId);
        return { status: 200, body: this.backend.updateSettings(number.phoneNumberId, this.body(request)) };
      }
      default:
        throw graphErrors.unsupportedRequest(request.method, request.objectId);
    }
  }

  private body(request: GraphExtensionRequest): unknown {
    try {
      const body = parseGraphBody(request.rawBody, request.headers["content-type"]);
      request.record.body = body;
      return body;
    } catch (error) {
      throw waErrors.invalidParameter(`Request body is not valid JSON: ${error instanceof Error ? error.message.slice(0, 200) : "unreadable"}`);
    }
  }

  /** A sliding one-second window per number; past it, 613 with HTTP 429. */
  private checkPermissionsRate(phoneNumberId: string): void {
    const now = Date.now();
    const recent = (this.permissionLookups.get(phoneNumberId) ?? []).filter((t) => t > now - 1000);
    if (recent.length >= this.permissionsRatePerSecond()) {
      this.permissionLookups.set(phoneNumberId, recent);
      throw waErrors.permissionsRateLimit();
    }
    recent.push(now);
    this.permissionLookups.set(phoneNumberId, recent);
  }
}
