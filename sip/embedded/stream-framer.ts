/**
 * Splits a TCP byte stream (as latin1 text) into SIP messages using Content-Length (RFC 3261
 * §18.3, mandatory on stream transports). Anything that cannot be framed poisons the stream:
 * the caller closes the connection, since the next message boundary is unknowable. Nothing is
 * buffered beyond the two bounds, whatever the peer declares or keeps sending.
 */
export class StreamFramer {
  private buffer = "";
  private poisoned: StreamFramingError | undefined;

  constructor(
    private readonly maxHeaderBytes = 64 * 1024,
    private readonly maxBodyBytes = 1024 * 1024,
    /** RFC 5626 §3.5.1 keep-alives seen between messages: a ping (CRLFCRLF) or a pong (CRLF). */
    private readonly onKeepAlive: (signal: KeepAliveSignal) => void = () => {},
    /** Whether we wait for a pong: a lone CRLF at the end of what arrived is then one. */
    private readonly pongExpected: () => boolean = () => false,
  ) {}

  /** Appends data; returns complete messages, or throws StreamFramingError. */
  push(chunk: string): string[] {
    if (this.poisoned) throw new StreamFramingError(`stream already failed: ${this.poisoned.message}`);
    this.buffer += chunk;
    const out: string[] = [];
    for (;;) {
      // RFC 3261 §7.5: CRLFs before a start line are no message; RFC 5626 makes them keep-alives.
      const k = readKeepAlives(this.buffer, this.pongExpected());
      if (k.consumed > 0) {
        this.buffer = this.buffer.slice(k.consumed);
        for (let i = 0; i < k.pings; i++) this.onKeepAlive("ping");
        if (k.pong) this.onKeepAlive("pong");
      }
      if (k.held) return out;
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.buffer.length > this.maxHeaderBytes) return this.fail(new StreamFramingError("header block too large"), out);
        return out;
      }
      if (end > this.maxHeaderBytes) return this.fail(new StreamFramingError("header block too large"), out);
      const head = this.buffer.slice(0, end);
      const m = /(?:^|\r\n)(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)/i.exec(head);
      if (!m) return this.fail(new StreamFramingError("missing Content-Length"), out);
      const lengthText = (m[1] as string).trim();
      if (!/^\d+$/.test(lengthText)) return this.fail(new StreamFramingError(`bad Content-Length ${JSON.stringify(lengthText.slice(0, 40))}`), out);
      const length = Number(lengthText);
      // The header block goes with the error so the request can still be answered (513) before
      // the connection is closed; the body is never waited for.
      if (length > this.maxBodyBytes) return this.fail(new StreamFramingError("body too large", head, length), out);
      const total = end + 4 + length;
      if (this.buffer.length < total) return out;
      out.push(this.buffer.slice(0, total));
      this.buffer = this.buffer.slice(total);
    }
  }

  /** Poisons the stream; messages completed earlier in the same chunk travel with the error. */
  private fail(err: StreamFramingError, framed: string[]): never {
    err.framed = framed;
    this.poisoned = err;
    this.buffer = "";
    throw err;
  }
}

export type KeepAliveSignal = "ping" | "pong";

/**
 * The keep-alives at the start of a stream buffer (RFC 5626 §3.5.1): each CRLFCRLF is a ping, a
 * CRLF left over is a pong. A lone CRLF that ends the buffer may be the first half of a ping still
 * on its way, so it is held back (`held`) unless a pong is awaited.
 */
export function readKeepAlives(buffer: string, pongExpected: boolean): { consumed: number; pings: number; pong: boolean; held: boolean } {
  let crlfs = 0;
  while (buffer.startsWith("\r\n", crlfs * 2)) crlfs++;
  const held = crlfs * 2 === buffer.length && crlfs % 2 === 1 && !pongExpected;
  const taken = held ? crlfs - 1 : crlfs;
  return { consumed: taken * 2, pings: Math.floor(taken / 2), pong: taken % 2 === 1, held };
}

export class StreamFramingError extends Error {
  /** Complete messages that preceded the failure in the same chunk; still worth handling. */
  framed: string[] = [];

  constructor(
    message: string,
    /** The header block of a message whose declared body is over the bound. */
    readonly head?: string,
    readonly declaredBodyBytes?: number,
  ) {
    super(message);
    this.name = "StreamFramingError";
  }
}
