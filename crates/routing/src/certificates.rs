//! `/api/certificates`: TLS certificates the edge serves by SNI for the tenant's hosts.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Path, Permission};
use veloflux_domain::RouteHost;
use veloflux_store::{CertificateRow, NewCertificate, StoreError};

use crate::views::rfc3339;
use crate::{RoutingState, store_error};

/// Hostnames one certificate may be served for.
const MAX_HOSTNAMES: usize = 100;

/// A stored certificate; the private key is never returned.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "0190e0c7-c5a4-7f3c-9d8f-2b6a1e4d7c91", "hostnames": ["app.exemplo.com"],
    "names": ["app.exemplo.com", "*.exemplo.com"], "subject": "CN=app.exemplo.com", "issuer": "CN=Exemplo CA",
    "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-04-01T00:00:00Z", "status": "valid",
    "fingerprint_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "created_at": "2026-01-02T10:00:00Z"}))]
pub struct CertificateView {
    /// Certificate id.
    pub id: String,
    /// Hostnames the edge serves it for.
    pub hostnames: Vec<String>,
    /// DNS names of the certificate itself (subjectAltName).
    pub names: Vec<String>,
    /// Subject of the leaf certificate.
    pub subject: String,
    /// Issuer of the leaf certificate.
    pub issuer: String,
    /// Start of validity.
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// `valid` or `expired` (an expired certificate is no longer served).
    pub status: &'static str,
    /// SHA-256 of the leaf certificate (DER), hex.
    pub fingerprint_sha256: String,
    /// Upload time.
    pub created_at: String,
}

/// `{"certificates": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateList {
    /// The tenant's certificates.
    pub certificates: Vec<CertificateView>,
}

/// Body of `POST /api/certificates`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"certificate": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
    "private_key": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n", "hostnames": ["app.exemplo.com"]}))]
pub struct UploadCertificate {
    /// PEM chain, leaf first.
    pub certificate: String,
    /// PEM private key of the leaf (PKCS#8, RSA or EC).
    pub private_key: String,
    /// Hostnames to serve it for (default: every DNS name of the certificate); each must be
    /// covered by the certificate.
    #[serde(default)]
    pub hostnames: Option<Vec<String>>,
}

pub(crate) fn routes() -> OpenApiRouter<RoutingState> {
    OpenApiRouter::new()
        .routes(routes!(list_certificates, upload_certificate))
        .routes(routes!(get_certificate, delete_certificate))
}

fn view(row: CertificateRow) -> CertificateView {
    // The names are read back from the stored chain, which was parsed on upload.
    let names = veloflux_tls::names_of(&row.chain_pem).unwrap_or_default();
    CertificateView {
        status: if row.not_after > chrono::Utc::now() {
            "valid"
        } else {
            "expired"
        },
        id: row.id,
        hostnames: row.hostnames,
        names,
        subject: row.subject,
        issuer: row.issuer,
        not_before: rfc3339(row.not_before),
        not_after: rfc3339(row.not_after),
        fingerprint_sha256: row.fingerprint_sha256,
        created_at: rfc3339(row.created_at),
    }
}

fn refused(problem: &veloflux_tls::Problem) -> ApiError {
    ApiError::new(ErrorCode::InvalidCertificate, problem.to_string())
        .with_details(json!({"field": problem.field(), "constraint": problem.constraint()}))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("certificate \"{id}\" not found"))
}

/// The hostnames asked for, normalised and validated; the certificate's own names when none.
fn hostnames(asked: Option<&[String]>, names: &[String]) -> Result<Vec<String>, ApiError> {
    let Some(asked) = asked else {
        return Ok(names.to_vec());
    };
    if asked.is_empty() || asked.len() > MAX_HOSTNAMES {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            format!("hostnames: between 1 and {MAX_HOSTNAMES} names"),
        )
        .with_details(json!({"field": "hostnames", "constraint": "length"})));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in asked {
        let host = RouteHost::parse(raw).map_err(|e| ApiError::invalid("hostnames", &e))?;
        if !out.iter().any(|h| h == host.as_str()) {
            out.push(host.as_str().to_owned());
        }
    }
    Ok(out)
}

/// The tenant's certificates.
#[utoipa::path(get, path = "/api/certificates", tag = "certificates", responses((status = 200, body = CertificateList)), security(("bearer" = [])))]
async fn list_certificates(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
) -> Result<Json<CertificateList>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    let rows = state.store.certificates(principal.tenant_id).await?;
    Ok(Json(CertificateList {
        certificates: rows.into_iter().map(view).collect(),
    }))
}

/// Uploads a certificate chain and its private key; the edge serves it by SNI at once for
/// the hostnames the tenant routes.
#[utoipa::path(post, path = "/api/certificates", tag = "certificates", request_body = UploadCertificate,
    responses((status = 201, body = CertificateView),
              (status = 409, description = "A hostname is routed by another tenant, or the certificate is already stored", body = ErrorBody),
              (status = 422, description = "INVALID_CERTIFICATE (unparsable, key mismatch, expired, not yet valid, names not covered) or VALIDATION_ERROR", body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload_certificate(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    body: DeferredJson<UploadCertificate>,
) -> Result<(StatusCode, Json<CertificateView>), ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let body = body.parse()?;
    let certificate = veloflux_tls::parse(&body.certificate, &body.private_key).map_err(|p| refused(&p))?;
    let hostnames = hostnames(body.hostnames.as_deref(), &certificate.info.names)?;
    certificate
        .check(SystemTime::now(), &hostnames)
        .map_err(|p| refused(&p))?;
    let sealed = state
        .secret
        .seal(body.private_key.as_bytes())
        .map_err(ApiError::internal)?;
    let info = &certificate.info;
    let new = NewCertificate {
        hostnames,
        chain_pem: body.certificate.clone(),
        private_key_sealed: sealed,
        fingerprint_sha256: info.fingerprint_sha256.clone(),
        subject: info.subject.clone(),
        issuer: info.issuer.clone(),
        not_before: info.not_before.into(),
        not_after: info.not_after.into(),
    };
    let row = match state.store.create_certificate(principal.tenant_id, &new).await {
        Err(StoreError::Conflict { constraint }) if constraint == "route_hosts" => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "a hostname of this certificate is routed by another tenant",
            )
            .with_details(json!({"field": "hostnames", "constraint": "owned_by_another_tenant"})));
        }
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::new(ErrorCode::Conflict, "this certificate is already stored")
                .with_details(json!({"field": "certificate", "constraint": "unique"})));
        }
        other => other.map_err(store_error)?,
    };
    state.apply().await?;
    Ok((StatusCode::CREATED, Json(view(row))))
}

/// One certificate.
#[utoipa::path(get, path = "/api/certificates/{id}", tag = "certificates", params(("id" = String, Path)),
    responses((status = 200, body = CertificateView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_certificate(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    match state.store.certificate(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => Err(not_found(&id)),
        other => Ok(Json(view(other.map_err(store_error)?))),
    }
}

/// Deletes a certificate; the edge stops serving it at once.
#[utoipa::path(delete, path = "/api/certificates/{id}", tag = "certificates", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_certificate(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    match state.store.delete_certificate(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => other.map_err(store_error)?,
    }
    state.apply().await?;
    Ok(StatusCode::NO_CONTENT)
}
