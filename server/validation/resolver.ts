import { promises as dns } from 'node:dns';
import type { Identifier } from '../../storage/types.js';

/** Name resolution for validation, pointed at a configured DNS server or the system's. */
export class ValidationResolver {
  private readonly resolver: dns.Resolver | null;

  constructor(server: string | null, timeoutMs: number) {
    if (server) {
      this.resolver = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
      this.resolver.setServers([server]);
    } else {
      this.resolver = null;
    }
  }

  /** Addresses to connect to for http-01 and tls-alpn-01: IPv4 first, as most internal services listen there. */
  async addresses(id: Identifier): Promise<string[]> {
    if (id.type === 'ip') return [id.value];
    if (!this.resolver) {
      const found = await dns.lookup(id.value, { all: true });
      return found.map((a) => a.address);
    }
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(id.value), this.resolver.resolve6(id.value)]);
    const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (out.length === 0) {
      const err = v4.status === 'rejected' ? (v4.reason as Error) : null;
      throw new Error(`no A or AAAA record for ${id.value}${err ? ` (${(err as NodeJS.ErrnoException).code ?? err.message})` : ''}`);
    }
    return out;
  }

  async txt(name: string): Promise<string[]> {
    const records = this.resolver ? await this.resolver.resolveTxt(name) : await dns.resolveTxt(name);
    return records.map((chunks) => chunks.join(''));
  }
}
