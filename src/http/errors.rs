//! The one place where errors become HTTP statuses. A 5xx is opaque to the client; its
//! cause goes to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::app::AppError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Forbidden(String),
    NotFound(String),
    PayloadTooLarge(String),
    Conflict(String),
    UnsupportedMediaType(String),
    /// 429, with the seconds to wait (Retry-After).
    TooManyRequests(String, u64),
    /// The database is down: fail closed, and say it is temporary.
    Unavailable(String),
    Internal(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::Conflict(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Unavailable(m)
            | ApiError::TooManyRequests(m, _)
            | ApiError::Internal(m) => f.write_str(m),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        match e {
            AppError::Invalid(m) => ApiError::BadRequest(m),
            AppError::NotFound(m) => ApiError::NotFound(m),
            AppError::Conflict(m) | AppError::NoRequest(m) => ApiError::Conflict(m),
            AppError::Store(e) => ApiError::from(e),
            AppError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        self.retry_after(&mut response);
        response.json(serde_json::json!({ "error": self.public_message() }))
    }
}

impl ApiError {
    fn retry_after(&self, response: &mut actix_web::HttpResponseBuilder) {
        if let ApiError::TooManyRequests(_, wait) = self {
            response.insert_header(("Retry-After", wait.to_string()));
        }
    }

    /// What the client is told: the message, except for 5xx, whose cause goes to the log.
    fn public_message(&self) -> String {
        match self {
            ApiError::Unavailable(cause) => {
                tracing::error!(%cause, "storage unavailable");
                "the service cannot reach its database; nothing was decided or changed, try again"
                    .to_string()
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal error; the cause is in the service log".to_string()
            }
            other => other.to_string(),
        }
    }
}

/// The Puppet CA API answers errors in plain text, as puppetserver does; agents and
/// `puppetserver ca` print the body as it is.
#[derive(Debug)]
pub struct PlainError(pub ApiError);

impl std::fmt::Display for PlainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for PlainError {
    fn from(e: E) -> PlainError {
        PlainError(e.into())
    }
}

impl ResponseError for PlainError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        self.0.retry_after(&mut response);
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.0.public_message())
    }
}
