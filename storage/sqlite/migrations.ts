// Numbered, append-only migrations. Never edit a shipped migration: add the next number.
export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'acme core',
    sql: `
CREATE TABLE nonces (
  value TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('valid','deactivated','revoked')),
  jwk TEXT NOT NULL,
  thumbprint TEXT NOT NULL UNIQUE,
  contact TEXT NOT NULL,
  tos_agreed INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE orders (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  status TEXT NOT NULL CHECK (status IN ('pending','ready','processing','valid','invalid')),
  identifiers TEXT NOT NULL,
  not_before INTEGER,
  not_after INTEGER,
  expires INTEGER NOT NULL,
  error TEXT,
  csr BLOB,
  certificate_id TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX orders_account ON orders (account_id, seq);
CREATE INDEX orders_status ON orders (status);

CREATE TABLE authorizations (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL REFERENCES orders(id),
  account_id TEXT NOT NULL REFERENCES accounts(id),
  identifier_type TEXT NOT NULL,
  identifier_value TEXT NOT NULL,
  wildcard INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending','valid','invalid','deactivated','expired','revoked')),
  expires INTEGER NOT NULL
);
CREATE INDEX authorizations_order ON authorizations (order_id);

CREATE TABLE challenges (
  id TEXT PRIMARY KEY,
  authz_id TEXT NOT NULL REFERENCES authorizations(id),
  type TEXT NOT NULL CHECK (type IN ('http-01','dns-01','tls-alpn-01')),
  token TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending','processing','valid','invalid')),
  validated_at INTEGER,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX challenges_authz ON challenges (authz_id);
CREATE INDEX challenges_status ON challenges (status);

CREATE TABLE certificates (
  id TEXT PRIMARY KEY,
  serial TEXT NOT NULL UNIQUE,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  order_id TEXT NOT NULL REFERENCES orders(id),
  der BLOB NOT NULL,
  chain_pem TEXT NOT NULL,
  spki_sha256 TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('valid','revoked')),
  revoked_at INTEGER,
  revocation_reason INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX certificates_spki ON certificates (spki_sha256);
CREATE INDEX certificates_account ON certificates (account_id);
`,
  },
];
