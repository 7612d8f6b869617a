-- Pools of backends and the routes that send traffic to them; a host belongs to one tenant.
-- Flags are integers (0/1) so that one query text reads them on both engines.

CREATE TABLE pools (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    algorithm        TEXT NOT NULL,
    sticky_sessions  BIGINT NOT NULL DEFAULT 0,
    health_check     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE backends (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    pool_id       TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    address       TEXT NOT NULL,
    weight        BIGINT NOT NULL,
    region        TEXT,
    health_check  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (pool_id, address)
);
CREATE INDEX backends_by_tenant ON backends (tenant_id, id);

CREATE TABLE route_hosts (
    host       TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
);

CREATE TABLE routes (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host         TEXT NOT NULL REFERENCES route_hosts (host) ON DELETE CASCADE,
    path_prefix  TEXT NOT NULL,
    pool_id      TEXT NOT NULL REFERENCES pools (id),
    ssl_enabled  BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (host, path_prefix)
);
CREATE INDEX routes_by_tenant ON routes (tenant_id, id);
