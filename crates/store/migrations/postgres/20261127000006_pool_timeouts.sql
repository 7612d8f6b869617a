-- A pool's own upstream timeouts in milliseconds; NULL uses the edge's defaults.
ALTER TABLE pools ADD COLUMN connect_timeout_ms BIGINT;
ALTER TABLE pools ADD COLUMN response_timeout_ms BIGINT;
