//! Single sign-on per tenant with OpenID Connect: configuration (client secret sealed at
//! rest, masked on read), a connection test, and the authorization-code flow with PKCE,
//! `state` and `nonce`. The ID token is verified against the provider's published keys; the
//! user is found by the (issuer, subject) link, or by a verified e-mail, or created in the
//! tenant.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Path, Permission, Query};
use veloflux_domain::{Email, Invalid, Role, TenantId};
use veloflux_secrets::{random_token, sha256_base64url};
use veloflux_store::{NewUser, OidcConfigRow, OidcLoginRow, StoreError};

use crate::IdentityState;
use crate::outbound::check_url;
use crate::sessions::{audit, start_session};
use crate::tenants::{parse_tenant_id, visible_tenant};
use crate::views::{SessionResponse, rfc3339};

/// How long a started login may take to come back.
const LOGIN_TTL_MINUTES: i64 = 10;

/// Body of `PUT /api/tenants/{tenant_id}/oidc/config`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"provider_url": "https://auth0.exemplo.com", "client_id": "seu_client_id",
    "client_secret": "seu_client_secret", "redirect_uri": "https://app.exemplo.com/callback", "scopes": ["openid", "profile", "email"]}))]
pub struct OidcConfigInput {
    /// The provider's issuer URL.
    pub provider_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret; may be omitted to keep the stored one.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back; it must reach
    /// `GET /api/auth/oidc/{tenant_id}/callback` with `code` and `state`.
    pub redirect_uri: String,
    /// Scopes; must include `openid`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A tenant's OIDC configuration as shown to clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcConfigView {
    /// The tenant.
    pub tenant_id: String,
    /// Issuer URL.
    pub provider_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// Always `***`: the secret is never returned.
    pub client_secret: String,
    /// Redirect URI.
    pub redirect_uri: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Last change.
    pub updated_at: String,
}

/// Result of `POST /api/tenants/{tenant_id}/oidc/test`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcTestResult {
    /// Whether discovery and the key fetch worked.
    pub success: bool,
    /// The issuer the provider announced.
    pub issuer: Option<String>,
    /// Authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// Token endpoint.
    pub token_endpoint: Option<String>,
    /// Number of signing keys published.
    pub keys: Option<usize>,
    /// What failed.
    pub error: Option<String>,
}

/// The callback's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state given at login.
    pub state: Option<String>,
    /// An error the provider reported instead of a code.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Debug, Deserialize)]
struct TokenReply {
    id_token: String,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    nonce: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    given_name: Option<String>,
    family_name: Option<String>,
}

pub(crate) fn routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(get_config, put_config))
        .routes(routes!(test_config))
}

pub(crate) fn sign_in_routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(start_login))
        .routes(routes!(callback))
}

fn view(row: &OidcConfigRow) -> OidcConfigView {
    OidcConfigView {
        tenant_id: row.tenant_id.to_string(),
        provider_url: row.provider_url.clone(),
        client_id: row.client_id.clone(),
        client_secret: "***".into(),
        redirect_uri: row.redirect_uri.clone(),
        scopes: row.scopes.clone(),
        updated_at: rfc3339(row.updated_at),
    }
}

fn not_configured() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "OIDC is not configured for this tenant")
}

/// The tenant's OIDC configuration; the client secret is masked.
#[utoipa::path(get, path = "/api/tenants/{tenant_id}/oidc/config", tag = "oidc", params(("tenant_id" = String, Path)),
    responses((status = 200, body = OidcConfigView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_config(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
) -> Result<Json<OidcConfigView>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::ManageTenant).await?;
    let row = state.store().tenant_oidc(tenant.id).await?.ok_or_else(not_configured)?;
    Ok(Json(view(&row)))
}

/// Creates or replaces the tenant's OIDC configuration (owner, admin).
#[utoipa::path(put, path = "/api/tenants/{tenant_id}/oidc/config", tag = "oidc", params(("tenant_id" = String, Path)),
    request_body = OidcConfigInput,
    responses((status = 200, body = OidcConfigView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_config(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
    body: DeferredJson<OidcConfigInput>,
) -> Result<Json<OidcConfigView>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::ManageTenant).await?;
    let body = body.parse()?;
    let url = |field: &str, raw: &str| -> Result<String, ApiError> {
        let parsed = url::Url::parse(raw.trim())
            .map_err(|_| ApiError::invalid(field, &Invalid::new("format", "must be an absolute URL")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::invalid(
                field,
                &Invalid::new("format", "must be an http or https URL"),
            ));
        }
        Ok(raw.trim().trim_end_matches('/').to_owned())
    };
    let provider_url = url("provider_url", &body.provider_url)?;
    let redirect_uri = url("redirect_uri", &body.redirect_uri)?;
    let client_id = body.client_id.trim().to_owned();
    if client_id.is_empty() {
        return Err(ApiError::invalid("client_id", &Invalid::new("required", "is required")));
    }
    let scopes = body
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ApiError::invalid(
            "scopes",
            &Invalid::new("openid", "must include openid"),
        ));
    }
    let existing = state.store().tenant_oidc(tenant.id).await?;
    let client_secret = match (
        body.client_secret.as_deref().map(str::trim).filter(|s| !s.is_empty()),
        existing,
    ) {
        (Some(secret), _) => state.secret().seal(secret.as_bytes()).map_err(ApiError::internal)?,
        (None, Some(existing)) => existing.client_secret,
        (None, None) => {
            return Err(ApiError::invalid(
                "client_secret",
                &Invalid::new("required", "is required"),
            ));
        }
    };
    let row = OidcConfigRow {
        tenant_id: tenant.id,
        provider_url,
        client_id,
        client_secret,
        redirect_uri,
        scopes,
        updated_at: Utc::now(),
    };
    state.store().put_tenant_oidc(&row).await?;
    audit(
        &state,
        Some(principal.user_id),
        Some(tenant.id),
        "oidc.config_changed",
        &peer.ip().to_string(),
        json!({"provider_url": row.provider_url, "client_id": row.client_id}),
    )
    .await;
    Ok(Json(view(&row)))
}

/// Checks the provider: discovery document and signing keys.
#[utoipa::path(post, path = "/api/tenants/{tenant_id}/oidc/test", tag = "oidc", params(("tenant_id" = String, Path)),
    responses((status = 200, body = OidcTestResult), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn test_config(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
) -> Result<Json<OidcTestResult>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::ManageTenant).await?;
    let row = state.store().tenant_oidc(tenant.id).await?.ok_or_else(not_configured)?;
    let outcome = async {
        let discovery = discover(&state, &row.provider_url).await?;
        let keys = fetch_keys(&state, &discovery.jwks_uri).await?;
        Ok::<_, String>((discovery, keys.keys.len()))
    }
    .await;
    Ok(Json(match outcome {
        Ok((discovery, keys)) => OidcTestResult {
            success: true,
            issuer: Some(discovery.issuer),
            authorization_endpoint: Some(discovery.authorization_endpoint),
            token_endpoint: Some(discovery.token_endpoint),
            keys: Some(keys),
            error: None,
        },
        Err(error) => OidcTestResult {
            success: false,
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: None,
            keys: None,
            error: Some(error),
        },
    }))
}

/// Starts a sign-in: redirects the browser to the provider with PKCE, `state` and `nonce`.
#[utoipa::path(get, path = "/api/auth/oidc/{tenant_id}/login", tag = "oidc", params(("tenant_id" = String, Path)),
    responses((status = 302, description = "Redirect to the provider's authorization endpoint"), (status = 404, body = ErrorBody)))]
async fn start_login(State(state): State<IdentityState>, Path(tenant_id): Path<String>) -> Result<Response, ApiError> {
    let tenant = parse_tenant_id(&tenant_id)?;
    let row = state.store().tenant_oidc(tenant).await?.ok_or_else(not_configured)?;
    let discovery = discover(&state, &row.provider_url).await.map_err(provider_error)?;
    let login_state = random_token(24).map_err(ApiError::internal)?;
    let nonce = random_token(24).map_err(ApiError::internal)?;
    let verifier = random_token(32).map_err(ApiError::internal)?;
    state
        .store()
        .insert_oidc_login(
            &login_state,
            &OidcLoginRow {
                tenant_id: tenant,
                nonce: nonce.clone(),
                code_verifier: verifier.clone(),
                expires_at: Utc::now() + chrono::Duration::minutes(LOGIN_TTL_MINUTES),
            },
        )
        .await?;
    let mut target = url::Url::parse(&discovery.authorization_endpoint)
        .map_err(|_| provider_error("invalid authorization endpoint".into()))?;
    target
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &row.client_id)
        .append_pair("redirect_uri", &row.redirect_uri)
        .append_pair("scope", &row.scopes.join(" "))
        .append_pair("state", &login_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &sha256_base64url(verifier.as_bytes()))
        .append_pair("code_challenge_method", "S256");
    let location = HeaderValue::from_str(target.as_str()).map_err(ApiError::internal)?;
    Ok((StatusCode::FOUND, [(LOCATION, location)]).into_response())
}

/// Finishes a sign-in: exchanges the code, verifies the ID token (signature, issuer,
/// audience, expiry, nonce) and answers with a VeloFlux session.
#[utoipa::path(get, path = "/api/auth/oidc/{tenant_id}/callback", tag = "oidc", params(("tenant_id" = String, Path), CallbackQuery),
    responses((status = 200, body = SessionResponse), (status = 401, description = "State, nonce or token invalid", body = ErrorBody)))]
async fn callback(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(tenant_id): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Result<Json<SessionResponse>, ApiError> {
    let failed = |message: &str| ApiError::new(ErrorCode::AuthenticationFailed, message.to_owned());
    let tenant = parse_tenant_id(&tenant_id)?;
    if let Some(error) = query.error {
        return Err(failed(&format!("the identity provider refused the sign-in: {error}")));
    }
    let (Some(code), Some(login_state)) = (query.code, query.state) else {
        return Err(ApiError::invalid(
            "code",
            &Invalid::new("required", "code and state are required"),
        ));
    };
    let login = state.store().take_oidc_login(&login_state).await?;
    let login = match login {
        Some(login) if login.tenant_id == tenant && login.expires_at > Utc::now() => login,
        _ => return Err(failed("unknown, used or expired sign-in state")),
    };
    let row = state.store().tenant_oidc(tenant).await?.ok_or_else(not_configured)?;
    let discovery = discover(&state, &row.provider_url).await.map_err(provider_error)?;
    let secret = String::from_utf8(state.secret().open(&row.client_secret).map_err(ApiError::internal)?)
        .map_err(ApiError::internal)?;
    let token_url =
        url::Url::parse(&discovery.token_endpoint).map_err(|_| provider_error("invalid token endpoint".into()))?;
    check_url(&token_url, state.settings().oidc_allow_private_targets).map_err(provider_error)?;
    let reply = state
        .outbound()
        .post(token_url)
        .basic_auth(&row.client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", row.redirect_uri.as_str()),
            ("code_verifier", login.code_verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| provider_error(format!("token request failed: {e}")))?;
    if !reply.status().is_success() {
        return Err(failed(&format!(
            "the identity provider rejected the code ({})",
            reply.status()
        )));
    }
    let reply: TokenReply = reply
        .json()
        .await
        .map_err(|e| provider_error(format!("token reply: {e}")))?;
    let claims = verify_id_token(&state, &discovery, &row.client_id, &reply.id_token).await?;
    if claims.nonce.as_deref() != Some(login.nonce.as_str()) {
        return Err(failed("the ID token's nonce does not match this sign-in"));
    }

    let user = link_user(&state, tenant, &claims).await?;
    let subject = state
        .tokens()
        .subject_for(user.id, tenant)
        .await?
        .ok_or_else(|| failed("the account has no access to this tenant"))?;
    let response = start_session(&state, &user, &subject, &peer.ip().to_string(), "auth.login_oidc").await?;
    Ok(Json(response))
}

/// Finds the user of an external identity, or links a verified e-mail, or creates one; then
/// makes sure they belong to the tenant.
async fn link_user(
    state: &IdentityState,
    tenant: TenantId,
    claims: &IdClaims,
) -> Result<veloflux_store::User, ApiError> {
    let store = state.store();
    let user = match store.user_by_identity(&claims.iss, &claims.sub).await? {
        Some(id) => store.user(id).await?,
        None => {
            let email = claims
                .email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .ok()
                .flatten()
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::AuthenticationFailed, "the ID token carries no usable e-mail")
                })?;
            let user = match store.user_by_email(&email).await {
                Ok(existing) if claims.email_verified == Some(true) => existing,
                Ok(_) => {
                    return Err(ApiError::new(
                        ErrorCode::AuthenticationFailed,
                        "an account with this e-mail exists and the provider has not verified the address",
                    ));
                }
                Err(StoreError::NotFound) => {
                    let new = NewUser {
                        email,
                        first_name: claims.given_name.clone().unwrap_or_default(),
                        last_name: claims.family_name.clone().unwrap_or_default(),
                        password_hash: None,
                        platform_role: None,
                    };
                    store.create_user_in_tenant(&new, tenant, Role::Member).await?
                }
                Err(err) => return Err(err.into()),
            };
            store.link_identity(&claims.iss, &claims.sub, user.id, tenant).await?;
            user
        }
    };
    if store.role_in(tenant, user.id).await?.is_none() {
        store.add_membership(tenant, user.id, Role::Member).await?;
    }
    Ok(user)
}

fn provider_error(message: String) -> ApiError {
    ApiError::new(ErrorCode::AuthenticationFailed, format!("identity provider: {message}"))
        .with_status(StatusCode::BAD_GATEWAY)
}

async fn get_json<T: serde::de::DeserializeOwned>(state: &IdentityState, raw: &str) -> Result<T, String> {
    let url = url::Url::parse(raw).map_err(|_| format!("{raw} is not a URL"))?;
    check_url(&url, state.settings().oidc_allow_private_targets)?;
    let response = state
        .outbound()
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{raw}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{raw} answered {}", response.status()));
    }
    response.json().await.map_err(|e| format!("{raw}: {e}"))
}

async fn discover(state: &IdentityState, provider_url: &str) -> Result<Discovery, String> {
    let discovery: Discovery = get_json(
        state,
        &format!(
            "{}/.well-known/openid-configuration",
            provider_url.trim_end_matches('/')
        ),
    )
    .await?;
    if discovery.issuer.trim_end_matches('/') != provider_url.trim_end_matches('/') {
        return Err(format!(
            "the discovery document names issuer {} instead of {provider_url}",
            discovery.issuer
        ));
    }
    Ok(discovery)
}

async fn fetch_keys(state: &IdentityState, jwks_uri: &str) -> Result<JwkSet, String> {
    let keys: JwkSet = get_json(state, jwks_uri).await?;
    if keys.keys.is_empty() {
        return Err(format!("{jwks_uri} publishes no keys"));
    }
    Ok(keys)
}

async fn verify_id_token(
    state: &IdentityState,
    discovery: &Discovery,
    client_id: &str,
    token: &str,
) -> Result<IdClaims, ApiError> {
    let invalid = |why: &str| ApiError::new(ErrorCode::AuthenticationFailed, format!("invalid ID token: {why}"));
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
    let allowed = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    if !allowed.contains(&header.alg) {
        return Err(invalid("unsupported signing algorithm"));
    }
    let keys = fetch_keys(state, &discovery.jwks_uri).await.map_err(provider_error)?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| invalid("signed by an unknown key"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid("unusable provider key"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[discovery.issuer.as_str()]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("expired"),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => invalid("issued for another client"),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => invalid("issued by another provider"),
            _ => invalid("bad signature or claims"),
        })
}
