import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import dgram from 'node:dgram';
import net from 'node:net';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';
import { TestDnsServer } from './support/dns-server.js';
import { writeDnsHook, runClient } from './support/acme-clients.js';
import { freePort, freePorts } from './support/ports.js';

/*
 * The e2e tests depend on this server answering both the CA (Node's c-ares resolver) and lego
 * (Go, miekg/dns) correctly, so it is checked on its own with a real resolver and raw packets.
 */

let dns: TestDnsServer;
let tmp: string;
let resolver: Resolver;

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-ca-dns-test-'));
  dns = new TestDnsServer({ suffixes: ['test', 'example.internal'], txtDir: path.join(tmp, 'txt') });
  await dns.start();
  resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dns.resolverAddress]);
});

after(async () => {
  await dns.close();
  await fsp.rm(tmp, { recursive: true, force: true });
});

test('freePort returns distinct bindable ports', async () => {
  const ports = await freePorts(3);
  assert.equal(new Set(ports).size, 3);
  const p = await freePort();
  assert.ok(p > 0 && p < 65536);
});

test('A under a configured suffix is 127.0.0.1, any case, with or without the apex', async () => {
  assert.deepEqual(await resolver.resolve4('a.test'), ['127.0.0.1']);
  assert.deepEqual(await resolver.resolve4('Deep.Sub.Example.Internal'), ['127.0.0.1']);
  assert.deepEqual(await resolver.resolve4('test'), ['127.0.0.1']);
});

test('AAAA is NOERROR with no answer (ENODATA), names outside the zones are NXDOMAIN', async () => {
  await assert.rejects(resolver.resolve6('a.test'), { code: 'ENODATA' });
  await assert.rejects(resolver.resolve4('a.example.com'), { code: 'ENOTFOUND' });
  // A suffix must match on a label boundary.
  await assert.rejects(resolver.resolve4('nottest'), { code: 'ENOTFOUND' });
});

test('setAddress overrides and removes names', async () => {
  dns.setAddress('moved.test', '127.0.0.2');
  dns.setAddress('gone.test', null);
  try {
    assert.deepEqual(await resolver.resolve4('moved.test'), ['127.0.0.2']);
    await assert.rejects(resolver.resolve4('gone.test'), { code: 'ENOTFOUND' });
  } finally {
    dns.setAddress('moved.test', undefined);
    dns.setAddress('gone.test', undefined);
  }
  assert.deepEqual(await resolver.resolve4('moved.test'), ['127.0.0.1']);
});

test('TXT from setTxt/clearTxt', async () => {
  await assert.rejects(resolver.resolveTxt('_acme-challenge.a.test'), { code: 'ENODATA' });
  dns.setTxt('_acme-challenge.A.test.', ['v1', 'v2']);
  const got = (await resolver.resolveTxt('_acme-challenge.a.test')).map((chunks) => chunks.join(''));
  assert.deepEqual(got.sort(), ['v1', 'v2']);
  dns.clearTxt('_acme-challenge.a.test');
  await assert.rejects(resolver.resolveTxt('_acme-challenge.a.test'), { code: 'ENODATA' });
});

test('TXT written by the hook script, lego-style and certbot-style', async () => {
  const hook = await writeDnsHook(tmp, dns.txtDir!);
  const token = 'abcDEF123_-xyz';
  await runClient(hook, ['present', '_acme-challenge.Hook.test.', token], { timeoutMs: 10_000 });
  assert.deepEqual(await resolver.resolveTxt('_acme-challenge.hook.test'), [[token]]);

  const env = { CERTBOT_DOMAIN: 'hook.test', CERTBOT_VALIDATION: 'second-Value_2' };
  await runClient('/bin/sh', ['-c', `${hook} certbot-present`], { env, timeoutMs: 10_000 });
  const both = (await resolver.resolveTxt('_acme-challenge.hook.test')).map((c) => c.join('')).sort();
  assert.deepEqual(both, [token, 'second-Value_2'].sort());

  await runClient(hook, ['cleanup', '_acme-challenge.hook.test.', token], { timeoutMs: 10_000 });
  await runClient('/bin/sh', ['-c', `${hook} certbot-cleanup`], { env, timeoutMs: 10_000 });
  await assert.rejects(resolver.resolveTxt('_acme-challenge.hook.test'), { code: 'ENODATA' });

  // The hook refuses values that could escape its directory.
  await assert.rejects(runClient(hook, ['present', '_acme-challenge.hook.test.', '../x'], { timeoutMs: 10_000 }), /unexpected TXT value/);
});

function udpQuery(port: number, packet: Buffer): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      sock.close();
      reject(new Error('udp query timed out'));
    }, 2000);
    sock.once('message', (msg) => {
      clearTimeout(t);
      sock.close();
      resolve(dnsPacket.decode(msg));
    });
    sock.send(packet, port, '127.0.0.1');
  });
}

function tcpQuery(port: number, packets: Buffer[]): Promise<DecodedPacket[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const out: DecodedPacket[] = [];
    let buf = Buffer.alloc(0);
    sock.setTimeout(2000, () => sock.destroy(new Error('tcp query timed out')));
    sock.on('error', reject);
    sock.on('connect', () => {
      // Write all messages in one chunk, split oddly, to exercise the framing code.
      const all = Buffer.concat(packets.map((p) => dnsPacket.streamEncode(dnsPacket.decode(p))));
      sock.write(all.subarray(0, 3));
      setTimeout(() => sock.write(all.subarray(3)), 20);
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        out.push(dnsPacket.decode(buf.subarray(2, 2 + len)));
        buf = buf.subarray(2 + len);
      }
      if (out.length === packets.length) {
        sock.end();
        resolve(out);
      }
    });
  });
}

function query(id: number, name: string, type: 'A' | 'TXT' | 'AAAA' | 'CAA'): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
  });
}

test('raw UDP: echoes id and question case, sets AA, NXDOMAIN rcode, SOA in negative answers', async () => {
  const a = await udpQuery(dns.port, query(4242, 'MiXeD.tEsT', 'A'));
  assert.equal(a.id, 4242);
  assert.equal(a.type, 'response');
  assert.equal(a.flag_aa, true);
  assert.equal(a.questions?.[0].name, 'MiXeD.tEsT');
  assert.equal(a.answers?.[0].type, 'A');

  const nx = await udpQuery(dns.port, query(7, 'x.example.org', 'A'));
  assert.equal((nx as DecodedPacket & { rcode: string }).rcode, 'NXDOMAIN');

  const caa = await udpQuery(dns.port, query(8, 'a.test', 'CAA'));
  assert.equal((caa as DecodedPacket & { rcode: string }).rcode, 'NOERROR');
  assert.equal(caa.answers?.length, 0);
  assert.equal(caa.authorities?.[0].type, 'SOA');
});

test('TCP: several framed queries on one connection', async () => {
  dns.setTxt('_acme-challenge.tcp.test', ['over-tcp']);
  const [r1, r2] = await tcpQuery(dns.port, [query(1, 'tcp.test', 'A'), query(2, '_acme-challenge.tcp.test', 'TXT')]);
  assert.equal(r1.id, 1);
  assert.equal(r1.answers?.[0].type, 'A');
  assert.equal(r2.id, 2);
  const txt = r2.answers?.[0];
  assert.ok(txt && txt.type === 'TXT');
  assert.deepEqual((txt.data as Buffer[]).map((b) => b.toString()), ['over-tcp']);
  assert.ok(dns.queries().some((q) => q.transport === 'tcp' && q.name === '_acme-challenge.tcp.test'));
});

test('large TXT sets are truncated over UDP and the resolver retries over TCP', async () => {
  const values = Array.from({ length: 100 }, (_, i) => `value-${i}-${'x'.repeat(40)}`);
  dns.setTxt('_acme-challenge.big.test', values);
  const raw = await udpQuery(dns.port, query(9, '_acme-challenge.big.test', 'TXT'));
  assert.equal(raw.flag_tc, true);
  const before = dns.queries().filter((q) => q.transport === 'tcp').length;
  const got = (await resolver.resolveTxt('_acme-challenge.big.test')).map((c) => c.join('')).sort();
  assert.deepEqual(got, [...values].sort());
  assert.ok(dns.queries().filter((q) => q.transport === 'tcp').length > before, 'expected a TCP retry');
});
