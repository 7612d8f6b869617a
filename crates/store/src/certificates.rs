//! TLS certificates of tenants: the chain as PEM, the private key sealed by the caller.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use veloflux_domain::TenantId;

use crate::error::corrupt;
use crate::{Store, StoreError, time};

/// A stored certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateRow {
    /// Identifier.
    pub id: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// Hostnames it is served for.
    pub hostnames: Vec<String>,
    /// PEM chain, leaf first.
    pub chain_pem: String,
    /// The private key, sealed with the platform key.
    pub private_key_sealed: String,
    /// SHA-256 of the leaf, hex.
    pub fingerprint_sha256: String,
    /// Subject of the leaf.
    pub subject: String,
    /// Issuer of the leaf.
    pub issuer: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

/// A certificate to store (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// Hostnames it is served for.
    pub hostnames: Vec<String>,
    /// PEM chain.
    pub chain_pem: String,
    /// Sealed private key.
    pub private_key_sealed: String,
    /// SHA-256 of the leaf, hex.
    pub fingerprint_sha256: String,
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

const COLUMNS: &str = "id, tenant_id, hostnames, chain_pem, private_key_sealed, fingerprint_sha256, subject, issuer, \
                       not_before, not_after, created_at";

impl Store {
    /// Stores a certificate. A hostname whose routes belong to another tenant is a
    /// `Conflict` on `route_hosts`; the same certificate twice is a `Conflict` too.
    pub async fn create_certificate(
        &self,
        tenant: TenantId,
        new: &NewCertificate,
    ) -> Result<CertificateRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        for host in &new.hostnames {
            let owner: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM route_hosts WHERE host = $1")
                .bind(host)
                .fetch_optional(&mut *tx)
                .await?;
            if owner.is_some_and(|owner| owner != tenant.to_string()) {
                return Err(StoreError::Conflict {
                    constraint: "route_hosts".into(),
                });
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        let hostnames = serde_json::to_string(&new.hostnames).map_err(|e| StoreError::Database(Box::new(e)))?;
        sqlx::query(&format!(
            "INSERT INTO certificates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(id.clone())
        .bind(tenant.to_string())
        .bind(hostnames)
        .bind(new.chain_pem.clone())
        .bind(new.private_key_sealed.clone())
        .bind(new.fingerprint_sha256.clone())
        .bind(new.subject.clone())
        .bind(new.issuer.clone())
        .bind(time::encode(new.not_before))
        .bind(time::encode(new.not_after))
        .bind(time::encode(time::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.certificate(tenant, &id).await
    }

    /// A tenant's certificates, oldest first.
    pub async fn certificates(&self, tenant: TenantId) -> Result<Vec<CertificateRow>, StoreError> {
        self.scoped_all(COLUMNS, "certificates", "id", tenant, from_row).await
    }

    /// One certificate.
    pub async fn certificate(&self, tenant: TenantId, id: &str) -> Result<CertificateRow, StoreError> {
        self.scoped_one(COLUMNS, "certificates", "id", tenant, id, from_row)
            .await
    }

    /// Deletes a certificate.
    pub async fn delete_certificate(&self, tenant: TenantId, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM certificates WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Every tenant's certificates, for the edge.
    pub(crate) async fn all_certificates(&self) -> Result<Vec<CertificateRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM certificates ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }
}

fn from_row(row: &AnyRow) -> Result<CertificateRow, StoreError> {
    Ok(CertificateRow {
        id: row.try_get("id")?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(corrupt("tenant id"))?,
        hostnames: serde_json::from_str(&row.try_get::<String, _>("hostnames")?)
            .map_err(corrupt("certificate hostnames"))?,
        chain_pem: row.try_get("chain_pem")?,
        private_key_sealed: row.try_get("private_key_sealed")?,
        fingerprint_sha256: row.try_get("fingerprint_sha256")?,
        subject: row.try_get("subject")?,
        issuer: row.try_get("issuer")?,
        not_before: time::decode(&row.try_get::<String, _>("not_before")?)?,
        not_after: time::decode(&row.try_get::<String, _>("not_after")?)?,
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
    })
}
