//! Extractors whose failures answer with the standard error body: JSON bodies (400 with the
//! position for unreadable JSON, 422 naming the field for wrong values, 413, 415), query
//! strings and path parameters.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::{CONNECTION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::IntoParams;
use veloflux_store::PageRequest;

use crate::error::{ApiError, ErrorCode};

/// A JSON request body or response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        DeferredJson::<T>::from_request(request, state).await?.parse().map(Json)
    }
}

/// A JSON body read but not parsed yet, so that a handler can check who may call it before
/// telling the caller what is wrong with the body (403 before 422).
#[derive(Debug)]
pub struct DeferredJson<T> {
    bytes: Bytes,
    json_content: bool,
    target: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> DeferredJson<T> {
    /// Checks the content type and parses the body.
    pub fn parse(self) -> Result<T, ApiError> {
        if !self.json_content {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        parse_json(&self.bytes)
    }
}

impl<S: Send + Sync, T> FromRequest<S> for DeferredJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json_content = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    // The rest of the body is never read, so the connection cannot carry another
                    // request; saying so keeps clients from reusing it.
                    ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
                        .with_header(CONNECTION, HeaderValue::from_static("close"))
                }
                other => {
                    ApiError::new(ErrorCode::ValidationError, other.body_text()).with_status(StatusCode::BAD_REQUEST)
                }
            })?;
        Ok(DeferredJson {
            bytes,
            json_content,
            target: std::marker::PhantomData,
        })
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses a JSON document, telling syntax errors (400, with line and column) from values
/// of the wrong shape (422, with the JSON path of the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = result.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            let message = inner.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            let field = missing_field(&message)
                .map(|missing| {
                    if path == "." {
                        missing.to_owned()
                    } else {
                        format!("{path}.{missing}")
                    }
                })
                .unwrap_or(path);
            let constraint = if message.starts_with("missing field") {
                "required"
            } else {
                "type"
            };
            ApiError::new(ErrorCode::ValidationError, format!("{field}: {message}"))
                .with_details(json!({"field": field, "constraint": constraint}))
        } else {
            ApiError::new(
                ErrorCode::ValidationError,
                format!(
                    "malformed JSON at line {} column {}: {}",
                    inner.line(),
                    inner.column(),
                    syntax_reason(&inner)
                ),
            )
            .with_status(StatusCode::BAD_REQUEST)
            .with_details(json!({"line": inner.line(), "column": inner.column()}))
        }
    })?;
    deserializer.end().map_err(|err| {
        ApiError::new(
            ErrorCode::ValidationError,
            format!(
                "malformed JSON at line {} column {}: trailing characters",
                err.line(),
                err.column()
            ),
        )
        .with_status(StatusCode::BAD_REQUEST)
        .with_details(json!({"line": err.line(), "column": err.column()}))
    })?;
    Ok(value)
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn syntax_reason(err: &serde_json::Error) -> String {
    let text = err.to_string();
    text.split(" at line ").next().unwrap_or(&text).to_owned()
}

/// A query string; unreadable ones answer 400 with the reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| {
                ApiError::new(ErrorCode::ValidationError, rejection.body_text()).with_status(StatusCode::BAD_REQUEST)
            })
    }
}

/// Path parameters; unreadable ones answer 400 with the reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| {
                ApiError::new(ErrorCode::ValidationError, rejection.body_text()).with_status(StatusCode::BAD_REQUEST)
            })
    }
}

/// `?limit=&cursor=` of every list route.
#[derive(Debug, Clone, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Pagination {
    /// Validates the page size and turns the parameters into a store request.
    pub fn into_request(self) -> Result<PageRequest, ApiError> {
        if let Some(limit) = self.limit
            && !(1..=PageRequest::MAX_LIMIT).contains(&limit)
        {
            return Err(ApiError::new(
                ErrorCode::ValidationError,
                format!("limit must be between 1 and {}", PageRequest::MAX_LIMIT),
            )
            .with_details(json!({"field": "limit", "constraint": "range", "provided_value": limit})));
        }
        Ok(PageRequest {
            limit: self.limit,
            cursor: self.cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code, reason = "fields are read by serde only")]
    struct Register {
        email: String,
        profile: Profile,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code, reason = "fields are read by serde only")]
    struct Profile {
        age: u8,
    }

    #[test]
    fn syntax_errors_are_400_with_position() {
        let err = parse_json::<Register>(b"{\n  \"email\": \"a\",,\n}").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.details, Some(json!({"line": 2, "column": 16})));
        assert!(
            err.message.starts_with("malformed JSON at line 2 column 16"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_values_are_422_naming_the_field() {
        let err = parse_json::<Register>(br#"{"email": "a", "profile": {"age": "x"}}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.details, Some(json!({"field": "profile.age", "constraint": "type"})));

        let err = parse_json::<Register>(br#"{"profile": {"age": 3}}"#).unwrap_err();
        assert_eq!(err.details, Some(json!({"field": "email", "constraint": "required"})));
        assert_eq!(err.message, "email: missing field `email`");
    }

    #[test]
    fn trailing_garbage_is_a_syntax_error() {
        let err = parse_json::<serde_json::Value>(b"{} x").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert!(
            Pagination {
                limit: Some(0),
                cursor: None
            }
            .into_request()
            .is_err()
        );
        assert!(
            Pagination {
                limit: Some(501),
                cursor: None
            }
            .into_request()
            .is_err()
        );
        assert_eq!(
            Pagination {
                limit: Some(10),
                cursor: None
            }
            .into_request()
            .unwrap()
            .limit,
            Some(10)
        );
    }
}
