import { generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { flattenedVerify } from 'jose';
import { loadOrCreateCa } from '../../server/ca/ca-material.js';
import { parseCsr } from '../../server/ca/csr.js';
import { issueLeaf } from '../../server/ca/leaf.js';
import { buildCsr, generateCsrKey } from '../support/acme-test-client.js';
import { round } from './stats.js';

/*
 * What the crypto alone costs on this machine, so the server's CPU per order can be read against a
 * floor: ES256 sign and verify with cached KeyObjects (node:crypto, and jose's flattenedVerify as
 * the server calls it), certificate build+sign with server/ca/leaf.ts issueLeaf (pkijs over
 * @peculiar/webcrypto), and CSR parse+verify with server/ca/csr.ts parseCsr.
 */

export interface OpRate {
  /** Operations per second on one core (wall clock, single-threaded loop). */
  perSec: number;
  /** CPU milliseconds of this process per operation. */
  cpuMsPerOp: number;
  ops: number;
}

export interface CryptoCeiling {
  es256SignNode: OpRate;
  es256VerifyNode: OpRate;
  es256VerifyJose: OpRate;
  issueLeaf: OpRate;
  parseCsr: OpRate;
  /** JWS the server verifies in a minimal full order (newOrder, authz, challenge, 1 authz poll, finalize, 1 order poll, download). */
  jwsPerOrder: number;
  /** jwsPerOrder raw node:crypto verifies + one raw ES256 sign (the leaf signature): the hard floor. */
  floorRawMsPerOrder: number;
  /** As the server's libraries do it: jose verifies + issueLeaf + parseCsr twice (finalize and issuance). */
  floorLibMsPerOrder: number;
}

const JWS_PER_ORDER = 7;

/** Best of three rounds (a ceiling, so the least disturbed round counts), each at least `minMs / 3` and 30 ops. */
async function measure(minMs: number, maxOps: number, op: () => unknown): Promise<OpRate> {
  // Warm up the JIT and any lazily built tables first.
  for (let i = 0; i < 20; i++) await op();
  let best: OpRate | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let ops = 0;
    while (ops < maxOps && (performance.now() - t0 < minMs / 3 || ops < 30)) {
      await op();
      ops++;
    }
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const r: OpRate = { perSec: round(ops / (wall / 1000), 0), cpuMsPerOp: round((cpu.user + cpu.system) / 1000 / ops, 4), ops };
    if (best === null || r.perSec > best.perSec) best = r;
  }
  return best!;
}

export async function cryptoCeiling(opts: { msPerOp: number }): Promise<CryptoCeiling> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicKey = createPublicKey(privateKey);
  const protectedB64 = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'https://127.0.0.1/acme/account/abcdefabcdefabcd', nonce: 'AAAAAAAAAAAAAAAAAAAAAA', url: 'https://127.0.0.1/acme/new-order' })).toString('base64url');
  const payloadB64 = Buffer.from(JSON.stringify({ identifiers: [{ type: 'dns', value: 'a-rather-ordinary-name.bench.test' }] })).toString('base64url');
  const input = Buffer.from(`${protectedB64}.${payloadB64}`);
  const sig = cryptoSign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const jws = { protected: protectedB64, payload: payloadB64, signature: sig.toString('base64url') };

  const es256SignNode = await measure(opts.msPerOp, 200_000, () => cryptoSign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  const es256VerifyNode = await measure(opts.msPerOp, 200_000, () => cryptoVerify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig));
  const es256VerifyJose = await measure(opts.msPerOp, 200_000, () => flattenedVerify(jws, publicKey, { algorithms: ['ES256'] }));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acme-bench-ca-'));
  try {
    const ca = await loadOrCreateCa({ dataDir: dir, organization: 'Bench CA', intermediateCert: null, intermediateKey: null, rootCert: null });
    const csrKeys = await generateCsrKey('P-256');
    const csrDer = await buildCsr({ keys: csrKeys, dnsNames: ['leaf.bench.test'] });
    const parsed = await parseCsr(csrDer);
    const now = Date.now();
    const issue = await measure(opts.msPerOp, 20_000, () => issueLeaf(ca.issuer, {
      spkiDer: parsed.spkiDer, san: [{ type: 'dns', value: 'leaf.bench.test' }], notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000),
    }));
    const csr = await measure(opts.msPerOp, 20_000, () => parseCsr(csrDer));
    return {
      es256SignNode, es256VerifyNode, es256VerifyJose, issueLeaf: issue, parseCsr: csr,
      jwsPerOrder: JWS_PER_ORDER,
      floorRawMsPerOrder: round(JWS_PER_ORDER * es256VerifyNode.cpuMsPerOp + es256SignNode.cpuMsPerOp, 3),
      floorLibMsPerOrder: round(JWS_PER_ORDER * es256VerifyJose.cpuMsPerOp + issue.cpuMsPerOp + 2 * csr.cpuMsPerOp, 3),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
