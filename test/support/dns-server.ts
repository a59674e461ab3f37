import dgram from 'node:dgram';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';

/*
 * A tiny authoritative DNS server for tests. Both the CA (for http-01/tls-alpn-01 address
 * lookups and dns-01 TXT lookups) and lego (`--dns.resolvers`) are pointed at it, so test
 * names never leak to the real resolver and dns-01 records can be planted without a provider.
 *
 * TXT records come from two places that are merged at query time:
 *  - an in-memory map (`setTxt`/`clearTxt`) for tests running in this process;
 *  - an optional directory (`txtDir`) laid out as `<txtDir>/<name>/<value>` (one empty file per
 *    value). Client hook scripts run in another process, so they need a channel that works
 *    with plain `mkdir`/`touch`/`rm`; reading the directory on every query means there is no
 *    cache to invalidate and no race between a hook returning and the CA querying.
 */

const RCODE_NOERROR = 0;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;
/** Classic DNS over UDP caps responses at 512 bytes unless EDNS advertises more; larger ones are truncated. */
const UDP_PLAIN_LIMIT = 512;
/** Zero TTL so that resolvers which cache (c-ares, systemd) never serve a stale TXT across test steps. */
const TTL = 0;

export interface DnsServerOptions {
  /** Zones this server is authoritative for, without dots at the ends. Default: `['test']`. */
  suffixes?: readonly string[];
  /** IPv4 address returned for every A query inside the zones. Default: 127.0.0.1. */
  address?: string;
  /** Directory of hook-written TXT records (`<txtDir>/<name>/<value>`), see the file comment. */
  txtDir?: string;
  /** Fixed port for UDP and TCP; default is a free one where both protocols can bind. */
  port?: number;
  host?: string;
}

export interface DnsQueryLogEntry {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
  rcode: 'NOERROR' | 'NXDOMAIN' | 'NOTIMP' | 'FORMERR';
  answers: number;
}

export interface RunningDnsServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Lower-case, no trailing dot: the form used for map keys and `txtDir` entries. */
export function normalizeDnsName(name: string): string {
  return name.replace(/\.+$/, '').toLowerCase();
}

/** Base64url token shape; anything else in a directory entry is not something a client wrote. */
const TXT_VALUE_RE = /^[A-Za-z0-9_-]{1,255}$/;

export class TestDnsServer {
  readonly suffixes: readonly string[];
  readonly txtDir: string | undefined;
  private readonly defaultAddress: string;
  private readonly host: string;
  private readonly wantedPort: number;
  private readonly txt = new Map<string, string[]>();
  /** `null` means "answer NXDOMAIN for this name" so tests can make a name unresolvable. */
  private readonly addressOverrides = new Map<string, string | null>();
  private readonly log: DnsQueryLogEntry[] = [];
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly tcpSockets = new Set<net.Socket>();
  private boundPort = 0;

  constructor(opts: DnsServerOptions = {}) {
    this.suffixes = (opts.suffixes ?? ['test']).map(normalizeDnsName).map((s) => s.replace(/^\.+/, ''));
    this.defaultAddress = opts.address ?? '127.0.0.1';
    this.txtDir = opts.txtDir;
    this.host = opts.host ?? '127.0.0.1';
    this.wantedPort = opts.port ?? 0;
  }

  /** Port both transports listen on; 0 before `start()`. */
  get port(): number {
    return this.boundPort;
  }

  /** `host:port`, the form lego's `--dns.resolvers` and the CA's `ACME_CA_DNS_RESOLVER` take. */
  get resolverAddress(): string {
    return `${this.host}:${this.boundPort}`;
  }

  setTxt(name: string, values: readonly string[]): void {
    this.txt.set(normalizeDnsName(name), [...values]);
  }

  clearTxt(name: string): void {
    this.txt.delete(normalizeDnsName(name));
  }

  /** Override the A answer for one name; `null` makes it NXDOMAIN, `undefined` restores the default. */
  setAddress(name: string, ipv4: string | null | undefined): void {
    const key = normalizeDnsName(name);
    if (ipv4 === undefined) this.addressOverrides.delete(key);
    else this.addressOverrides.set(key, ipv4);
  }

  /** Every question answered so far, for diagnosing "did the CA even ask?" failures. */
  queries(): readonly DnsQueryLogEntry[] {
    return this.log;
  }

  async start(): Promise<RunningDnsServer> {
    if (this.udp) throw new Error('DNS server already started');
    // UDP and TCP must share one port number (resolvers retry a truncated UDP answer over TCP
    // on the same port), so when the port is chosen by the kernel we retry on collisions.
    for (let attempt = 0; ; attempt++) {
      const udp = dgram.createSocket('udp4');
      const udpPort = await new Promise<number>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(this.wantedPort, this.host, () => {
          udp.off('error', reject);
          resolve(udp.address().port);
        });
      });
      const tcp = net.createServer((sock) => this.handleTcp(sock));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ host: this.host, port: udpPort, exclusive: true }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        if (this.wantedPort === 0 && attempt < 20 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw err;
      }
      udp.on('message', (msg, rinfo) => this.handleUdp(udp, msg, rinfo));
      // A malformed datagram must not crash the test process.
      udp.on('error', () => undefined);
      tcp.on('error', () => undefined);
      this.udp = udp;
      this.tcp = tcp;
      this.boundPort = udpPort;
      return { host: this.host, port: udpPort, close: () => this.close() };
    }
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const s of this.tcpSockets) s.destroy();
    this.tcpSockets.clear();
    await Promise.all([
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : Promise.resolve(),
      tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : Promise.resolve(),
    ]);
  }

  private handleUdp(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const query = safeDecode(msg);
    if (!query) return;
    let out = this.respond(query, 'udp');
    // EDNS clients advertise how much they accept; everyone else gets the classic 512 bytes.
    const opt = (query.additionals ?? []).find((a) => a.type === 'OPT');
    const limit = opt && 'udpPayloadSize' in opt ? Math.max(UDP_PLAIN_LIMIT, opt.udpPayloadSize) : UDP_PLAIN_LIMIT;
    if (out.length > limit) {
      // Set TC and drop the records so the client retries over TCP, as RFC 1035 requires.
      out = dnsPacket.encode({
        type: 'response',
        id: query.id,
        flags: responseFlags(query, RCODE_NOERROR) | dnsPacket.TRUNCATED_RESPONSE,
        questions: query.questions,
      });
    }
    sock.send(out, rinfo.port, rinfo.address);
  }

  private handleTcp(sock: net.Socket): void {
    this.tcpSockets.add(sock);
    sock.on('close', () => this.tcpSockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(10_000, () => sock.destroy());
    let pending = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      // One connection may carry several length-prefixed messages, possibly split across chunks.
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        const query = safeDecode(msg);
        if (!query) {
          sock.destroy();
          return;
        }
        const out = this.respond(query, 'tcp');
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(out.length);
        sock.write(Buffer.concat([prefix, out]));
      }
    });
  }

  private respond(query: DecodedPacket, transport: 'udp' | 'tcp'): Buffer {
    const questions = query.questions ?? [];
    const opcode = (query.flags ?? 0) >> 11 & 0xf;
    if (opcode !== 0 || questions.length !== 1) {
      const rcode = opcode !== 0 ? RCODE_NOTIMP : RCODE_FORMERR;
      for (const q of questions) this.record(q, transport, rcode, 0);
      return dnsPacket.encode({ type: 'response', id: query.id, flags: responseFlags(query, rcode), questions });
    }
    const q = questions[0];
    const { rcode, answers, authorities } = this.lookup(q);
    this.record(q, transport, rcode, answers.length);
    const packet: Packet = {
      type: 'response',
      id: query.id,
      flags: responseFlags(query, rcode),
      // Echo the question byte-for-byte: resolvers using 0x20 case randomisation compare it.
      questions: [q],
      answers,
      authorities,
    };
    return dnsPacket.encode(packet);
  }

  private lookup(q: Question): { rcode: number; answers: Answer[]; authorities: Answer[] } {
    const name = normalizeDnsName(q.name);
    const zone = this.suffixes.find((s) => name === s || name.endsWith(`.${s}`));
    if (zone === undefined) return { rcode: RCODE_NXDOMAIN, answers: [], authorities: [] };
    // Negative answers carry the zone's SOA so resolvers treat them as authoritative (RFC 2308).
    const soa: Answer = {
      type: 'SOA',
      name: zone,
      ttl: TTL,
      data: {
        mname: `ns.${zone}`,
        rname: `hostmaster.${zone}`,
        serial: 1,
        refresh: 60,
        retry: 60,
        expire: 60,
        minimum: 0,
      },
    };
    const override = this.addressOverrides.get(name);
    if (override === null) return { rcode: RCODE_NXDOMAIN, answers: [], authorities: [soa] };
    const ownerName = q.name.replace(/\.+$/, '');
    switch (q.type) {
      case 'A':
        return {
          rcode: RCODE_NOERROR,
          answers: [{ type: 'A', name: ownerName, ttl: TTL, data: override ?? this.defaultAddress }],
          authorities: [],
        };
      case 'TXT': {
        const values = this.txtValues(name);
        if (values.length === 0) return { rcode: RCODE_NOERROR, answers: [], authorities: [soa] };
        return {
          rcode: RCODE_NOERROR,
          answers: values.map((v): Answer => ({ type: 'TXT', name: ownerName, ttl: TTL, data: [v] })),
          authorities: [],
        };
      }
      case 'SOA':
        if (name === zone) return { rcode: RCODE_NOERROR, answers: [soa], authorities: [] };
        return { rcode: RCODE_NOERROR, answers: [], authorities: [soa] };
      default:
        // AAAA, CAA, CNAME, ...: the name exists but has no such record (NODATA).
        return { rcode: RCODE_NOERROR, answers: [], authorities: [soa] };
    }
  }

  private txtValues(name: string): string[] {
    const values = [...(this.txt.get(name) ?? [])];
    if (this.txtDir !== undefined) {
      let entries: string[] = [];
      try {
        entries = fs.readdirSync(path.join(this.txtDir, name));
      } catch {
        // No directory for this name: no hook-written records.
      }
      for (const e of entries.sort()) {
        if (TXT_VALUE_RE.test(e) && !values.includes(e)) values.push(e);
      }
    }
    return values;
  }

  private record(q: Question, transport: 'udp' | 'tcp', rcode: number, answers: number): void {
    const names = { [RCODE_NOERROR]: 'NOERROR', [RCODE_NXDOMAIN]: 'NXDOMAIN', [RCODE_NOTIMP]: 'NOTIMP', [RCODE_FORMERR]: 'FORMERR' } as const;
    this.log.push({
      name: normalizeDnsName(q.name),
      type: q.type,
      transport,
      rcode: names[rcode as keyof typeof names] ?? 'FORMERR',
      answers,
    });
  }
}

/** Convenience: construct and start in one call. */
export async function startDnsServer(opts: DnsServerOptions = {}): Promise<TestDnsServer> {
  const server = new TestDnsServer(opts);
  await server.start();
  return server;
}

function safeDecode(msg: Buffer): DecodedPacket | undefined {
  try {
    const p = dnsPacket.decode(msg);
    return p.type === 'query' ? p : undefined;
  } catch {
    return undefined;
  }
}

/** QR is set by `type: 'response'`; we add AA, echo RD and opcode, and claim RA so stub resolvers accept us. */
function responseFlags(query: DecodedPacket, rcode: number): number {
  const qflags = query.flags ?? 0;
  const opcodeBits = qflags & (0xf << 11);
  const rd = qflags & dnsPacket.RECURSION_DESIRED;
  return opcodeBits | dnsPacket.AUTHORITATIVE_ANSWER | rd | dnsPacket.RECURSION_AVAILABLE | (rcode & 0xf);
}
