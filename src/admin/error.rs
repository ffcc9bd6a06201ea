//! Admin request errors and the one place they become a status and an error code.
//!
//! API responses carry `{"error": "<code>", "message": "...", "fields": [...]}`; the console
//! shows the same message on a page. Messages are for the person reading them; details that
//! are ours (database errors) go to the log, not the client.

use http::{Response, StatusCode};

use crate::accounts::AccountError;
use crate::store::StoreError;
use crate::web::{Body, respond};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Client: the body is not valid JSON, or not an object.
    #[error("{0}")]
    BadRequest(String),
    /// Client: no credentials, or credentials that are unknown, expired or revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// Client: authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// Client: a write with a browser session but without a matching CSRF token.
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// Client: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// Client: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Client: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        message: String,
        fields: Vec<String>,
    },
    /// Client: the body is too large.
    #[error("request body too large")]
    TooLarge,
    /// Client: a body that is not `application/json`.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// Client: fields that are unknown, not allowed, or invalid; each is named.
    #[error("{message}")]
    Unprocessable {
        message: String,
        fields: Vec<String>,
    },
    /// Client: too many failed attempts.
    #[error("too many requests")]
    TooManyRequests,
    /// Us: the database cannot answer.
    #[error("database unavailable: {0}")]
    Unavailable(StoreError),
    /// Us: a bug (a template that does not render, a database error that is not the client's).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn unprocessable(message: impl Into<String>, fields: Vec<String>) -> ApiError {
        ApiError::Unprocessable {
            message: message.into(),
            fields,
        }
    }

    pub fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::Unprocessable {
            message: format!("{field}: {message}"),
            fields: vec![field.to_string()],
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(message.into())
    }

    pub fn user_not_found() -> ApiError {
        ApiError::NotFound("no such user".into())
    }

    /// Status and error code. One arm per variant; no catch-all.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf_failed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            ApiError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Whether the failure is ours (logged), not the client's.
    pub fn is_server_side(&self) -> bool {
        matches!(self, ApiError::Unavailable(_) | ApiError::Internal(_))
    }

    /// What the client is told; server-side detail stays in the log.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Unavailable(_) => {
                "The account database is unavailable. Please try again shortly.".into()
            }
            ApiError::Internal(_) => "Something went wrong on our side.".into(),
            other => other.to_string(),
        }
    }

    pub fn fields(&self) -> &[String] {
        match self {
            ApiError::Conflict { fields, .. } | ApiError::Unprocessable { fields, .. } => fields,
            _ => &[],
        }
    }

    pub fn into_json(self) -> Response<Body> {
        if self.is_server_side() {
            tracing::error!(error = %self, "admin request failed");
        }
        let (status, code) = self.status_and_code();
        let mut body = serde_json::json!({ "error": code, "message": self.public_message() });
        if !self.fields().is_empty() {
            body["fields"] = serde_json::json!(self.fields());
        }
        let mut r = respond::json(status, &body);
        if matches!(self, ApiError::Unauthenticated) {
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"gatehouse\""),
            );
        }
        if matches!(self, ApiError::TooManyRequests) {
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("60"),
            );
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { field } => ApiError::Conflict {
                message: format!("{field} is already taken"),
                fields: vec![field.to_string()],
            },
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            e if e.is_unavailable() => ApiError::Unavailable(e),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid { field, message } => ApiError::invalid(field, message),
            AccountError::Duplicate { field } => ApiError::Conflict {
                message: format!("{field} is already taken"),
                fields: vec![field.to_string()],
            },
            AccountError::Policy(p) => ApiError::invalid("password", p),
            AccountError::UnknownUser(_) | AccountError::NotFound => ApiError::user_not_found(),
            AccountError::Conflict(m) => ApiError::conflict(m),
            AccountError::Password(p) => ApiError::Internal(p.to_string()),
            AccountError::Store(s) => ApiError::from(s),
        }
    }
}
