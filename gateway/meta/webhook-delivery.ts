import { parseMessengerWebhook, WebhookFormatError, type ParsedWebhook, type WebhookParseLimits } from "./webhook.js";
import { parseWhatsAppWebhook, type WhatsAppParsedWebhook } from "./whatsapp-webhook.js";

export type MessengerDelivery = { platform: "messenger" } & ParsedWebhook;
export type WhatsAppDelivery = { platform: "whatsapp" } & WhatsAppParsedWebhook;

/** One signed webhook POST, parsed by the platform its envelope names. */
export type WebhookDelivery = MessengerDelivery | WhatsAppDelivery;

/**
 * Messenger (`object: "page"`) and WhatsApp (`object: "whatsapp_business_account"`) may share one
 * webhook URL: the envelope says which parser reads it.
 */
export function parseWebhookDelivery(body: unknown, limits: WebhookParseLimits): WebhookDelivery {
  const object = typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>).object : undefined;
  if (object === "whatsapp_business_account") return { platform: "whatsapp", ...parseWhatsAppWebhook(body, limits) };
  if (object === "page" || object === undefined || typeof object !== "string") return { platform: "messenger", ...parseMessengerWebhook(body, limits) };
  throw new WebhookFormatError(`unexpected webhook object ${JSON.stringify(object.slice(0, 40))}, expected "page" or "whatsapp_business_account"`);
}
