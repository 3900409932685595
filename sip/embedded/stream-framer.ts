/**
 * Splits a TCP byte stream (as latin1 text) into SIP messages using Content-Length (RFC 3261
 * §18.3, mandatory on stream transports). Anything that cannot be framed poisons the stream:
 * the caller closes the connection, since the next message boundary is unknowable.
 */
export class StreamFramer {
  private buffer = "";

  constructor(
    private readonly maxHeaderBytes = 64 * 1024,
    private readonly maxBodyBytes = 1024 * 1024,
  ) {}

  /** Appends data; returns complete messages, or throws StreamFramingError. */
  push(chunk: string): string[] {
    this.buffer += chunk;
    const out: string[] = [];
    for (;;) {
      // RFC 3261 §7.5: CRLFs before a start line are ignored (and used as keep-alives).
      const lead = /^(?:\r\n)+/.exec(this.buffer);
      if (lead) this.buffer = this.buffer.slice(lead[0].length);
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.buffer.length > this.maxHeaderBytes) throw new StreamFramingError("header block too large");
        return out;
      }
      if (end > this.maxHeaderBytes) throw new StreamFramingError("header block too large");
      const head = this.buffer.slice(0, end);
      const m = /(?:^|\r\n)(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)/i.exec(head);
      if (!m) throw new StreamFramingError("missing Content-Length");
      const lengthText = (m[1] as string).trim();
      if (!/^\d+$/.test(lengthText)) throw new StreamFramingError(`bad Content-Length ${JSON.stringify(lengthText)}`);
      const length = Number(lengthText);
      if (length > this.maxBodyBytes) throw new StreamFramingError("body too large");
      const total = end + 4 + length;
      if (this.buffer.length < total) return out;
      out.push(this.buffer.slice(0, total));
      this.buffer = this.buffer.slice(total);
    }
  }
}

export class StreamFramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StreamFramingError";
  }
}
