import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A webhook load balancer on loopback: every request goes to an instance chosen at random, and on
 * to another one when that one refuses the connection (as a balancer's health checks would).
 * Meta's view of several instances behind one URL, for the cluster bench and tests.
 */
export class RandomBalancer {
  readonly hits = new Map<string, number>();
  private readonly server: Server;
  private port = 0;

  constructor(private readonly upstreams: () => readonly { name: string; httpPort: number }[]) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const order = [...this.upstreams()].sort(() => Math.random() - 0.5);
        const attempt = (i: number): void => {
          const up = order[i];
          if (!up) {
            res.writeHead(502).end();
            return;
          }
          const out = request({ host: "127.0.0.1", port: up.httpPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
            this.hits.set(up.name, (this.hits.get(up.name) ?? 0) + 1);
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          });
          out.on("error", () => attempt(i + 1));
          out.end(Buffer.concat(chunks));
        };
        attempt(0);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}/webhooks/meta`;
  }

  /** The webhook URL it serves (after listen). */
  async url(): Promise<string> {
    return `http://127.0.0.1:${this.port}/webhooks/meta`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
