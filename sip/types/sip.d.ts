/**
 * Declarations for the parts of npm `sip` (kirm/sip.js 0.0.6) the embedded adapter uses: the
 * message parser and serializer, URI helpers and the RFC 3261 transaction layer. The package ships
 * no typings. Messages are plain objects whose strings are latin1 ("binary"): one char per byte.
 */
declare module "sip" {
  namespace sip {
    type Params = Record<string, string | null | undefined>;

    interface Uri {
      schema: string;
      user?: string;
      password?: string;
      host: string;
      port?: number;
      params: Params;
      headers: Record<string, string>;
    }

    /** name-addr as parsed from To/From/Contact (uri stays a string) or Route/Record-Route (uri parsed). */
    interface NameAddr<U = string> {
      name?: string;
      uri: U;
      params: Params;
    }

    interface Via {
      version?: string;
      protocol: string;
      host: string;
      port?: number;
      params: Params;
    }

    interface CSeq {
      seq: number;
      method: string;
    }

    /**
     * Header values as the parser produces them; when sending, a string value is written verbatim
     * under the (prettified) key, which is how the adapter writes most headers.
     */
    interface Headers {
      via?: Via[];
      to?: NameAddr | string;
      from?: NameAddr | string;
      "call-id"?: string;
      cseq?: CSeq;
      contact?: NameAddr[] | "*" | string;
      route?: NameAddr<Uri | undefined>[] | string;
      "record-route"?: NameAddr<Uri | undefined>[] | string;
      "content-length"?: number;
      "www-authenticate"?: Record<string, string>[];
      "proxy-authenticate"?: Record<string, string>[];
      [name: string]: unknown;
    }

    interface Message {
      method?: string;
      uri?: string | Uri;
      version?: string;
      status?: number;
      reason?: string;
      headers: Headers;
      content?: string;
    }

    /** What the transaction layer writes through: one transport flow toward one peer. */
    interface Connection {
      send(m: Message): void;
      protocol: string;
      release(): void;
    }

    interface ClientTransaction {
      message(m: Message, remote?: unknown): void;
      shutdown(): void;
    }

    interface ServerTransaction {
      send(m: Message): void;
      message(m: Message, remote?: unknown): void;
      shutdown(): void;
    }

    interface TransactionLayer {
      createServerTransaction(rq: Message, cn: Connection): ServerTransaction;
      createClientTransaction(cn: Connection, rq: Message, callback: (rs: Message) => void): ClientTransaction;
      getServer(m: Message): ServerTransaction | undefined;
      getClient(m: Message): ClientTransaction | undefined;
      destroy(): void;
    }

    function parse(s: string | Buffer): Message | undefined;
    function stringify(m: Message): string;
    function parseUri(s: string | Uri): Uri | undefined;
    function stringifyUri(u: string | Uri): string;
    /** An Authorization / WWW-Authenticate value as parsed (`{scheme, realm: '"x"', …}`) back to text. */
    function stringifyAuthHeader(a: Record<string, string | undefined>): string;
    function makeResponse(rq: Message, status: number, reason?: string, extension?: { headers?: Headers; content?: string }): Message;
    function generateBranch(): string;
    function makeTransactionLayer(options: { "max-forwards"?: number }, transport: unknown): TransactionLayer;
  }
  export = sip;
}
