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
  {
    version: 2,
    name: 'issuance log',
    // Append-only by construction: triggers refuse UPDATE/DELETE, and an INSERT must take the next
    // index (which also blocks INSERT OR REPLACE, whose implicit delete fires no trigger).
    sql: `
CREATE TABLE log_tree_state (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  size INTEGER NOT NULL,
  root BLOB NOT NULL
);
INSERT INTO log_tree_state (id, size, root) VALUES (0, 0, X'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');

CREATE TABLE log_entry (
  idx INTEGER PRIMARY KEY,
  leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
  body BLOB NOT NULL CHECK (length(body) <= 65535),
  event_type TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX log_entry_leaf ON log_entry (leaf_hash);

CREATE TABLE log_node (
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE log_lookup (
  key TEXT NOT NULL,
  idx INTEGER NOT NULL REFERENCES log_entry(idx),
  PRIMARY KEY (key, idx)
) WITHOUT ROWID;

CREATE TABLE log_checkpoint (
  size INTEGER PRIMARY KEY,
  root BLOB NOT NULL,
  note TEXT NOT NULL,
  signed_at INTEGER NOT NULL
);

CREATE TRIGGER log_entry_no_update BEFORE UPDATE ON log_entry BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_entry_no_delete BEFORE DELETE ON log_entry BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_entry_next_only BEFORE INSERT ON log_entry
  WHEN NEW.idx <> (SELECT size FROM log_tree_state WHERE id = 0)
  BEGIN SELECT RAISE(ABORT, 'issuance log is append-only: a new entry must take the index equal to the current tree size'); END;
CREATE TRIGGER log_node_no_update BEFORE UPDATE ON log_node BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_node_no_delete BEFORE DELETE ON log_node BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_lookup_no_update BEFORE UPDATE ON log_lookup BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_lookup_no_delete BEFORE DELETE ON log_lookup BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_checkpoint_no_update BEFORE UPDATE ON log_checkpoint BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_checkpoint_no_delete BEFORE DELETE ON log_checkpoint BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;
CREATE TRIGGER log_tree_state_grow_only BEFORE UPDATE ON log_tree_state
  WHEN NEW.size <> OLD.size + 1 BEGIN SELECT RAISE(ABORT, 'the log tree grows by exactly one entry per append'); END;
CREATE TRIGGER log_tree_state_no_delete BEFORE DELETE ON log_tree_state BEGIN SELECT RAISE(ABORT, 'issuance log is append-only'); END;

ALTER TABLE certificates ADD COLUMN log_index INTEGER REFERENCES log_entry(idx);
`,
  },
  {
    version: 3,
    name: 'policy: scopes, profiles, external account binding, rate limits',
    sql: `
ALTER TABLE accounts ADD COLUMN scope TEXT NOT NULL DEFAULT 'default';
ALTER TABLE accounts ADD COLUMN eab_key_id TEXT;
ALTER TABLE orders ADD COLUMN profile TEXT NOT NULL DEFAULT 'mtls';
ALTER TABLE orders ADD COLUMN scope TEXT NOT NULL DEFAULT 'default';

-- The HMAC key is kept only encrypted (the key-encryption key is a 0600 file beside the database)
-- and only until its single use; afterwards just its fingerprint remains.
CREATE TABLE eab_keys (
  id TEXT PRIMARY KEY,
  scope TEXT NOT NULL,
  description TEXT NOT NULL,
  hmac_key_enc BLOB,
  hmac_key_sha256 TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER,
  used_at INTEGER,
  account_id TEXT REFERENCES accounts(id)
);

-- The sorted identifier set, so that a certificate's replacement (same names, issued later) is one index lookup.
ALTER TABLE certificates ADD COLUMN name_set TEXT NOT NULL DEFAULT '';
CREATE INDEX certificates_name_set ON certificates (name_set, created_at);
CREATE INDEX certificates_expiry ON certificates (status, not_after);

-- Operator API tokens: only the SHA-256 of the secret part is stored.
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scopes TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);

CREATE TABLE rate_limit_buckets (
  key TEXT PRIMARY KEY,
  tokens REAL NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`,
  },
  {
    version: 4,
    name: 'renewal information, CRLs, several issuers',
    sql: `
ALTER TABLE certificates ADD COLUMN issuer_id TEXT NOT NULL DEFAULT '';
ALTER TABLE certificates ADD COLUMN scope TEXT NOT NULL DEFAULT 'default';
ALTER TABLE certificates ADD COLUMN profile TEXT NOT NULL DEFAULT 'mtls';
-- The order that replaces this certificate (ACME "replaces"), and an operator's "renew now".
ALTER TABLE certificates ADD COLUMN replaced_by_order TEXT;
ALTER TABLE certificates ADD COLUMN renew_now_at INTEGER;
ALTER TABLE certificates ADD COLUMN renew_now_reason TEXT;
ALTER TABLE orders ADD COLUMN replaces TEXT;
CREATE INDEX certificates_issuer ON certificates (issuer_id, status, not_after);
CREATE INDEX certificates_renew_now ON certificates (renew_now_at) WHERE renew_now_at IS NOT NULL;
-- Log queries: every filter of the certificate and event search is an index lookup.
CREATE UNIQUE INDEX certificates_log_index ON certificates (log_index);
CREATE INDEX certificates_account_log ON certificates (account_id, log_index);
CREATE INDEX certificates_created ON certificates (created_at);
CREATE INDEX log_entry_created ON log_entry (created_at);
CREATE INDEX log_entry_type ON log_entry (event_type, idx);

CREATE TABLE crls (
  issuer_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  this_update INTEGER NOT NULL,
  next_update INTEGER NOT NULL,
  der BLOB NOT NULL,
  PRIMARY KEY (issuer_id, number)
);
`,
  },
  {
    version: 5,
    name: 'mesh',
    sql: `
-- Mesh credentials (server/mesh): only the SHA-256 of each secret is stored. A token's scope
-- names a mesh scope of the policy file; source says who made it (operator, approle:<name>, cert:<role>).
CREATE TABLE mesh_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scope TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX mesh_tokens_expiry ON mesh_tokens (expires_at);

CREATE TABLE mesh_approles (
  name TEXT PRIMARY KEY,
  role_id TEXT NOT NULL UNIQUE,
  scope TEXT NOT NULL,
  token_ttl_ms INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);

CREATE TABLE mesh_approle_secrets (
  id TEXT PRIMARY KEY,
  role_name TEXT NOT NULL REFERENCES mesh_approles(name),
  secret_sha256 TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX mesh_approle_secrets_role ON mesh_approle_secrets (role_name);

-- Every certificate the mesh fronts signed; the issuance log entry is the authoritative record.
CREATE TABLE mesh_certificates (
  serial TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('intermediate','leaf')),
  trust_domain TEXT NOT NULL,
  role TEXT,
  scope TEXT NOT NULL,
  credential TEXT NOT NULL,
  front TEXT NOT NULL,
  der BLOB NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  log_index INTEGER NOT NULL REFERENCES log_entry(idx)
);
CREATE INDEX mesh_certificates_scope ON mesh_certificates (scope, created_at);
`,
  },
];
