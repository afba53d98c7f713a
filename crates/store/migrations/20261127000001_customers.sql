-- The user pool: customers, their sign-in identities and sessions, one-time codes, invite codes,
-- and short-lived sign-in flows (OAuth state, WeChat message login). Portable DDL (see foundation).

CREATE TABLE customers (
    id BIGINT PRIMARY KEY NOT NULL,
    email TEXT,
    email_verified_at BIGINT,
    name TEXT NOT NULL,
    phone TEXT,
    avatar_url TEXT,
    locale TEXT,
    password_hash TEXT,
    invite_code TEXT,
    invited_by BIGINT REFERENCES customers (id) ON DELETE SET NULL,
    second_factor BIGINT NOT NULL DEFAULT 0,
    disabled_at BIGINT,
    deleted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX customers_email_key ON customers (email);
CREATE INDEX customers_invited_by_idx ON customers (invited_by);

CREATE TABLE customer_identities (
    id BIGINT PRIMARY KEY NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    display TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX customer_identities_provider_subject_key ON customer_identities (provider, subject);
CREATE INDEX customer_identities_customer_id_idx ON customer_identities (customer_id);

CREATE TABLE customer_passkeys (
    id BIGINT PRIMARY KEY NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX customer_passkeys_credential_id_key ON customer_passkeys (credential_id);
CREATE INDEX customer_passkeys_customer_id_idx ON customer_passkeys (customer_id);

CREATE TABLE customer_sessions (
    id BIGINT PRIMARY KEY NOT NULL,
    id_hash TEXT NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    method TEXT NOT NULL,
    mfa_pending BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT,
    user_agent TEXT
);
CREATE UNIQUE INDEX customer_sessions_id_hash_key ON customer_sessions (id_hash);
CREATE INDEX customer_sessions_customer_id_idx ON customer_sessions (customer_id);

CREATE TABLE login_codes (
    id BIGINT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    binding_hash TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX login_codes_email_created_idx ON login_codes (email, created_at);
CREATE INDEX login_codes_ip_created_idx ON login_codes (ip, created_at);

CREATE TABLE invite_codes (
    code TEXT PRIMARY KEY NOT NULL,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    note TEXT NOT NULL,
    max_uses BIGINT,
    uses BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX invite_codes_customer_id_idx ON invite_codes (customer_id);

CREATE TABLE auth_flows (
    key_hash TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    binding_hash TEXT NOT NULL,
    data TEXT NOT NULL,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    done_at BIGINT
);
