import { request } from 'node:http';
import { isIP } from 'node:net';
import type { ValidationResolver } from './resolver.js';
import { fail, type ValidationInput, type ValidationResult, type Validator } from './types.js';

const MAX_BODY = 8192;

function fetchOnce(address: string, port: number, host: string, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path, method: 'GET', headers: { Host: isIP(host) === 6 ? `[${host}]` : host, 'User-Agent': 'acme-ca-validator', Accept: '*/*' }, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) { req.destroy(new Error(`response body is larger than ${MAX_BODY} bytes`)); return; }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export class Http01Validator implements Validator {
  constructor(private readonly resolver: ValidationResolver, private readonly port: number, private readonly timeoutMs: number) {}

  async validate(input: ValidationInput): Promise<ValidationResult> {
    const { identifier: id } = input;
    const path = `/.well-known/acme-challenge/${input.token}`;
    let addresses: string[];
    try {
      addresses = await this.resolver.addresses(id);
    } catch (e) {
      return fail('dns', `cannot resolve ${id.value}: ${(e as Error).message}`, id);
    }
    let last: ValidationResult = fail('connection', `no address to connect to for ${id.value}`, id);
    for (const address of addresses) {
      const where = `http://${id.value}:${this.port}${path} (at ${address})`;
      try {
        const res = await fetchOnce(address, this.port, id.value, path, this.timeoutMs);
        if (res.status !== 200) { last = fail('unauthorized', `${where} answered HTTP ${res.status}; serve the key authorization there`, id); continue; }
        // RFC 8555 §8.3: trailing whitespace is tolerated.
        if (res.body.replace(/[\s]+$/, '') !== input.keyAuthorization) {
          last = fail('incorrectResponse', `${where} answered ${JSON.stringify(res.body.slice(0, 100))}, not the expected key authorization`, id);
          continue;
        }
        return { valid: true };
      } catch (e) {
        last = fail('connection', `cannot fetch ${where}: ${(e as Error).message}`, id);
      }
    }
    return last;
  }
}
