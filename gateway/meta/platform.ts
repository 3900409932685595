/** The Meta products whose calls the gateway carries. */
export type Platform = "messenger" | "whatsapp";

/**
 * How a call's media toward Meta is keyed: DTLS-SRTP over ICE, or SDES (`a=crypto`) without ICE or
 * DTLS, for WhatsApp numbers set to `srtp_key_exchange_protocol: SDES`.
 */
export type KeyExchange = "DTLS" | "SDES";
