import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './support/ports.js';

// No container engine runs on these machines, so this test performs the image's steps on the
// host: the runtime stage's production install, its user, environment, command and HEALTHCHECK,
// all read from the Dockerfile so that the two cannot drift apart.
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(join(tmpdir(), 'acme-ca-image-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface RuntimeStage { env: Record<string, string>; user: string; cmd: string[]; healthcheck: string; workdir: string; volumes: string[] }

function parseRuntimeStage(text: string): RuntimeStage {
  // Join continuation lines, then keep only the last stage.
  const lines = text.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const lastFrom = lines.map((l, i) => (l.startsWith('FROM ') ? i : -1)).filter((i) => i >= 0).pop()!;
  const stage = lines.slice(lastFrom);
  const env: Record<string, string> = {};
  let user = 'root'; let cmd: string[] = []; let healthcheck = ''; let workdir = '/'; const volumes: string[] = [];
  for (const l of stage) {
    if (l.startsWith('ENV ')) for (const m of l.slice(4).matchAll(/(\w+)=(\S+)/g)) env[m[1]] = m[2];
    else if (l.startsWith('USER ')) user = l.slice(5).trim();
    else if (l.startsWith('CMD ')) cmd = JSON.parse(l.slice(4)) as string[];
    else if (l.startsWith('HEALTHCHECK ')) healthcheck = l.slice(l.indexOf(' CMD ') + 5);
    else if (l.startsWith('WORKDIR ')) workdir = l.slice(8).trim();
    else if (l.startsWith('VOLUME ')) volumes.push(...(JSON.parse(l.slice(7)) as string[]));
  }
  return { env, user, cmd, healthcheck, workdir, volumes };
}

function uidOf(name: string): { uid: number; gid: number; name: string } {
  // The image's "node" user may not exist on the host; any unprivileged account shows the same thing.
  for (const candidate of [name, 'nobody']) {
    const r = spawnSync('id', ['-u', candidate], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() !== '0') {
      return { uid: Number(r.stdout.trim()), gid: Number(spawnSync('id', ['-g', candidate], { encoding: 'utf8' }).stdout.trim()), name: candidate };
    }
  }
  throw new Error(`no unprivileged user ${name} or nobody on this host`);
}

test('the Dockerfile is multi-stage, runs as a non-root user, has a /data volume, a port and a HEALTHCHECK', () => {
  const text = readFileSync(join(repo, 'Dockerfile'), 'utf8');
  assert.ok((text.match(/^FROM /gm) ?? []).length >= 2, 'multi-stage');
  const stage = parseRuntimeStage(text);
  assert.notEqual(stage.user, 'root');
  assert.deepEqual(stage.volumes, ['/data']);
  assert.equal(stage.env.ACME_CA_DATA_DIR, '/data');
  assert.match(text, /^EXPOSE \d+/m);
  assert.match(stage.healthcheck, /readyz/);
  assert.deepEqual(stage.cmd.slice(0, 1), ['node']);
  assert.match(text, /npm prune --omit=dev|npm ci --omit=dev/);
});

test('the image steps on the host: production install, start as an unprivileged user, readiness passes', { timeout: 120_000 }, async () => {
  const stage = parseRuntimeStage(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
  // Build stage result (this checkout is already installed and built), then the runtime stage's copy + prune.
  const app = join(work, 'app');
  mkdirSync(app, { recursive: true });
  for (const f of ['package.json', 'package-lock.json', 'openapi.yaml']) cpSync(join(repo, f), join(app, f));
  cpSync(join(repo, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(repo, 'node_modules'), join(app, 'node_modules'), { recursive: true });
  execFileSync('npm', ['prune', '--omit=dev', '--no-audit', '--no-fund'], { cwd: app, stdio: 'pipe', timeout: 90_000 });
  assert.ok(!existsSync(join(app, 'node_modules/typescript')), 'dev dependencies are not in the image');
  assert.ok(existsSync(join(app, 'node_modules/better-sqlite3')), 'production dependencies are');

  const user = uidOf(stage.user);
  const data = join(work, 'data');
  mkdirSync(data);
  if (userInfo().uid === 0) chownSync(data, user.uid, user.gid);
  chmodSync(work, 0o755);
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work,
    ...stage.env,
    // The container's /data volume and published port, mapped onto this host.
    ACME_CA_DATA_DIR: data,
    ACME_CA_LISTEN: stage.env.ACME_CA_LISTEN.replace('0.0.0.0', '127.0.0.1').replace(/:\d+$/, `:${port}`),
    ACME_CA_LOG_LEVEL: 'warn',
  };
  const child = spawn(stage.cmd[0] === 'node' ? process.execPath : stage.cmd[0], stage.cmd.slice(1), {
    cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'], ...(userInfo().uid === 0 ? { uid: user.uid, gid: user.gid } : {}),
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => { output += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { output += c.toString(); });
  try {
    const healthcheck = stage.healthcheck.replace(/port:\d+/, `port:${port}`).replace('/data/root.pem', join(data, 'root.pem'));
    let healthy = false;
    for (let i = 0; i < 60 && !healthy && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 500));
      healthy = spawnSync('sh', ['-c', healthcheck.replace(/^node /, `${process.execPath} `)], { cwd: app, env, timeout: 10_000 }).status === 0;
    }
    assert.ok(healthy, `the HEALTHCHECK never passed; server output:\n${output}`);
    assert.equal(spawnSync('stat', ['-c', '%U', join(data, 'root.key')], { encoding: 'utf8' }).stdout.trim(), user.name, 'the CA files belong to the unprivileged user');
  } finally {
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    if (code === 'timeout') child.kill('SIGKILL');
    else assert.equal(code, 0, `graceful shutdown on SIGTERM; output:\n${output}`);
  }
});
