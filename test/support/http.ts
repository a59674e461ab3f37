import http from 'node:http';
import https from 'node:https';

export interface HttpGetOptions {
  /** PEM of the CA(s) trusted for an https URL (the system store when absent). */
  ca?: string | Buffer;
  headers?: Record<string, string>;
  /** `false` for a connection of its own, closed after the response; node's global agent when absent. */
  agent?: http.Agent | false;
  /** Idle time after which the request fails; none when absent. */
  timeoutMs?: number;
}

export interface HttpGetResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as UTF-8. */
  text: string;
}

/** GET over http or https (by the URL's scheme); any status resolves, only transport failures reject. */
export function httpGet(url: string, o: HttpGetOptions = {}): Promise<HttpGetResult> {
  const secure = new URL(url).protocol === 'https:';
  const options: https.RequestOptions = {
    method: 'GET',
    ...(o.headers ? { headers: o.headers } : {}),
    ...(secure && o.ca !== undefined ? { ca: o.ca } : {}),
    ...(o.agent !== undefined ? { agent: o.agent } : {}),
    ...(o.timeoutMs !== undefined ? { timeout: o.timeoutMs } : {}),
  };
  return new Promise<HttpGetResult>((resolve, reject) => {
    const req = (secure ? https.request : http.request)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
    });
    // A socket timeout only emits an event; without this the request would hang on a silent server.
    if (o.timeoutMs !== undefined) req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The body parsed as JSON when the Content-Type says JSON; undefined otherwise. */
export function jsonBody(res: HttpGetResult): unknown {
  return /json/.test(String(res.headers['content-type'] ?? '')) ? JSON.parse(res.text) as unknown : undefined;
}
