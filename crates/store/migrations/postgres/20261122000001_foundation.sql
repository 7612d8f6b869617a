-- Tenants, users, memberships, the audit log and platform settings.
-- Timestamps are RFC 3339 UTC text with microseconds (fixed width, so they sort as text);
-- JSON documents are text. Both choices keep one query text valid on SQLite and PostgreSQL.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    status      TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT,
    first_name     TEXT NOT NULL DEFAULT '',
    last_name      TEXT NOT NULL DEFAULT '',
    platform_role  TEXT,
    status         TEXT NOT NULL DEFAULT 'active',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    last_login_at  TEXT
);

CREATE TABLE memberships (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

-- The audit log outlives what it talks about, so it holds ids without foreign keys.
CREATE TABLE audit_log (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT,
    actor_user_id  TEXT,
    action         TEXT NOT NULL,
    target         TEXT,
    ip             TEXT,
    details        TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);

CREATE TABLE platform_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
