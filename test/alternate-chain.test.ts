import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import { after, before, test } from 'node:test';
import { addAlternateChain, activeIssuerId, issuerFiles } from '../server/ca/ca-material.js';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { AcmeTestClient, asOrder, buildCsr, completeHttp01, generateAccountKey, generateCsrKey, header, Http01Responder, links, splitPem } from './support/acme-test-client.js';
import { freePorts } from './support/ports.js';
import { teardown } from './support/teardown.js';

let tmp: string;
let dataDir: string;
let server: RunningServer;
let responder: Http01Responder;
let client: AcmeTestClient;

const openssl = (args: string[]): string => execFileSync('openssl', args, { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function verify(rootPem: string, chainPem: string): { ok: boolean; output: string } {
  const [leaf, ...rest] = splitPem(chainPem);
  const f = (name: string, body: string): string => { const p = join(tmp, name); writeFileSync(p, body); return p; };
  const r = spawnSync('openssl', ['verify', '-CAfile', f('anchor.pem', rootPem), '-untrusted', f('untrusted.pem', rest.join('')), f('leaf.pem', leaf)], { encoding: 'utf8' });
  return { ok: r.status === 0 && /leaf\.pem: OK/.test(r.stdout), output: r.stdout + r.stderr };
}

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-alt-chain-'));
  dataDir = join(tmp, 'data');
  const [httpsPort, http01Port] = await freePorts(2);
  responder = new Http01Responder();
  await responder.start(http01Port);
  server = await startServer(loadConfig({ ACME_CA_DATA_DIR: dataDir, ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`, ACME_CA_HTTP01_PORT: String(http01Port) }, tmp), createLogger('silent'));
  client = await AcmeTestClient.connect(server.directoryUrl, readFileSync(join(dataDir, 'root.pem'), 'utf8'));
  assert.equal((await client.newAccount(await generateAccountKey('ES256'))).status, 201);
});

after(() => teardown({ clients: client ? [client] : [], server, responder, tmp }));

async function issue(): Promise<string> {
  const res = await client.newOrder([{ type: 'ip', value: '127.0.0.1' }]);
  const url = header(res, 'location')!;
  await completeHttp01(client, asOrder(res.body), responder);
  const ready = asOrder((await client.poll(url, (b) => asOrder(b).status === 'ready')).body);
  await client.finalize(ready.finalize, await buildCsr({ keys: await generateCsrKey('P-256'), ipAddresses: ['127.0.0.1'] }));
  return asOrder((await client.poll(url, (b) => asOrder(b).status === 'valid')).body).certificate!;
}

test('a cross-signed intermediate is offered as Link rel="alternate", and that chain leads to the other root', async () => {
  const certUrl = await issue();
  const plain = await client.downloadCert(certUrl);
  assert.equal(plain.status, 200);
  assert.deepEqual(links(plain, 'alternate'), [], 'no alternate before one is installed');

  // Another root cross-signs our intermediate's key under the same subject.
  const id = activeIssuerId(dataDir)!;
  const files = issuerFiles(dataDir, id);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'other-root.key']);
  openssl(['req', '-x509', '-new', '-key', 'other-root.key', '-subj', '/O=Other/CN=Other Root', '-days', '365', '-out', 'other-root.pem', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['x509', '-x509toreq', '-in', files.cert, '-signkey', files.key, '-out', 'cross.csr']);
  // The twin keeps our subject key identifier: leaves name their issuer by it (AKI).
  const ski = /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(openssl(['x509', '-in', files.cert, '-noout', '-ext', 'subjectKeyIdentifier']))![1];
  writeFileSync(join(tmp, 'cross.ext'), `basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=${ski}\n`);
  writeFileSync(join(tmp, 'bad-ski.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  openssl(['x509', '-req', '-in', 'cross.csr', '-CA', 'other-root.pem', '-CAkey', 'other-root.key', '-CAcreateserial', '-days', '300', '-extfile', 'bad-ski.ext', '-out', 'bad-ski.pem']);
  assert.throws(() => addAlternateChain(dataDir, id, readFileSync(join(tmp, 'bad-ski.pem'), 'utf8')), /subject key identifier/);
  openssl(['x509', '-req', '-in', 'cross.csr', '-CA', 'other-root.pem', '-CAkey', 'other-root.key', '-CAcreateserial', '-days', '300', '-extfile', 'cross.ext', '-out', 'cross.pem']);
  assert.throws(() => addAlternateChain(dataDir, id, readFileSync(join(tmp, 'other-root.pem'), 'utf8')), /is not the intermediate/);
  addAlternateChain(dataDir, id, readFileSync(join(tmp, 'cross.pem'), 'utf8'));
  await server.reload();

  const dl = await client.downloadCert(certUrl);
  const alternates = links(dl, 'alternate');
  assert.equal(alternates.length, 1);
  assert.equal(alternates[0], `${certUrl}/alt/1`);
  const rootPem = readFileSync(join(dataDir, 'root.pem'), 'utf8');
  const otherRoot = readFileSync(join(tmp, 'other-root.pem'), 'utf8');
  assert.ok(verify(rootPem, dl.text).ok, 'the default chain leads to our root');
  assert.ok(!verify(otherRoot, dl.text).ok, 'and not to the other one');

  const alt = await client.downloadCert(alternates[0]);
  assert.equal(alt.status, 200);
  assert.match(String(header(alt, 'content-type')), /application\/pem-certificate-chain/);
  assert.equal(new X509Certificate(splitPem(alt.text)[0]).serialNumber, new X509Certificate(splitPem(dl.text)[0]).serialNumber, 'same leaf');
  const viaOther = verify(otherRoot, alt.text);
  assert.ok(viaOther.ok, viaOther.output);
  assert.deepEqual(links(alt, 'alternate'), [certUrl], 'the alternate points back to the default chain');
  assert.equal((await client.downloadCert(`${certUrl}/alt/2`)).status, 404);
});
