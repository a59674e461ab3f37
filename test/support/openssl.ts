import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/*
 * Checks issued chains with the openssl CLI rather than node:crypto alone, because openssl's
 * verifier is an independent implementation: a chain that only our own code accepts proves little.
 */

const OPENSSL = 'openssl';
const TIMEOUT_MS = 30_000;

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export interface ExecResult {
  stdout: string;
  stderr: string;
}

function run(bin: string, args: readonly string[]): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    execFile(bin, [...args], { timeout: TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
        return;
      }
      resolve({ stdout, stderr });
    });
  });
}

/** Every PEM certificate block in a file, in order (leaf first for ACME chains). */
export function splitPemChain(pem: string): string[] {
  return [...pem.matchAll(PEM_CERT_RE)].map((m) => `${m[0]}\n`);
}

/**
 * `openssl verify -CAfile root -untrusted intermediates leaf` on a leaf-first chain file and
 * throws unless openssl prints "<leaf>: OK". Returns openssl's output.
 */
export async function opensslVerify(rootPem: string, chainPemPath: string): Promise<string> {
  const blocks = splitPemChain(await fsp.readFile(chainPemPath, 'utf8'));
  if (blocks.length === 0) throw new Error(`${chainPemPath} holds no PEM certificate`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-ca-verify-'));
  try {
    const leaf = path.join(dir, 'leaf.pem');
    await fsp.writeFile(leaf, blocks[0]);
    const args = ['verify', '-CAfile', rootPem];
    if (blocks.length > 1) {
      const inter = path.join(dir, 'intermediates.pem');
      await fsp.writeFile(inter, blocks.slice(1).join(''));
      args.push('-untrusted', inter);
    }
    // Verify for TLS server use so a wrong EKU fails here rather than in a real handshake.
    args.push('-purpose', 'sslserver', leaf);
    const { stdout, stderr } = await run(OPENSSL, args);
    if (!stdout.includes(`${leaf}: OK`)) {
      throw new Error(`openssl verify did not say OK for ${chainPemPath}\nstdout: ${stdout}\nstderr: ${stderr}`);
    }
    return stdout;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** The first certificate of a PEM file (the leaf of an ACME chain). */
export function readLeaf(pemPath: string): X509Certificate {
  const blocks = splitPemChain(fs.readFileSync(pemPath, 'utf8'));
  if (blocks.length === 0) throw new Error(`${pemPath} holds no PEM certificate`);
  return new X509Certificate(blocks[0]);
}

/** DNS names in the leaf's subjectAltName, as node:crypto parses them. */
export function leafDnsNames(pemPath: string): string[] {
  const san = readLeaf(pemPath).subjectAltName ?? '';
  return san
    .split(/,\s*/)
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4));
}

/** Upper-case hex serial, to compare before and after a renewal. */
export function leafSerial(pemPath: string): string {
  return readLeaf(pemPath).serialNumber.toUpperCase();
}

/** openssl's own rendering of the leaf's subjectAltName extension, as a second opinion. */
export async function opensslSubjectAltName(pemPath: string): Promise<string> {
  const blocks = splitPemChain(await fsp.readFile(pemPath, 'utf8'));
  if (blocks.length === 0) throw new Error(`${pemPath} holds no PEM certificate`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-ca-san-'));
  try {
    const leaf = path.join(dir, 'leaf.pem');
    await fsp.writeFile(leaf, blocks[0]);
    const { stdout } = await run(OPENSSL, ['x509', '-in', leaf, '-noout', '-ext', 'subjectAltName']);
    return stdout;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Asserts the chain verifies and the leaf names exactly `name` (among possibly others) as DNS SAN. */
export async function assertIssuedFor(rootPem: string, chainPemPath: string, name: string): Promise<void> {
  await opensslVerify(rootPem, chainPemPath);
  const names = leafDnsNames(chainPemPath);
  if (!names.includes(name)) throw new Error(`leaf of ${chainPemPath} has SAN ${JSON.stringify(names)}, expected ${name}`);
  const text = await opensslSubjectAltName(chainPemPath);
  if (!text.includes(`DNS:${name}`)) throw new Error(`openssl shows no DNS:${name} in ${chainPemPath}: ${text}`);
}
