//! The one error type of the HTTP API and the seed's error body it renders to.

use std::error::Error as StdError;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use veloflux_domain::Invalid;
use veloflux_store::StoreError;

/// Every error code the API answers with. The names are the seeds' (veloflux-api-reference.md)
/// plus the generic HTTP cases the seeds leave implicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Malformed or invalid input (400 for unreadable JSON, 422 for invalid values).
    ValidationError,
    /// Wrong credentials.
    AuthenticationFailed,
    /// The access token has expired.
    TokenExpired,
    /// The token is malformed, tampered with or revoked.
    InvalidToken,
    /// The caller's role does not allow the action.
    InsufficientPermissions,
    /// No such tenant (or not visible to the caller).
    TenantNotFound,
    /// No such user.
    UserNotFound,
    /// No such pool.
    PoolNotFound,
    /// A pool with that name exists.
    PoolAlreadyExists,
    /// No such backend.
    BackendNotFound,
    /// Unknown balancing algorithm.
    InvalidAlgorithm,
    /// A TLS certificate or key that cannot be served (unparsable, key mismatch, expired,
    /// names not covered); `details.field` and `details.constraint` say which.
    InvalidCertificate,
    /// Invalid health check settings.
    HealthCheckFailed,
    /// Too many requests.
    RateLimitExceeded,
    /// Payment or subscription problem.
    BillingError,
    /// The AI service is unavailable.
    AiServiceUnavailable,
    /// The resource already exists (duplicate e-mail, name, host).
    Conflict,
    /// No route or resource at this path.
    NotFound,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// The request took longer than the server allows.
    RequestTimeout,
    /// The feature is documented but not built yet.
    NotImplemented,
    /// The server is starting, stopping or a dependency is down.
    ServiceUnavailable,
    /// Something failed inside the server; details are in its log, never in the response.
    InternalError,
}

impl ErrorCode {
    /// The wire form, e.g. `VALIDATION_ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::AuthenticationFailed => "AUTHENTICATION_FAILED",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            ErrorCode::TenantNotFound => "TENANT_NOT_FOUND",
            ErrorCode::UserNotFound => "USER_NOT_FOUND",
            ErrorCode::PoolNotFound => "POOL_NOT_FOUND",
            ErrorCode::PoolAlreadyExists => "POOL_ALREADY_EXISTS",
            ErrorCode::BackendNotFound => "BACKEND_NOT_FOUND",
            ErrorCode::InvalidAlgorithm => "INVALID_ALGORITHM",
            ErrorCode::InvalidCertificate => "INVALID_CERTIFICATE",
            ErrorCode::HealthCheckFailed => "HEALTH_CHECK_FAILED",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::BillingError => "BILLING_ERROR",
            ErrorCode::AiServiceUnavailable => "AI_SERVICE_UNAVAILABLE",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The status a code answers with unless the error says otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::ValidationError
            | ErrorCode::InvalidAlgorithm
            | ErrorCode::HealthCheckFailed
            | ErrorCode::InvalidCertificate => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::AuthenticationFailed | ErrorCode::TokenExpired | ErrorCode::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::InsufficientPermissions => StatusCode::FORBIDDEN,
            ErrorCode::TenantNotFound
            | ErrorCode::UserNotFound
            | ErrorCode::PoolNotFound
            | ErrorCode::BackendNotFound
            | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::PoolAlreadyExists | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::BillingError => StatusCode::PAYMENT_REQUIRED,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorCode::AiServiceUnavailable | ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code for a bare status produced outside our handlers (by the router, a timeout,
    /// a body limit), so that those responses carry the standard body too.
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::ValidationError,
            StatusCode::UNAUTHORIZED => ErrorCode::InvalidToken,
            StatusCode::FORBIDDEN => ErrorCode::InsufficientPermissions,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimitExceeded,
            StatusCode::NOT_IMPLEMENTED => ErrorCode::NotImplemented,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => ErrorCode::ServiceUnavailable,
            _ => ErrorCode::InternalError,
        }
    }
}

/// The standard error body of every failed request.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "error": true,
    "code": "VALIDATION_ERROR",
    "message": "email is required",
    "details": {"field": "email", "constraint": "required", "provided_value": null},
    "timestamp": "2025-06-19T15:30:00Z",
    "request_id": "req_0190e0c7c5a47f3c9d8f2b6a1e4d7c90"
}))]
pub struct ErrorBody {
    /// Always `true`.
    pub error: bool,
    /// Machine-readable code.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Structured facts, e.g. the offending `field` and `constraint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// When the error happened (RFC 3339).
    pub timestamp: String,
    /// Equals the response's `X-Request-ID` header.
    pub request_id: String,
}

/// An error a handler returns. It becomes the [`ErrorBody`] with the request's id, filled in
/// by the request-id middleware, which is the only place that knows it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) cause: Option<Arc<dyn StdError + Send + Sync>>,
}

impl ApiError {
    /// An error with `code`'s usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    /// Overrides the status.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds structured details.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a response header (for example `Retry-After`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A 422 naming the field that failed a validation rule.
    pub fn invalid(field: &str, invalid: &Invalid) -> Self {
        ApiError::new(ErrorCode::ValidationError, format!("{field}: {}", invalid.message))
            .with_details(json!({"field": field, "constraint": invalid.constraint}))
    }

    /// A 500 that keeps its cause for the log and tells the client nothing about it.
    pub fn internal(cause: impl StdError + Send + Sync + 'static) -> Self {
        ApiError {
            cause: Some(Arc::new(cause)),
            ..ApiError::new(ErrorCode::InternalError, "internal server error")
        }
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    /// Store failures that a handler did not map to something specific. `NotFound` and
    /// `Conflict` keep their meaning; everything else is an internal error.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::new(ErrorCode::NotFound, "resource not found"),
            StoreError::Conflict { .. } => ApiError::new(ErrorCode::Conflict, "resource already exists"),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}
