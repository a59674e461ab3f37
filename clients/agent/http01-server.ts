import http from 'node:http';

/** Publishes http-01 key authorizations somewhere the CA can fetch them (e.g. a running web server). */
export interface Http01Publisher {
  publish(token: string, keyAuthorization: string): void | Promise<void>;
  unpublish?(token: string): void | Promise<void>;
}

// Listens only from the first publish to close(), so the port is held just while an order is validated.
export class Http01Server implements Http01Publisher {
  private readonly tokens = new Map<string, string>();
  private server: http.Server | null = null;
  constructor(private readonly host: string, private readonly port: number) {}

  async publish(token: string, keyAuthorization: string): Promise<void> {
    this.tokens.set(token, keyAuthorization);
    if (this.server) return;
    const s = http.createServer((req, res) => {
      const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
      const v = m ? this.tokens.get(m[1]) : undefined;
      if (req.method !== 'GET' || v === undefined) { res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n'); return; }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(v);
    });
    s.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ host: this.host, port: this.port }, () => { s.off('error', reject); resolve(); });
    });
    this.server = s;
  }

  unpublish(token: string): void { this.tokens.delete(token); }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    this.tokens.clear();
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
