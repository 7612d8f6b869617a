-- TLS certificates uploaded by tenants, served by SNI. The private key is sealed with the
-- platform secret key before it is stored; hostnames is a JSON array of names.

CREATE TABLE certificates (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hostnames           TEXT NOT NULL,
    chain_pem           TEXT NOT NULL,
    private_key_sealed  TEXT NOT NULL,
    fingerprint_sha256  TEXT NOT NULL,
    subject             TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    not_before          TEXT NOT NULL,
    not_after           TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (tenant_id, fingerprint_sha256)
);
CREATE INDEX certificates_by_tenant ON certificates (tenant_id, id);
