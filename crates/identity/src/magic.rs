//! Sign-in by e-mailed link: `POST /api/v1/auth/magic-link` and `POST /api/v1/auth/verify`.
//! Links are single use, expire after 15 minutes, and are stored as digests only. The answer
//! to a request is the same whether or not the address has an account.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, ErrorBody, ErrorCode, Json};
use veloflux_domain::{Email, TenantId};
use veloflux_secrets::{random_token, sha256_hex};
use veloflux_store::StoreError;

use crate::IdentityState;
use crate::sessions::{audit, start_session};
use crate::views::SessionResponse;

/// Body of a magic-link request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MagicLinkRequest {
    /// Where to send the link.
    pub email: String,
}

/// Answer of a magic-link request (identical for unknown addresses).
#[derive(Debug, Serialize, ToSchema)]
pub struct MagicLinkResponse {
    /// Always `true`.
    pub success: bool,
    /// What happens next.
    pub message: String,
    /// Minutes the link stays valid.
    pub expires_in_minutes: u64,
}

/// Body of a verification.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The token from the link.
    pub token: String,
    /// Tenant to sign into; the user's first tenant when omitted.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

pub(crate) fn routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(request_link))
        .routes(routes!(verify))
}

/// E-mails a single-use sign-in link, if the address has an account.
#[utoipa::path(post, path = "/api/v1/auth/magic-link", tag = "auth", request_body = MagicLinkRequest,
    responses((status = 202, body = MagicLinkResponse), (status = 422, body = ErrorBody)))]
async fn request_link(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<MagicLinkRequest>,
) -> Result<(StatusCode, Json<MagicLinkResponse>), ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", &e))?;
    let ttl = state.settings().magic_link_ttl;
    match state.store().user_by_email(&email).await {
        Ok(user) => {
            let token = random_token(32).map_err(ApiError::internal)?;
            let expires_at = Utc::now() + chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
            state
                .store()
                .insert_magic_link(&sha256_hex(token.as_bytes()), user.id, expires_at)
                .await?;
            let link = format!(
                "{}/auth/verify?token={token}",
                state.settings().public_url.trim_end_matches('/')
            );
            let text = format!(
                "Hello,\n\nUse this link to sign in to VeloFlux. It works once and expires in {} minutes:\n\n{link}\n\n\
                 Or paste this code where you asked for the link:\n\n{token}\n\nIf you did not ask for it, ignore this message.\n",
                ttl.as_secs() / 60
            );
            if let Err(err) = state.mailer().send(&email, "Your VeloFlux sign-in link", text).await {
                tracing::error!(error = %err, user_id = %user.id, "could not send the magic link");
            }
            audit(
                &state,
                Some(user.id),
                None,
                "auth.magic_link_sent",
                &peer.ip().to_string(),
                json!({}),
            )
            .await;
        }
        Err(StoreError::NotFound) => {}
        Err(err) => return Err(err.into()),
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(MagicLinkResponse {
            success: true,
            message: "if this address has an account, a sign-in link is on its way".into(),
            expires_in_minutes: ttl.as_secs() / 60,
        }),
    ))
}

/// Signs in with the token of a magic link (once).
#[utoipa::path(post, path = "/api/v1/auth/verify", tag = "auth", request_body = VerifyRequest,
    responses((status = 200, body = SessionResponse), (status = 401, description = "INVALID_TOKEN: unknown, used or expired", body = ErrorBody)))]
async fn verify(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<VerifyRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidToken, "this sign-in link is invalid, used or expired");
    let token = body.token.trim();
    if token.is_empty() || token.len() > 128 {
        return Err(invalid());
    }
    let user_id = state
        .store()
        .use_magic_link(&sha256_hex(token.as_bytes()))
        .await?
        .ok_or_else(invalid)?;
    let user = state.store().user(user_id).await?;
    let requested = body
        .tenant_id
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("tenant_id", &e))?;
    let tenants: Vec<TenantId> = match requested {
        Some(tenant) => vec![tenant],
        None => state
            .store()
            .memberships(user_id)
            .await?
            .into_iter()
            .map(|m| m.tenant_id)
            .collect(),
    };
    for tenant in tenants {
        if let Some(subject) = state.tokens().subject_for(user_id, tenant).await? {
            let response =
                start_session(&state, &user, &subject, &peer.ip().to_string(), "auth.login_magic_link").await?;
            return Ok(Json(response));
        }
    }
    Err(ApiError::new(
        ErrorCode::AuthenticationFailed,
        "the account has no tenant to sign into",
    ))
}
