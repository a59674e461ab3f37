import http from 'node:http';

/**
 * http-01 responder shared by both servers: `/.well-known/acme-challenge/<token>` answers the key
 * authorization registered for that token. Bounded: tokens are removed when their order moves on.
 */
export class BenchHttp01Responder {
  private readonly tokens = new Map<string, string>();
  private server: http.Server | null = null;
  port = 0;
  served = 0;
  misses = 0;

  async start(host = '127.0.0.1'): Promise<void> {
    const server = http.createServer((req, res) => {
      const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
      const value = m ? this.tokens.get(m[1]) : undefined;
      if (req.method !== 'GET' || value === undefined) {
        this.misses++;
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
        return;
      }
      this.served++;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(value);
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: 0, host }, () => { server.off('error', reject); resolve(); });
    });
    const addr = server.address();
    if (addr === null || typeof addr !== 'object') throw new Error('http-01 responder has no TCP address');
    this.port = addr.port;
    this.server = server;
  }

  set(token: string, keyAuthorization: string): void {
    this.tokens.set(token, keyAuthorization);
  }

  delete(token: string): void {
    this.tokens.delete(token);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
