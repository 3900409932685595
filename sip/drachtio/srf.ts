import { createRequire } from "node:module";

/**
 * Local typings for the part of drachtio-srf 5.0.29 this backend uses, checked against its
 * JavaScript rather than its bundled .d.ts: that one declares callbacks with the wrong arity
 * (createUAC's cbRequest is called `(err, req)`), types `Srf#request` with a signature the code
 * does not have, and leaves out `srf.use(method, …)` handlers' real shapes. Only this folder
 * sees these types; nothing typed `any` leaves it.
 */

export interface SrfMessage {
  readonly body: string;
  /** The whole message as received or sent. */
  readonly raw: string;
  readonly source: "network" | "application";
  readonly source_address: string;
  readonly source_port: number;
  /** `udp`, `tcp` or `tls` (lower case, as drachtio-server reports it). */
  readonly protocol: string;
  /** `host:port` of drachtio-server's listener a request arrived on, when it says. */
  readonly receivedOn?: string;
  /** drachtio-server's id of the dialog the message belongs to, when it does. */
  readonly stackDialogId?: string;
  /** A header's value; repeated headers come joined with commas. */
  get(name: string): string | undefined;
  has(name: string): boolean;
}

/** A response drachtio-server received for a request we sent. */
export interface SrfResponse extends SrfMessage {
  readonly status: number;
  readonly reason: string;
}

/** Sends the ACK (2xx to INVITE) or PRACK drachtio-srf prepared for a response. */
export type SrfAck = (opts?: { body?: string }) => void;

/** A request: one we sent (echoed back by drachtio-server) or one that arrived. */
export interface SrfRequest extends SrfMessage {
  readonly method: string;
  readonly uri: string;
  /** CANCELs an INVITE we sent. Throws when the request is not ours. */
  cancel(callback?: (err: Error | null) => void): void;
  on(event: "response", listener: (res: SrfResponse, ack: SrfAck) => void): this;
  on(event: "cancel", listener: (cancel: SrfMessage) => void): this;
}

export interface SrfSendOptions {
  headers?: Record<string, string>;
  body?: string;
}

/** The response object for a request that arrived; `send` answers it. */
export interface SrfServerResponse {
  readonly finalResponseSent: boolean;
  send(status: number, reason: string, opts?: SrfSendOptions, callback?: (err: Error | string | null) => void): void;
  send(status: number, opts?: SrfSendOptions, callback?: (err: Error | string | null) => void): void;
}

export interface SrfDialog {
  /** drachtio-server's dialog id (`<call-id>;from-tag=…`). */
  readonly id: string;
  readonly sip: { callId: string; localTag: string; remoteTag: string };
  readonly local: { sdp: string; contact: string; uri: string };
  readonly remote: { sdp: string; uri: string };
  /** The connection the dialog was made on (what requestInDialog sends through). */
  readonly agent: SrfAgent;
  readonly socket: unknown;
  /** BYE; the callback runs on its response (or at once when it could not be sent). */
  destroy(opts: { headers?: Record<string, string> }, callback: (err: Error | null) => void): void;
  on(event: "destroy", listener: (req: SrfRequest, reason?: string) => void): this;
  on(event: "modify" | "info" | "options" | "update" | "refer" | "notify", listener: (req: SrfRequest, res: SrfServerResponse) => void): this;
  on(event: "ack", listener: (req: SrfRequest) => void): this;
  removeAllListeners(): this;
}

interface SrfAgent {
  request(
    opts: { method: string; stackDialogId: string; headers: Record<string, string>; body?: string; _socket: unknown },
    callback: (err: Error | null, req?: SrfRequest) => void,
  ): void;
}

/**
 * An in-dialog request and its final response. Not `Dialog#request`: for an INVITE it ACKs every
 * final response, and after a 491 drachtio-server (which ACKs non-2xx itself) puts a second ACK on
 * the wire. Not the `info()`/`refer()` shorthands either: in 5.0.29 they are arrow functions that
 * lose `this` and throw. Throws synchronously when the request cannot be handed over.
 */
export function requestInDialog(
  dialog: SrfDialog,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  callback: (err: Error | null, res?: SrfResponse) => void,
): void {
  dialog.agent.request({ method, stackDialogId: dialog.id, headers, body, _socket: dialog.socket }, (err, req) => {
    if (err || !req) {
      callback(err ?? new Error(`${method} not sent`));
      return;
    }
    req.on("response", (res, ack) => {
      if (res.status < 200) return;
      if (method === "INVITE" && res.status < 300) ack();
      callback(null, res);
    });
  });
}

/** drachtio-srf's SipError: a final non-2xx response to createUAC/createUAS. */
export interface SrfSipError extends Error {
  status: number;
  reason?: string;
  res?: SrfResponse;
}

export function isSrfSipError(err: unknown): err is SrfSipError {
  return err instanceof Error && typeof (err as Partial<SrfSipError>).status === "number";
}

export interface SrfConnectOptions {
  host: string;
  port: number;
  secret: string;
  enablePing: boolean;
  /** drachtio-srf refuses less than 5000. */
  pingInterval: number;
  /**
   * Without `retryMaxDelay` drachtio-srf's back-off grows without bound (it compares against
   * `undefined`), so it is always given.
   */
  reconnect: { retryMaxDelay: number };
}

export interface SrfCreateUacOptions {
  localSdp: string;
  headers: Record<string, string>;
  /**
   * Outbound proxy: drachtio-server sends the request there as its next hop, the Request-URI
   * staying the target. It writes no Route header for it (a Route the application sets is dropped).
   */
  proxy?: string;
}

export interface SrfProgress {
  /** Called `(err, req)`, not `(req)` as the bundled typings say. */
  cbRequest: (err: Error | null, req?: SrfRequest) => void;
  cbProvisional: (res: SrfResponse) => void;
}

export type SrfHandler = (req: SrfRequest, res: SrfServerResponse) => void;

export interface Srf {
  connect(opts: SrfConnectOptions): void;
  on(event: "connect", listener: (err: Error | null, hostport?: string, serverVersion?: string) => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  on(event: "close", listener: () => void): this;
  on(event: "reconnecting", listener: (o: { delay: number; attempt: number }) => void): this;
  invite(handler: SrfHandler): void;
  use(method: string, handler: SrfHandler): void;
  /**
   * Out-of-dialog request (`proxy` as for createUAC), callback form only: the promise form resolves in a later microtask and
   * can miss a response that arrived in the same TCP read as drachtio-server's echo.
   * Throws synchronously while there is no connection.
   */
  request(
    uri: string,
    opts: { method: string; headers?: Record<string, string>; body?: string; stackDialogId?: string; proxy?: string },
    callback: (err: Error | null, req?: SrfRequest) => void,
  ): void;
  /** Callback form; throws synchronously while there is no connection. */
  createUAC(uri: string, opts: SrfCreateUacOptions, progress: SrfProgress, callback: (err: Error | null, dialog?: SrfDialog) => void): void;
  createUAS(req: SrfRequest, res: SrfServerResponse, opts: { localSdp: string; headers: Record<string, string> }, callback: (err: Error | null, dialog?: SrfDialog) => void): void;
  removeDialog(dialog: SrfDialog): void;
}

/**
 * What `stop()` must reach inside drachtio-srf: `srf.disconnect()` throws when no socket is up
 * (an assertion on an undefined socket) before it marks the connection as closing, so a reconnect
 * timer already armed would keep dialling forever. These fields are read defensively.
 */
interface SrfInternals {
  _app?: {
    client?: {
      wp?: {
        closing?: boolean;
        socket?: { destroy(): void };
        reconnectVars?: { retryTimer?: NodeJS.Timeout | null };
        on?(event: "msg", listener: () => void): unknown;
      };
      mapServer?: Map<{ destroy(): void }, unknown>;
    };
  };
}

/**
 * Calls `listener` for every message drachtio-server sends, its answers to drachtio-srf's pings
 * included. drachtio-srf sends those pings but never checks that they are answered, so a server
 * that hangs with its socket open goes unnoticed unless someone watches the traffic. Call after
 * `connect()`; returns false when drachtio-srf's internals are not where 5.0.29 keeps them.
 */
export function onEveryMessage(srf: Srf, listener: () => void): boolean {
  const wp = (srf as unknown as SrfInternals)._app?.client?.wp;
  if (!wp?.on) return false;
  wp.on("msg", listener);
  return true;
}

/** Drops the connection as if it had failed; drachtio-srf then reconnects as usual. */
export function dropConnection(srf: Srf): void {
  for (const socket of (srf as unknown as SrfInternals)._app?.client?.mapServer?.keys() ?? []) socket.destroy();
}

/** Closes the connection for good, whether or not it is up or a reconnect is pending. */
export function closeSrf(srf: Srf): void {
  const client = (srf as unknown as SrfInternals)._app?.client;
  const wp = client?.wp;
  if (wp) {
    wp.closing = true;
    const timer = wp.reconnectVars?.retryTimer;
    if (timer) clearTimeout(timer);
    if (wp.reconnectVars) wp.reconnectVars.retryTimer = null;
    wp.socket?.destroy();
  }
  for (const socket of client?.mapServer?.keys() ?? []) socket.destroy();
}

type SrfConstructor = new () => Srf;

const require = createRequire(import.meta.url);

/** A new drachtio-srf instance, typed by the declarations above. */
export function createSrf(): Srf {
  const Ctor = require("drachtio-srf") as SrfConstructor;
  return new Ctor();
}
