-- Metered traffic, written in batches by the edge and summed for usage and billing.
CREATE TABLE usage_events (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    route_id      TEXT,
    period_start  TEXT NOT NULL,
    period_end    TEXT NOT NULL,
    requests      BIGINT NOT NULL,
    bytes_in      BIGINT NOT NULL,
    bytes_out     BIGINT NOT NULL,
    status_2xx    BIGINT NOT NULL DEFAULT 0,
    status_3xx    BIGINT NOT NULL DEFAULT 0,
    status_4xx    BIGINT NOT NULL DEFAULT 0,
    status_5xx    BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
CREATE INDEX usage_events_by_tenant ON usage_events (tenant_id, period_start);
