// The one storage interface the server uses. Every backend (SQLite today, PostgreSQL for several
// replicas) implements it; methods are async even where the backend is synchronous so that a
// networked backend slots in without touching server/.

export type IdentifierType = 'dns' | 'ip';
export interface Identifier {
  type: IdentifierType;
  value: string;
}

export interface ProblemRecord {
  type: string;
  detail: string;
  status?: number;
  identifier?: Identifier;
  subproblems?: ProblemRecord[];
}

export type AccountStatus = 'valid' | 'deactivated' | 'revoked';
export interface AccountRecord {
  id: string;
  status: AccountStatus;
  /** Public JWK as JSON (never a private key). */
  jwk: string;
  /** RFC 7638 thumbprint of jwk, unique across accounts. */
  thumbprint: string;
  contact: string[];
  termsOfServiceAgreed: boolean;
  createdAt: number;
  /** The policy scope (team or namespace) the account acts in; set by its EAB key or the default. */
  scope: string;
  eabKeyId: string | null;
}

export type OrderStatus = 'pending' | 'ready' | 'processing' | 'valid' | 'invalid';
export interface OrderRecord {
  id: string;
  accountId: string;
  status: OrderStatus;
  identifiers: Identifier[];
  /** The RFC 9773 certID of the certificate this order replaces, as the client gave it. */
  replaces: string | null;
  notBefore: number | null;
  notAfter: number | null;
  expires: number;
  error: ProblemRecord | null;
  /** DER CSR kept while the order is processing, so a restart can finish the issuance. */
  csr: Uint8Array | null;
  certificateId: string | null;
  createdAt: number;
  profile: string;
  scope: string;
}

export type AuthzStatus = 'pending' | 'valid' | 'invalid' | 'deactivated' | 'expired' | 'revoked';
export interface AuthzRecord {
  id: string;
  orderId: string;
  accountId: string;
  identifier: Identifier;
  wildcard: boolean;
  status: AuthzStatus;
  expires: number;
}

export type ChallengeType = 'http-01' | 'dns-01' | 'tls-alpn-01';
export type ChallengeStatus = 'pending' | 'processing' | 'valid' | 'invalid';
export interface ChallengeRecord {
  id: string;
  authzId: string;
  type: ChallengeType;
  token: string;
  status: ChallengeStatus;
  validatedAt: number | null;
  error: ProblemRecord | null;
  attempts: number;
}

export type CertificateStatus = 'valid' | 'revoked';
export interface CertificateRecord {
  id: string;
  /** Lower-case hex, no leading zero padding beyond the DER integer's bytes. */
  serial: string;
  accountId: string;
  orderId: string;
  der: Uint8Array;
  /** PEM of the issuing chain that follows the leaf (intermediate first). */
  chainPem: string;
  /** SHA-256 of the subject public key info, hex; used for revocation by key. */
  spkiSha256: string;
  notBefore: number;
  notAfter: number;
  status: CertificateStatus;
  revokedAt: number | null;
  revocationReason: number | null;
  createdAt: number;
  /** Index of the certificate.issued entry in the issuance log. */
  logIndex: number | null;
  /** Sorted "type:value" identifiers joined by ",", shared by a certificate and its renewals. */
  nameSet: string;
  /** SHA-256 (hex) of the issuing intermediate's certificate. */
  issuerId: string;
  scope: string;
  profile: string;
  /** The order that replaces this certificate (newOrder "replaces", RFC 9773). */
  replacedByOrder: string | null;
  /** When an operator asked for this certificate to be renewed now. */
  renewNowAt: number | null;
  renewNowReason: string | null;
}

export type NewCertificate = Omit<CertificateRecord, 'logIndex' | 'replacedByOrder' | 'renewNowAt' | 'renewNowReason'>;

/** Which certificates an operator action (renew now, revoke) applies to; all given fields must match. */
export interface CertificateSelector {
  serials?: string[];
  accountId?: string;
  scope?: string;
  /** DNS suffix such as ".payments.internal" (or an exact name). */
  identifierSuffix?: string;
  issuerId?: string;
  issuedBefore?: number;
}

/** An event to append to the issuance log, in the same transaction as the change it records. */
export interface LogAppend {
  eventType: string;
  /** Canonical bytes; hashed and served exactly as given. */
  body: Uint8Array;
  /** Lookup keys such as "serial:ab12" or "cert:<sha256>", for queries. */
  lookupKeys: string[];
  at: number;
}

export interface LogEntryRecord {
  index: number;
  leafHash: Uint8Array;
  body: Uint8Array;
  eventType: string;
  createdAt: number;
}

export interface LogTreeState { size: number; root: Uint8Array }

export interface LogCheckpointRecord { size: number; root: Uint8Array; note: string; signedAt: number }

export interface EabKeyRecord {
  id: string;
  scope: string;
  description: string;
  /** Encrypted HMAC key; null once used or revoked. */
  hmacKeyEnc: Uint8Array | null;
  hmacKeySha256: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  usedAt: number | null;
  accountId: string | null;
}

export type TokenScope = 'admin' | 'read-log' | 'mesh';
export interface ApiTokenRecord {
  id: string;
  name: string;
  scopes: TokenScope[];
  secretSha256: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface RateLimitState { tokens: number; updatedAt: number }
export type RateLimitDecision = { allowed: boolean; state: RateLimitState; retryAfterMs: number };

export interface NewOrderInput {
  order: Omit<OrderRecord, 'csr' | 'certificateId' | 'error'>;
  /** Storage id of the certificate named by order.replaces; claimed atomically with the order. */
  replacesCertificateId?: string;
  authorizations: Array<{ authz: AuthzRecord; challenges: ChallengeRecord[] }>;
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page, or null at the end. */
  next: string | null;
}

export type CertificateSearchStatus = 'valid' | 'expired' | 'revoked';

export interface CertificateSearch {
  serial?: string;
  /** Exact identifier value (DNS name or IP, as normalised by the ACME layer). */
  identifier?: string;
  /** `example.com` matches example.com and every name under it; `.example.com` only names under it. */
  identifierSuffix?: string;
  accountId?: string;
  scope?: string;
  profile?: string;
  /** valid = not revoked and not yet expired at `now`; expired = not revoked and notAfter <= now. */
  status?: CertificateSearchStatus;
  /** Time bounds in ms since the epoch: *After is inclusive, *Before exclusive. */
  issuedAfter?: number;
  issuedBefore?: number;
  expiresAfter?: number;
  expiresBefore?: number;
  /** Pagination cursor: only certificates whose log index is greater than this. */
  afterLogIndex?: number;
  limit: number;
  now: number;
}

export interface CertificateSummary {
  serial: string;
  accountId: string;
  identifiers: Identifier[];
  scope: string | null;
  profile: string | null;
  /** Stored status; `expired` is derived from notAfter by the caller's clock. */
  status: CertificateStatus;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
  revokedAt: number | null;
  revocationReason: number | null;
  logIndex: number;
}

export interface LogEventSearch {
  /** created_at bounds in ms: since inclusive, until exclusive. */
  since?: number;
  until?: number;
  /** Entries with lookup key `account:<id>`, plus every entry about a certificate of that account. */
  accountId?: string;
  /** Exact event types, or prefixes written `certificate.*`; any of them matches. */
  types?: string[];
  /** Pagination cursor: only entries with a greater index. */
  afterIndex?: number;
  limit: number;
}

export interface Storage {
  /** Runs migrations; idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** A cheap write+read to prove the store is usable. */
  ping(): Promise<void>;

  // Nonces live in the store so that any replica sharing it can redeem them.
  createNonce(value: string, expiresAt: number): Promise<void>;
  /** Deletes the nonce; true only if it existed and had not expired. */
  consumeNonce(value: string, now: number): Promise<boolean>;
  purgeExpiredNonces(now: number): Promise<number>;

  createAccount(account: AccountRecord): Promise<void>;
  /** Creates the account and spends its EAB key in one transaction; false if the key is no longer usable. */
  createAccountWithEab(account: AccountRecord, eabKeyId: string, now: number): Promise<boolean>;

  createApiToken(t: ApiTokenRecord): Promise<void>;
  getApiToken(id: string): Promise<ApiTokenRecord | null>;
  listApiTokens(): Promise<ApiTokenRecord[]>;
  revokeApiToken(id: string, at: number): Promise<boolean>;

  createEabKey(key: EabKeyRecord): Promise<void>;
  getEabKey(id: string): Promise<EabKeyRecord | null>;
  listEabKeys(): Promise<EabKeyRecord[]>;
  revokeEabKey(id: string, at: number): Promise<boolean>;

  /**
   * Reads each rate-limit bucket in turn, lets `decide` (pure) compute its new state, and writes it
   * back, all in one transaction so that replicas sharing the store count together. Stops at the
   * first bucket that refuses; returns the decisions made (the last one refused, if any did).
   */
  consumeRateLimits(checks: Array<{ key: string; decide: (state: RateLimitState | null) => RateLimitDecision }>): Promise<RateLimitDecision[]>;
  getAccount(id: string): Promise<AccountRecord | null>;
  getAccountByThumbprint(thumbprint: string): Promise<AccountRecord | null>;
  updateAccount(id: string, changes: { status?: AccountStatus; contact?: string[] }): Promise<AccountRecord>;
  /** Key rollover: fails (returns false) if another account already holds newThumbprint. */
  changeAccountKey(id: string, oldThumbprint: string, newJwk: string, newThumbprint: string): Promise<boolean>;

  /**
   * Creates the order, its authorizations and challenges. With `replaces`, also claims the
   * replaced certificate in the same transaction; false when another live order already did.
   */
  createOrder(input: NewOrderInput): Promise<boolean>;
  getOrder(id: string): Promise<OrderRecord | null>;
  listOrderIds(accountId: string, cursor: string | null, limit: number): Promise<Page<string>>;
  /** Compare-and-set on status so that concurrent requests cannot both move an order. */
  transitionOrder(id: string, from: OrderStatus[], to: OrderStatus, changes?: { error?: ProblemRecord | null; csr?: Uint8Array | null }): Promise<boolean>;
  listOrdersByStatus(status: OrderStatus, limit: number): Promise<OrderRecord[]>;

  getAuthz(id: string): Promise<AuthzRecord | null>;
  /** True when the account holds a valid, unexpired authorization for every identifier (wildcards need wildcard ones). */
  hasValidAuthorizations(accountId: string, identifiers: Identifier[], now: number): Promise<boolean>;
  listAuthzByOrder(orderId: string): Promise<AuthzRecord[]>;
  updateAuthzStatus(id: string, from: AuthzStatus[], to: AuthzStatus): Promise<boolean>;

  getChallenge(id: string): Promise<ChallengeRecord | null>;
  listChallengesByAuthz(authzId: string): Promise<ChallengeRecord[]>;
  listChallengesByStatus(status: ChallengeStatus, limit: number): Promise<ChallengeRecord[]>;
  transitionChallenge(id: string, from: ChallengeStatus[], to: ChallengeStatus, changes?: { error?: ProblemRecord | null; validatedAt?: number | null; attempts?: number }): Promise<boolean>;
  /**
   * Records a challenge's final result together with its authorization's and, where it follows,
   * its order's status, in one transaction.
   */
  completeChallenge(result: { challengeId: string; valid: boolean; error: ProblemRecord | null; at: number }): Promise<void>;

  /**
   * Stores the certificate, moves the order from processing to valid and appends the log entry,
   * all in one transaction: there is never a certificate without its entry, nor the reverse.
   */
  issueCertificate(cert: NewCertificate, entry: LogAppend): Promise<{ logIndex: number }>;
  getCertificate(id: string): Promise<CertificateRecord | null>;
  getCertificateBySerial(serial: string): Promise<CertificateRecord | null>;
  /** Revokes and appends the revocation's log entry atomically; false if it was not valid. */
  revokeCertificate(id: string, reason: number, at: number, entry: LogAppend): Promise<boolean>;
  countCertificates(): Promise<number>;
  /** Certificates matching every given filter, ordered by log index (cursor: afterLogIndex), at most q.limit. */
  searchCertificates(q: CertificateSearch): Promise<CertificateSummary[]>;
  /** Log entries matching every given filter, ordered by index (cursor: afterIndex), at most q.limit. */
  searchLogEvents(q: LogEventSearch): Promise<LogEntryRecord[]>;
  /** Certificates (valid, unexpired) matching a selector, for operator actions. */
  selectCertificates(selector: CertificateSelector, now: number, limit: number): Promise<CertificateRecord[]>;
  /** Moves the renewal window of the given certificates into the past; returns how many changed. */
  markRenewNow(certificateIds: string[], at: number, reason: string): Promise<number>;
  /** Certificates an operator asked to renew whose names have no newer certificate yet. */
  countRenewNowPending(now: number): Promise<number>;
  /** Revoked, unexpired certificates of one issuer, for its CRL. */
  listRevokedForCrl(issuerId: string, now: number): Promise<Array<{ serial: string; revokedAt: number; reason: number }>>;
  /** Whether an issuer still has unexpired certificates (it must keep publishing CRLs until then). */
  issuerHasUnexpired(issuerId: string, now: number): Promise<boolean>;
  saveCrl(crl: { issuerId: string; number: number; thisUpdate: number; nextUpdate: number; der: Uint8Array }): Promise<void>;
  latestCrl(issuerId: string): Promise<{ number: number; thisUpdate: number; nextUpdate: number; der: Uint8Array } | null>;
  /** True when a certificate with this key (SHA-256 of its SPKI, hex) was revoked for keyCompromise. */
  isKeyBlocked(spkiSha256: string): Promise<boolean>;
  /** Valid certificates expiring in (now, now+withinMs] for whose names no later certificate exists. */
  countExpiringWithoutReplacement(now: number, withinMs: number): Promise<number>;

  // The issuance log (append-only; see storage/sqlite/migrations.ts for how that is enforced).
  appendLogEvent(entry: LogAppend): Promise<number>;
  getLogState(): Promise<LogTreeState>;
  getLogEntries(start: number, end: number): Promise<LogEntryRecord[]>;
  /** Stored complete-subtree hashes, keyed "level/index". */
  getLogNodes(coords: Array<{ level: number; index: number }>): Promise<Map<string, Uint8Array>>;
  findLogIndexes(lookupKey: string, limit: number): Promise<number[]>;
  findLogIndexByLeafHash(leafHash: Uint8Array): Promise<number | null>;
  /** Records a signed checkpoint; refuses (false) one smaller than the latest. */
  addCheckpoint(cp: LogCheckpointRecord): Promise<boolean>;
  latestCheckpoint(): Promise<LogCheckpointRecord | null>;
  getCheckpoint(size: number): Promise<LogCheckpointRecord | null>;
}
