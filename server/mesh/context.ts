import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { MeshStore } from '../../storage/mesh-types.js';
import type { Storage } from '../../storage/types.js';
import type { Issuer } from '../ca/ca-material.js';
import type { PolicyConfig } from '../policy/types.js';
import { TokenPurger } from './credentials.js';
import type { MeshSigner } from './signer.js';

/** What the mesh fronts (native API, Vault API, admin API) need from the server. */
export interface MeshDeps {
  signer: MeshSigner;
  meshStore: MeshStore;
  /** The main store, for the operator token check of the admin routes. */
  store: Storage;
  policy: () => PolicyConfig;
  issuer: () => Issuer;
  rootPem: string;
  now: () => number;
  /** e.g. '/vault', or '' to serve the Vault API at the root. */
  vaultPrefix: string;
  /** Whether the listener asks for client certificates (mesh.clientCertAuth). */
  clientCertAuth: boolean;
  purger?: TokenPurger;
}

/**
 * The DER of the client certificate of this request's TLS connection, only when the listener
 * verified it against this CA (the listener's `ca` is our root and issuing chain, and
 * rejectUnauthorized is off so clients without a certificate still connect).
 */
export function verifiedPeerDer(req: FastifyRequest): Uint8Array | null {
  const sock = req.raw.socket as TLSSocket;
  if (typeof sock.getPeerCertificate !== 'function' || sock.authorized !== true) return null;
  const peer = sock.getPeerCertificate(false);
  return peer && peer.raw ? new Uint8Array(peer.raw) : null;
}
