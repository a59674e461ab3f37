import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path, { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { asOrder, buildCsr, completeHttp01, generateAccountKey, generateCsrKey, header, Http01Responder, AcmeTestClient, splitPem } from './support/acme-test-client.js';
import { httpGet } from './support/http.js';
import { freePorts } from './support/ports.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const monitoring = join(repo, 'monitoring');

let tmp: string;
let server: RunningServer;
let responder: Http01Responder;
let prometheus: ChildProcess | null = null;
let promPort = 0;
let metricsPort = 0;

async function httpJson(url: string): Promise<unknown> {
  return JSON.parse((await httpGet(url)).text) as unknown;
}

async function scrapeText(): Promise<string> {
  const res = await server.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200);
  return res.body;
}

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-monitoring-'));
  const [httpsPort, http01Port, p] = await freePorts(3);
  promPort = p;
  metricsPort = httpsPort;
  responder = new Http01Responder();
  await responder.start(http01Port);
  server = await startServer(loadConfig({
    ACME_CA_DATA_DIR: join(tmp, 'data'), ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`, ACME_CA_HTTP01_PORT: String(http01Port),
  }, tmp), createLogger('silent'));
  // One real issuance so that the issuance series exist.
  const c = await AcmeTestClient.connect(server.directoryUrl, readFileSync(join(tmp, 'data/root.pem'), 'utf8'));
  assert.equal((await c.newAccount(await generateAccountKey('ES256'), { termsOfServiceAgreed: true })).status, 201);
  const res = await c.newOrder([{ type: 'ip', value: '127.0.0.1' }]);
  const url = header(res, 'location')!;
  await completeHttp01(c, asOrder(res.body), responder);
  const ready = asOrder((await c.poll(url, (b) => asOrder(b).status === 'ready')).body);
  await c.finalize(ready.finalize, await buildCsr({ keys: await generateCsrKey('P-256'), ipAddresses: ['127.0.0.1'] }));
  const valid = asOrder((await c.poll(url, (b) => asOrder(b).status === 'valid')).body);
  const dl = await c.downloadCert(valid.certificate!);
  assert.ok(new X509Certificate(splitPem(dl.text)[0]));
  c.close();
});

after(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus!.once('exit', r));
    prometheus.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
  }
  await server?.close();
  await responder?.close();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

test('promtool accepts the alert rules and their unit tests pass', () => {
  assert.match(execFileSync('promtool', ['check', 'rules', join(monitoring, 'prometheus-rules.yml')], { encoding: 'utf8' }), /SUCCESS: 6 rules found/);
  assert.match(execFileSync('promtool', ['test', 'rules', join(monitoring, 'prometheus-rules.test.yml')], { encoding: 'utf8', cwd: monitoring }), /SUCCESS/);
});

test('every series the rules and the dashboard use is exported by the server', async () => {
  const exported = new Set([...(await scrapeText()).matchAll(/^# TYPE (\S+) (\w+)/gm)].flatMap(([, name, kind]) =>
    kind === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]));
  const used = new Set<string>();
  const texts = [readFileSync(join(monitoring, 'prometheus-rules.yml'), 'utf8'), readFileSync(join(monitoring, 'grafana-dashboard.json'), 'utf8')];
  for (const t of texts) for (const m of t.matchAll(/\bacme_ca_[a-z0-9_]+/g)) used.add(m[0]);
  assert.ok(used.size >= 10);
  assert.deepEqual([...used].filter((n) => !exported.has(n)), [], 'used in rules or dashboard but not exported');
  const dashboard = JSON.parse(texts[1]) as { panels: unknown[] };
  assert.ok(dashboard.panels.length >= 10);
});

test('the metrics show the issuance, the CA expiry and the log', async () => {
  const text = await scrapeText();
  assert.match(text, /acme_ca_certificates_issued_total\{profile="mtls",scope="default"\} 1/);
  assert.match(text, /acme_ca_orders_total\{status="valid"\} 1/);
  assert.match(text, /acme_ca_validations_total\{type="http-01",result="valid"\} 1/);
  assert.match(text, /acme_ca_ca_certificate_not_after_seconds\{role="intermediate",subject="[^"]+"\} \d{10}/);
  assert.match(text, /acme_ca_log_tree_size [2-9]/);
  assert.match(text, /acme_ca_certificates_expiring_unreplaced\{within="24h"\} 1/);
  assert.match(text, /acme_ca_http_requests_total\{route="\/acme\/new-order",method="POST",status="201"\} 1/);
});

test('a real Prometheus server scrapes the endpoint and sees the expiry and issuance series', async () => {
  const config = join(tmp, 'prometheus.yml');
  await fsp.writeFile(config, [
    'global:', '  scrape_interval: 1s', 'scrape_configs:', '  - job_name: acme-ca', '    scheme: https',
    `    tls_config: { ca_file: ${join(tmp, 'data/root.pem')} }`, `    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]`, '',
  ].join('\n'));
  prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(tmp, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  prometheus.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000); });
  const want = ['acme_ca_ca_certificate_not_after_seconds', 'acme_ca_certificates_issued_total', 'acme_ca_certificates_expiring_unreplaced'];
  const seen = new Set<string>();
  const deadline = Date.now() + 30_000;
  while (seen.size < want.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    for (const name of want) {
      if (seen.has(name)) continue;
      try {
        const r = (await httpJson(`http://127.0.0.1:${promPort}/api/v1/query?query=${name}`)) as { data?: { result?: unknown[] } };
        if ((r.data?.result?.length ?? 0) > 0) seen.add(name);
      } catch { /* not up yet */ }
    }
  }
  assert.deepEqual([...seen].sort(), [...want].sort(), `Prometheus did not see every series in 30 s; its log:\n${stderr}`);
  const up = (await httpJson(`http://127.0.0.1:${promPort}/api/v1/query?query=up{job="acme-ca"}`)) as { data: { result: Array<{ value: [number, string] }> } };
  assert.equal(up.data.result[0]?.value[1], '1');
});
