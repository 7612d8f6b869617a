//! Signing in and out: `/auth/login`, `/auth/refresh`, `/api/auth/logout`, `/api/profile`,
//! the JWKS, and key rotation.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, Auth, ErrorBody, ErrorCode, Json, bearer_token};
use veloflux_domain::{Email, TenantId};
use veloflux_store::{NewAuditEntry, StoreError, User};

use crate::tokens::SessionSubject;
use crate::views::{Done, SessionResponse, UserView};
use crate::{IdentityState, throttle, verify_password};

/// Body of a sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "usuario@exemplo.com", "password": "sua_senha", "tenant_id": null}))]
pub struct LoginRequest {
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
    /// Tenant to sign into; the user's first tenant when omitted.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Optional body of a refresh, for clients that cannot set the header.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token, when not sent as `Authorization: Bearer`.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Answer of a key rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotationResponse {
    /// The id of the key that signs from now on.
    pub kid: String,
}

/// A request body read as bytes, for routes where a JSON body is optional.
pub(crate) struct RawBody(axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large"))
    }
}

pub(crate) fn public_routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(login_api))
        .routes(routes!(refresh))
        .routes(routes!(refresh_api))
        .routes(routes!(refresh_v1))
}

pub(crate) fn routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(logout_get, logout_post))
        .routes(routes!(logout_auth))
        .routes(routes!(profile))
        .routes(routes!(profile_v1))
        .routes(routes!(jwks))
        .routes(routes!(rotate_keys))
}

/// Signs in with e-mail and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionResponse),
              (status = 401, description = "AUTHENTICATION_FAILED", body = ErrorBody),
              (status = 429, description = "Too many failed attempts: locked for a while", body = ErrorBody)))]
async fn login(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    sign_in(&state, peer, body).await.map(Json)
}

/// Same as `POST /auth/login`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionResponse)))]
async fn login_api(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    sign_in(&state, peer, body).await.map(Json)
}

fn authentication_failed() -> ApiError {
    ApiError::new(ErrorCode::AuthenticationFailed, "invalid email or password")
}

async fn sign_in(state: &IdentityState, peer: SocketAddr, body: LoginRequest) -> Result<SessionResponse, ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", &e))?;
    if body.password.is_empty() {
        return Err(ApiError::invalid(
            "password",
            &veloflux_domain::Invalid::new("required", "password is required"),
        ));
    }
    let store = state.store();
    let ip = peer.ip().to_string();
    let (account_key, ip_key) = (throttle::account_key(email.as_str()), throttle::ip_key(&ip));
    throttle::ensure_unlocked(store, &[account_key.clone(), ip_key.clone()]).await?;

    let user = match store.user_by_email(&email).await {
        Ok(user) => Some(user),
        Err(StoreError::NotFound) => None,
        Err(err) => return Err(err.into()),
    };
    let hash = match &user {
        Some(user) => store.password_hash(user.id).await?,
        None => None,
    };
    // Unknown accounts are checked against a dummy hash so that both answers take as long.
    let verified = verify_password(body.password, hash.unwrap_or_else(|| state.dummy_hash().to_owned())).await;
    let subject = match (&user, verified) {
        (Some(user), true) => subject_for_login(state, user, body.tenant_id.as_deref()).await?,
        _ => None,
    };
    let Some(subject) = subject else {
        throttle::record_failure(store, state.lockout(), &account_key, &ip_key).await?;
        audit(
            state,
            user.as_ref().map(|u| u.id),
            None,
            "auth.login_failed",
            &ip,
            json!({"email": email.as_str()}),
        )
        .await;
        return Err(authentication_failed());
    };
    let user = user.ok_or_else(authentication_failed)?;
    store.clear_login_throttle(&account_key).await?;
    start_session(state, &user, &subject, &ip, "auth.login").await
}

/// The tenant a sign-in goes to: the one asked for (if the user may enter it) or the
/// user's oldest membership.
async fn subject_for_login(
    state: &IdentityState,
    user: &User,
    tenant: Option<&str>,
) -> Result<Option<SessionSubject>, ApiError> {
    let tokens = state.tokens();
    match tenant.map(str::trim).filter(|t| !t.is_empty()) {
        Some(raw) => match TenantId::parse(raw) {
            Ok(tenant) => tokens.subject_for(user.id, tenant).await,
            Err(_) => Ok(None),
        },
        None => {
            for membership in state.store().memberships(user.id).await? {
                if let Some(subject) = tokens.subject_for(user.id, membership.tenant_id).await? {
                    return Ok(Some(subject));
                }
            }
            match state.store().default_tenant().await? {
                Some(default) if user.platform_role.is_some() => tokens.subject_for(user.id, default).await,
                _ => Ok(None),
            }
        }
    }
}

/// Issues a session to an authenticated user, records the sign-in and answers with the
/// seed's login response. Used by password, magic-link and OIDC sign-ins.
pub(crate) async fn start_session(
    state: &IdentityState,
    user: &User,
    subject: &SessionSubject,
    ip: &str,
    action: &str,
) -> Result<SessionResponse, ApiError> {
    let pair = state.tokens().issue(subject).await?;
    let at = state.store().touch_last_login(user.id).await?;
    let mut view = UserView::new(user, subject.tenant_id, subject.role);
    view.last_login = Some(crate::views::rfc3339(at));
    audit(
        state,
        Some(user.id),
        Some(subject.tenant_id),
        action,
        ip,
        json!({"role": subject.role.as_str()}),
    )
    .await;
    tracing::info!(user_id = %user.id, tenant_id = %subject.tenant_id, action, "signed in");
    Ok(SessionResponse::new(pair, view))
}

/// Appends to the audit log; a failure is logged, never turned into a failed request.
pub(crate) async fn audit(
    state: &IdentityState,
    actor: Option<veloflux_domain::UserId>,
    tenant: Option<TenantId>,
    action: &str,
    ip: &str,
    details: serde_json::Value,
) {
    let entry = NewAuditEntry {
        tenant_id: tenant,
        actor_user_id: actor,
        action: action.into(),
        target: actor.map(|a| a.to_string()),
        ip: Some(ip.to_owned()),
        details,
    };
    if let Err(err) = state.store().record_audit(&entry).await {
        tracing::error!(error = %err, action, "could not write the audit log");
    }
}

/// Exchanges a refresh token (as `Authorization: Bearer`) for a new pair. Each refresh token
/// works once; presenting a used one revokes the whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Only when the token is not in the Authorization header"),
    responses((status = 200, body = SessionResponse),
              (status = 401, description = "INVALID_TOKEN or TOKEN_EXPIRED", body = ErrorBody)),
    security(("bearer" = [])))]
async fn refresh(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    RawBody(body): RawBody,
) -> Result<Json<SessionResponse>, ApiError> {
    refresh_session(&state, peer, &parts, &body).await.map(Json)
}

/// Same as `POST /auth/refresh`.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", responses((status = 200, body = SessionResponse)), security(("bearer" = [])))]
async fn refresh_api(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    RawBody(body): RawBody,
) -> Result<Json<SessionResponse>, ApiError> {
    refresh_session(&state, peer, &parts, &body).await.map(Json)
}

/// Same as `POST /auth/refresh` (Page Magic's path).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", responses((status = 200, body = SessionResponse)), security(("bearer" = [])))]
async fn refresh_v1(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    RawBody(body): RawBody,
) -> Result<Json<SessionResponse>, ApiError> {
    refresh_session(&state, peer, &parts, &body).await.map(Json)
}

async fn refresh_session(
    state: &IdentityState,
    peer: SocketAddr,
    parts: &Parts,
    body: &[u8],
) -> Result<SessionResponse, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        veloflux_api::parse_json::<RefreshRequest>(body)?.refresh_token
    };
    let token = bearer_token(parts)
        .map(str::to_owned)
        .or(from_body)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "missing refresh token"))?;
    let (pair, subject) = state.tokens().refresh(&token, Some(peer.ip().to_string())).await?;
    let user = state.store().user(subject.user_id).await?;
    Ok(SessionResponse::new(
        pair,
        UserView::new(&user, subject.tenant_id, subject.role),
    ))
}

/// Ends the session of the bearer token (access or refresh token): every token of the
/// session stops working.
#[utoipa::path(get, path = "/api/auth/logout", tag = "auth",
    responses((status = 200, body = Done), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn logout_get(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
) -> Result<Json<Done>, ApiError> {
    end_session(&state, peer, &parts).await
}

/// Same as `GET /api/auth/logout`.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 200, body = Done)), security(("bearer" = [])))]
async fn logout_post(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
) -> Result<Json<Done>, ApiError> {
    end_session(&state, peer, &parts).await
}

/// Same as `GET /api/auth/logout`.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 200, body = Done)), security(("bearer" = [])))]
async fn logout_auth(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
) -> Result<Json<Done>, ApiError> {
    end_session(&state, peer, &parts).await
}

async fn end_session(state: &IdentityState, peer: SocketAddr, parts: &Parts) -> Result<Json<Done>, ApiError> {
    let token = bearer_token(parts).ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "missing bearer token"))?;
    let session = state.tokens().session_of(token).await?;
    state.tokens().revoke_session(&session).await?;
    audit(
        state,
        None,
        None,
        "auth.logout",
        &peer.ip().to_string(),
        json!({"session_id": session}),
    )
    .await;
    Ok(Json(Done { success: true }))
}

/// The signed-in user, with `last_login`.
#[utoipa::path(get, path = "/api/profile", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn profile(State(state): State<IdentityState>, Auth(principal): Auth) -> Result<Json<UserView>, ApiError> {
    let user = state.store().user(principal.user_id).await?;
    Ok(Json(UserView::new(&user, principal.tenant_id, principal.role)))
}

/// Same as `GET /api/profile`.
#[utoipa::path(get, path = "/api/v1/profile", tag = "auth", responses((status = 200, body = UserView)), security(("bearer" = [])))]
async fn profile_v1(state: State<IdentityState>, auth: Auth) -> Result<Json<UserView>, ApiError> {
    profile(state, auth).await
}

/// The public keys that verify access tokens (JWKS).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JSON Web Key Set", body = Object)))]
async fn jwks(State(state): State<IdentityState>) -> Json<serde_json::Value> {
    Json(state.tokens().jwks())
}

/// Starts signing with a new key. Tokens signed by the old keys stay valid until they
/// expire. Platform administrators only.
#[utoipa::path(post, path = "/api/admin/keys/rotate", tag = "admin-api",
    responses((status = 200, body = RotationResponse), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn rotate_keys(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
) -> Result<Json<RotationResponse>, ApiError> {
    principal.require_platform_admin()?;
    let kid = state.tokens().rotate().await.map_err(ApiError::internal)?;
    audit(
        &state,
        Some(principal.user_id),
        None,
        "auth.keys_rotated",
        &peer.ip().to_string(),
        json!({"kid": kid}),
    )
    .await;
    Ok(Json(RotationResponse { kid }))
}
